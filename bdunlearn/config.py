"""Typed run configuration and its validation, the one entry point through which every user value is checked.

Hydra composes YAML from ``conf/``; :func:`validate` merges it into these dataclasses (type errors, unknown
keys), runs the range checks (its own, and those each attack and defense module defines for its section) and
checks the environment (data present, GPU present), raising one-line UserErrors.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Optional

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from bdunlearn import checks
from bdunlearn.runtime import PRECISIONS
from bdunlearn.errors import UserError

CONFIG_DIR = Path(__file__).resolve().parent.parent / "conf"


@dataclass
class PathsConfig:
    data_dir: str = "data"
    cache_dir: str = "~/.cache/bdunlearn"


@dataclass
class PretrainConfig:
    """Contrastive pretraining of a model that has no published weights (the project's tiny CLIP)."""

    corpus: list[str] = MISSING  # dataset configs whose training images (their pretrain_fraction), captioned, form the corpus
    steps: int = 300
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.1
    warmup_steps: int = 20
    seed: int = 0


@dataclass
class ModelConfig:
    name: str = MISSING  # open_clip architecture name
    pretrained: Optional[str] = None  # open_clip pretrained tag; null: use `pretrain`
    cache_dir: Optional[str] = None  # where open_clip keeps downloaded weights
    pretrain: Optional[PretrainConfig] = None


@dataclass
class SplitsConfig:
    test_fraction: float = 0.2  # only for datasets without an official test split
    val_fraction: float = 0.1
    defense_fraction: float = 0.1
    seed: int = 0


@dataclass
class DatasetConfig:
    name: str = MISSING
    root: str = MISSING
    class_names: list[str] = MISSING
    templates: list[str] = MISSING
    splits: SplitsConfig = field(default_factory=SplitsConfig)
    download: bool = False
    source_dir: Optional[str] = None  # a local copy to unpack from (e.g. a Debian data package)
    # Fraction of the training split that appears, captioned, in the pretraining corpus of models without
    # published weights. Small, so that theta_pre is weak on this task and fine-tuning adds clean accuracy.
    pretrain_fraction: float = 0.1


@dataclass
class FinetuneConfig:
    """The attacker's fine-tune of theta_pre on the poisoned training split (image tower only)."""

    steps: int = 300
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.1
    warmup_steps: int = 20


@dataclass
class WandbConfig:
    mode: str = "offline"
    project: str = "bdunlearn"
    entity: Optional[str] = None
    group: Optional[str] = None
    tags: list[str] = field(default_factory=list)


@dataclass
class LoggerConfig:
    wandb: WandbConfig = field(default_factory=WandbConfig)


@dataclass
class RunConfig:
    model: ModelConfig
    dataset: DatasetConfig
    attack: Any  # an AttackConfig subclass, chosen by name
    defense: Any  # a DefenseConfig subclass, chosen by name
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"  # auto: bf16 autocast on CUDA, fp32 on the CPU; or fp32 / bf16
    compile: bool = False  # torch.compile the model for the attack fine-tune
    attack_knowledge: str = "known"
    inversion: Any = None  # an InversionConfig subclass, chosen by name (attack_knowledge=unknown only)
    backdoored_checkpoint: Optional[str] = None
    use_cache: bool = True
    skip_completed: bool = True  # a run whose run dir already holds its ok record is not run again
    checkpoint_every: int = 100  # save resumable training state every N steps (0: never)
    eval_batch_size: int = 512


DEVICES = ("auto", "cpu", "cuda")
ATTACK_KNOWLEDGE = ("known", "unknown")
WANDB_MODES = ("offline", "online", "disabled")

# The parts of a run config that do not change any number the run produces.
NON_SCIENTIFIC_KEYS = ("logger", "paths", "use_cache", "skip_completed", "checkpoint_every", "eval_batch_size", "device", "compile")


def _typed(node: Any, schema: type, where: str):
    """Merge a composed config node into ``schema``; type errors and unknown keys become UserErrors."""
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), node)
        return OmegaConf.to_object(merged)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None) or ""
        message = str(exc).strip().splitlines()[0]
        if where and key and not key.startswith(where):
            key = f"{where}.{key}"
        key = key or where or "(root)"
        raise UserError(f"invalid config at {key}: {message}") from exc


