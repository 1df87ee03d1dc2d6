"""Identities computed from a run config: the record's ``config_hash`` and the artifact cache's keys.

A cache key is the spec of everything that determines an artifact plus the version of the recipe (the code)
that turns that spec into weights. Bump a ``RECIPES`` entry when a code change alters what that artifact's
code computes from the same spec; a change that does not (a refactor, a log line) keeps every cache entry.
``tests/unit/test_recipes.py`` holds a fingerprint per version and fails when numbers move without a bump.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, replace
from typing import Any

from omegaconf import OmegaConf

from bdunlearn.config.schema import AnalysisConfig, RunConfig
from bdunlearn.models.architectures import architecture

# The version of the code that builds each cached artifact kind from its spec.
RECIPES = {
    "pretrained": 1, "backdoored": 1, "trigger_vector": 1, "inversion": 1, "badclip_patch": 1,
    "trigger_task": 1,  # scripts/disentanglement.py: theta_pre fine-tuned on the trigger task
}  # fmt: skip

# Bump when the way contrastive pairs are built or poisoned changes (part of theta_b's spec in that setting).
PAIRS_RECIPE = 2  # 2: each poisoned pair keeps one target caption drawn from the templates

# The parts of a run config that do not change any number the run produces.
NON_SCIENTIFIC_KEYS = (
    "logger", "paths", "use_cache", "skip_completed", "checkpoint_every", "eval_batch_size", "device", "compile", "label",
    "save_model", "save_model_dtype", "hf_hub",
)  # fmt: skip

# Keys added after run records were first written: left out of the config hash while unset, so the hashes of
# runs that do not use them stay as they were. (num_workers changes no number at all.)
_OMITTED_WHEN_UNSET = {
    ("model", "pretrain"): ("corpus_fractions",),
    ("model",): ("weights_sha256",),
    ("dataset",): ("image_size", "partition", "class_folders", "max_train_per_class", "finetune_epochs", "files_fingerprint"),
    ("dataset", "splits"): ("max_val_samples",),
    ("finetune",): ("epochs",),
    ("attack",): ("num_poisoned",),
}
# TBAR's variant keys, added later: left out of the hash and of tau_t's cache key at their defaults.
TBAR_VARIANT_DEFAULTS = {"images": "all", "contrast": "none", "contrast_op": "subtract", "optimizer": "adamw", "loss": "ce"}
# TBAR's choice of operating point, added later: left out of the hash at its defaults (tau_t does not depend on it).
TBAR_SELECTION_DEFAULTS = {"alpha_rule": "kappa", "asr_target": 0.05}
# Inversion settings that only turn statistics into a verdict: not part of what the inverted trigger depends on.
INVERSION_VERDICT_KEYS = ("detection_threshold", "detection", "reference_threshold", "reference_min_flip")
# Where a dataset lives, how it is decoded and whether it is held in memory or streamed: not part of what
# determines numbers (a streamed and an in-memory run of the same data share their cache entries).
DATASET_LOCATION_KEYS = ("root", "download", "source_dir", "num_workers", "storage", "memory_budget_gb")


def stable_hash(obj: Any, length: int = 16) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def artifact_key(kind: str, spec: dict) -> str:
    """The cache key of an artifact: its spec and the version of the recipe that builds it."""
    return stable_hash({"recipe": RECIPES[kind], "spec": spec})


def to_dict(run: RunConfig) -> dict:
    return OmegaConf.to_container(OmegaConf.structured(run), resolve=True)


def _omit_unset(view: dict) -> dict:
    if view.get("analysis") == asdict(AnalysisConfig()):  # diagnostics off: hashes stay as before they existed
        view.pop("analysis")
    defense = view.get("defense") or {}
    if defense.get("name") == "tbar":
        for key, default in {**TBAR_VARIANT_DEFAULTS, **TBAR_SELECTION_DEFAULTS}.items():
            if defense.get(key) == default:
                defense.pop(key)
    for path, keys in _OMITTED_WHEN_UNSET.items():
        section = view
        for part in path:
            section = section.get(part) or {}
        for key in keys:
            if key in section and section[key] is None:
                del section[key]
    for key in ("num_workers", "storage", "memory_budget_gb"):  # how the images are read, not which: same numbers
        view.get("dataset", {}).pop(key, None)
    if view.get("setting") == "classification":  # the default setting: hashes stay as before the contrastive one
        view.pop("setting")
        view.pop("contrastive", None)
    if not view.get("control_datasets"):
        view.pop("control_datasets", None)
    return view


def scientific_view(run: RunConfig) -> dict:
    """The config minus keys that cannot change results (logging, paths, batch size of evaluation).

    ``inversion`` is left out when unset (attack_knowledge=known), so known-attack hashes stay as they were;
    so are the keys in ``_OMITTED_WHEN_UNSET``."""
    view = {k: v for k, v in to_dict(run).items() if k not in NON_SCIENTIFIC_KEYS}
    if view["model"]["pretrained"] is not None:  # published weights: the pretraining recipe is not read
        view["model"]["pretrain"] = None
    if view.get("inversion") is None:
        view.pop("inversion", None)
    return _omit_unset(view)


def config_hash(run: RunConfig) -> str:
    """The record's ``config_hash``: what determines the run's numbers."""
    return stable_hash(scientific_view(run))


# --- what determines each cached artifact ----------------------------------------------------------------


def architecture_fingerprint(name: str) -> dict:
    """Everything about the architecture that determines trained weights."""
    return {"name": name, "architecture": architecture(name)}


def dataset_spec(dataset) -> dict:
    """Everything about a dataset that determines numbers (not where it lives)."""
    return {k: v for k, v in vars(dataset).items() if k not in DATASET_LOCATION_KEYS}


def corpus_dataset(run: RunConfig, name: str, load_dataset):
    """A pretraining corpus dataset's config (``load_dataset(name)`` for datasets other than the run's), with the
    recipe's ``corpus_fractions`` entry (if any) as its pretrain_fraction."""
    dataset = run.dataset if name == run.dataset.name else load_dataset(name)
    fraction = (run.model.pretrain.corpus_fractions or {}).get(name)
    return dataset if fraction is None else replace(dataset, pretrain_fraction=fraction)