def _pick(registry: dict[str, Any], name: Any, group: str) -> Any:
    if name not in registry:
        raise UserError(f"unknown {group} {name!r}; choose one of: {', '.join(sorted(registry))}")
    return registry[name]


def _check_splits(cfg: SplitsConfig) -> None:
    for name in ("test_fraction", "val_fraction", "defense_fraction"):
        checks.fraction(getattr(cfg, name), f"dataset.splits.{name}", allow_one=False)
    total = cfg.test_fraction + cfg.val_fraction + cfg.defense_fraction
    checks.require(total < 1, f"dataset.splits fractions add up to {total:g}; leave some training data (sum < 1)")


def _check_model(cfg: ModelConfig) -> int | None:
    """Check the model block; return the image tower's input size when known without building it."""
    from bdunlearn.models.architectures import architecture

    arch = architecture(cfg.name)
    if cfg.pretrained is None:
        checks.require(cfg.pretrain is not None, f"model {cfg.name}: set model.pretrained to an open_clip tag or give a model.pretrain recipe")
        checks.require(len(cfg.pretrain.corpus) > 0, "model.pretrain.corpus is empty; name at least one dataset")
        checks.optim(cfg.pretrain, "model.pretrain")
    else:
        import open_clip  # only for published weights: listing their tags needs the library

        tags = open_clip.list_pretrained_tags_by_model(cfg.name)
        checks.require(
            cfg.pretrained in tags,
            f"model.pretrained={cfg.pretrained!r}: open_clip has no such tag for {cfg.name}; "
            f"choose one of {', '.join(tags) or '(none)'} or set model.pretrained=null",
        )
    size = arch["vision_cfg"].get("image_size")
    return size if isinstance(size, int) else None


def _check_knowledge(run: RunConfig, inversion: Any):
    """attack_knowledge and the inversion section; sets ``run.inversion`` and returns the inversion's module."""
    checks.choice(run.attack_knowledge, ATTACK_KNOWLEDGE, "attack_knowledge")
    if run.attack_knowledge == "known":
        checks.require(
            inversion is None,
            f"inversion={inversion.get('name') if isinstance(inversion, dict) else inversion} is used only with "
            "attack_knowledge=unknown; add attack_knowledge=unknown or drop the inversion override",
        )
        return None
    from bdunlearn import inversion as inversions

    checks.require(
        inversion is not None,
        "attack_knowledge=unknown needs a trigger-inversion method; add inversion=decree (or inversion=bti_dbf)",
    )
    module = _pick(inversions.REGISTRY, inversion.get("name") if isinstance(inversion, dict) else inversion, "inversion")
    run.inversion = _typed(inversion, module.Config, "inversion")
    return module


def _check_environment(cfg: RunConfig) -> None:
    from bdunlearn.data import datasets
    from bdunlearn.data.splits import split_sizes

    num_train, has_test = datasets.train_size(cfg.dataset)
    pool = split_sizes(num_train, has_test, cfg.dataset.splits)["defense"]
    if cfg.inversion is not None:
        checks.require(
            cfg.inversion.num_samples <= pool,
            f"inversion.num_samples={cfg.inversion.num_samples} exceeds the defender's pool of {pool} {cfg.dataset.name} "
            "images; lower it (0: the whole pool) or raise dataset.splits.defense_fraction",
        )
    checks.require(
        cfg.defense.num_samples <= pool,
        f"defense.num_samples={cfg.defense.num_samples} exceeds the defender's pool of {pool} {cfg.dataset.name} "
        "images; lower it or raise dataset.splits.defense_fraction",
    )
    if cfg.device == "cuda":
        import torch

        checks.require(torch.cuda.is_available(), "device=cuda but no CUDA GPU is visible; use device=auto or device=cpu")
    if cfg.backdoored_checkpoint is not None:
        path = Path(cfg.backdoored_checkpoint).expanduser()
        checks.require(path.is_file(), f"backdoored_checkpoint={cfg.backdoored_checkpoint}: no such file")
        from bdunlearn.models import clip
        from bdunlearn.models.checkpoint import check_fits

        check_fits(path, clip.state_shapes(cfg.model.name), cfg.model.name)