def pretrained_spec(run: RunConfig, precision: str, load_dataset) -> dict:
    """Everything that determines theta_pre (``precision``: the name of the precision training runs in)."""
    spec = {"model": architecture_fingerprint(run.model.name), "pretrained": run.model.pretrained}
    if run.model.weights_sha256 is not None:  # weights from a file, folder or hub id: their content, not the path
        spec["weights_sha256"] = run.model.weights_sha256
    if run.model.pretrained is None:
        spec["precision"] = precision
        pretrain = run.model.pretrain
        corpus = [corpus_dataset(run, name, load_dataset) for name in pretrain.corpus]
        spec["pretrain"] = {k: v for k, v in vars(pretrain).items() if not (k == "corpus_fractions" and v is None)}
        spec["corpus"] = [
            {
                "name": d.name,
                "class_names": list(d.class_names),
                "templates": list(d.templates),
                "splits": vars(d.splits),
                "pretrain_fraction": d.pretrain_fraction,
            }
            for d in corpus
        ]
    return spec


def attack_spec(attack) -> dict:
    """The attack's config as a cache key: ``num_poisoned`` only when set, so classification keys stay as they were."""
    return {k: v for k, v in vars(attack).items() if not (k == "num_poisoned" and v is None)}


def backdoored_spec(run: RunConfig, precision: str, load_dataset) -> dict:
    """Everything that determines theta_b (in the contrastive setting, also the pairs it was fine-tuned on)."""
    spec = {
        "pretrained": pretrained_spec(run, precision, load_dataset),
        "dataset": dataset_spec(run.dataset),
        "attack": attack_spec(run.attack),
        "finetune": vars(run.finetune),
        "precision": precision,
        "seed": run.seed,
    }
    if run.setting == "contrastive":
        spec.update({"setting": "contrastive", "contrastive": vars(run.contrastive), "pairs_recipe": PAIRS_RECIPE})
    return spec


def inversion_settings(inversion) -> dict:
    """The inversion's settings that determine the inverted trigger (all but those of the verdict)."""
    return {k: v for k, v in vars(inversion).items() if k not in INVERSION_VERDICT_KEYS}


def suspect_spec(run: RunConfig, precision: str, load_dataset, checkpoint_sha256: str | None = None) -> dict:
    """What determines the suspicious model and the defender's pool (the inversion's cache key):
    ``checkpoint_sha256`` identifies a handed checkpoint (``backdoored_checkpoint``)."""
    if checkpoint_sha256 is not None:
        model = {"pretrained": pretrained_spec(run, precision, load_dataset), "checkpoint_sha256": checkpoint_sha256}
    else:
        model = {"backdoored": backdoored_spec(run, precision, load_dataset)}
    return {**model, "dataset": dataset_spec(run.dataset)}


def defense_spec(run: RunConfig, precision: str, load_dataset, checkpoint_sha256: str | None = None) -> dict:
    """What determines theta_b and the trigger its defense works with (part of the defense's cache keys): the
    real attack when it is known, the inversion's when it is not (the verdict's threshold only decides whether
    the defense runs, not what it computes)."""
    if run.attack_knowledge == "known":
        trigger = {"attack": attack_spec(run.attack)}
    else:
        trigger = {"inversion": inversion_settings(run.inversion)}
    return {**suspect_spec(run, precision, load_dataset, checkpoint_sha256), "trigger": trigger}