def validate(cfg: DictConfig) -> RunConfig:
    """Typed, range-checked run config; raises UserError with one line naming the key and the fix."""
    try:
        resolved = OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as exc:
        raise UserError(f"cannot resolve config: {str(exc).strip().splitlines()[0]}") from exc
    from bdunlearn import attacks, defenses

    attack_cls = _pick(attacks.REGISTRY, resolved.get("attack", {}).get("name"), "attack")
    defense_module = _pick(defenses.REGISTRY, resolved.get("defense", {}).get("name"), "defense")
    rest = {k: v for k, v in resolved.items() if k not in ("attack", "defense", "inversion", "hydra")}
    known = {f.name for f in fields(RunConfig)}
    unknown = sorted(set(rest) - known)
    checks.require(not unknown, f"unknown top-level config key(s): {', '.join(unknown)}")
    rest["attack"] = None
    rest["defense"] = None
    run: RunConfig = _typed(rest, RunConfig, "")
    run.attack = _typed(resolved["attack"], attack_cls.Config, "attack")
    run.defense = _typed(resolved["defense"], defense_module.Config, "defense")
    inversion_module = _check_knowledge(run, resolved.get("inversion"))

    checks.choice(run.precision, PRECISIONS, "precision")
    checks.require(run.device in DEVICES, f"device={run.device!r}; choose one of {', '.join(DEVICES)}")
    checks.require(run.logger.wandb.mode in WANDB_MODES, f"logger.wandb.mode={run.logger.wandb.mode!r}; choose one of {', '.join(WANDB_MODES)}")
    checks.require(run.checkpoint_every >= 0, f"checkpoint_every={run.checkpoint_every}: must be >= 0 (0 disables)")
    checks.require(run.eval_batch_size >= 1, f"eval_batch_size={run.eval_batch_size}: must be at least 1")
    checks.require(len(run.dataset.class_names) >= 2, "dataset.class_names: need at least two classes")
    checks.require(len(run.dataset.templates) >= 1, "dataset.templates: need at least one prompt template")
    for template in run.dataset.templates:
        checks.require("{}" in template, f"dataset.templates: {template!r} has no '{{}}' placeholder for the class name")
    _check_splits(run.dataset.splits)
    checks.fraction(run.dataset.pretrain_fraction, "dataset.pretrain_fraction", allow_zero=False)
    image_size = _check_model(run.model)
    checks.optim(run.finetune, "finetune")
    attack_cls.check(run.attack, len(run.dataset.class_names), image_size)
    defense_module.check(run.defense)
    if inversion_module is not None:
        inversion_module.check(run.inversion)
    checks.require(
        attack_cls.has_trigger or run.attack_knowledge == "unknown" or not getattr(defense_module, "NEEDS_TRIGGER", False),
        f"defense={run.defense.name} needs a trigger to estimate, but attack={run.attack.name} plants none; "
        f"use defense=none (or another attack, or attack_knowledge=unknown to invert a trigger)",
    )
    _check_environment(run)
    return run


def dataset_config(name: str, paths: PathsConfig) -> DatasetConfig:
    """The dataset config ``conf/dataset/<name>.yaml`` on its own (e.g. for a pretraining corpus)."""
    path = CONFIG_DIR / "dataset" / f"{name}.yaml"
    if not path.is_file():
        options = sorted(p.stem for p in (CONFIG_DIR / "dataset").glob("*.yaml"))
        raise UserError(f"unknown dataset {name!r}; choose one of: {', '.join(options)}")
    node = OmegaConf.merge({"paths": OmegaConf.structured(paths)}, {"dataset": OmegaConf.load(path)})
    dataset = _typed(OmegaConf.to_container(node, resolve=True)["dataset"], DatasetConfig, "dataset")
    _check_splits(dataset.splits)
    checks.fraction(dataset.pretrain_fraction, f"{name}: pretrain_fraction", allow_zero=False)
    return dataset


def to_dict(run: RunConfig) -> dict:
    return OmegaConf.to_container(OmegaConf.structured(run), resolve=True)


def scientific_view(run: RunConfig) -> dict:
    """The config minus keys that cannot change results (logging, paths, batch size of evaluation).

    ``inversion`` is left out when unset (attack_knowledge=known), so known-attack hashes stay as they were."""
    view = {k: v for k, v in to_dict(run).items() if k not in NON_SCIENTIFIC_KEYS}
    if view.get("inversion") is None:
        view.pop("inversion", None)
    return view


def stable_hash(obj: Any, length: int = 16) -> str:
    import hashlib

    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]
