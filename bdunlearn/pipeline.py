"""The stages of a run, in order: data → theta_pre → poisoned data → theta_b → defense → evaluation.

Each stage hands the next plain objects (tensors, state dicts, small dataclasses); expensive stages go
through the artifact cache.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from bdunlearn import analysis, attacks, contrastive, control, defenses, task_vectors
from bdunlearn.atomic import write_json_atomic
from bdunlearn.attacks.base import Attack, PrepareContext
from bdunlearn.attacks.preview import save_png, trigger_grid
from bdunlearn.cache import ArtifactCache
from bdunlearn.config import PretrainConfig, RunConfig, dataset_config, input_size
from bdunlearn.data import datasets
from bdunlearn.data.captions import LabelledSource, build_corpus
from bdunlearn.data.images import BatchSchedule, ImageSet
from bdunlearn.data.poison import poison
from bdunlearn.data.splits import Splits, make_splits
from bdunlearn.defenses.base import DefenseInputs, DefenseOutcome
from bdunlearn.evaluation import Metrics, evaluate
from bdunlearn.models import clip as clip_models
from bdunlearn.models.checkpoint import check_fits, load_state_dict
from bdunlearn.models.zeroshot import ZeroShotClassifier, zeroshot_head
from bdunlearn.records import base_record
from bdunlearn.runtime import Precision, configure_backends, resolve_device, resolve_precision
from bdunlearn.tracking import Tracker
from bdunlearn.task_vectors import StateDict
from bdunlearn.training import (
    OptimSettings, Resume, contrastive_loss, finetune_classifier, fit, selected_names, trainable_parameters,
)  # fmt: skip

log = logging.getLogger(__name__)


def load_splits(dataset_cfg, cache_dir: str | None = None) -> Splits:
    """The dataset's splits; datasets of image files are decoded through ``cache_dir`` (None: every time)."""
    return make_splits(datasets.load(dataset_cfg, cache_dir), dataset_cfg.splits)


def data_cache(cfg: RunConfig) -> str | None:
    return cfg.paths.cache_dir if cfg.use_cache else None


def _settings(cfg) -> OptimSettings:
    return OptimSettings(cfg.steps, cfg.batch_size, cfg.lr, cfg.weight_decay, cfg.warmup_steps)


# --- theta_pre -------------------------------------------------------------------------------------------


def pretrained_spec(cfg: RunConfig) -> dict:
    """Everything that determines theta_pre."""
    spec = {"model": clip_models.architecture_fingerprint(cfg.model.name), "pretrained": cfg.model.pretrained}
    if cfg.model.pretrained is None:
        spec["precision"] = _precision_name(cfg)
        pretrain = cfg.model.pretrain
        corpus = [_corpus_dataset(cfg, name) for name in pretrain.corpus]
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


def _corpus_dataset(cfg: RunConfig, name: str):
    """A corpus dataset's config, with the recipe's ``corpus_fractions`` entry (if any) as its pretrain_fraction."""
    dataset = cfg.dataset if name == cfg.dataset.name else dataset_config(name, cfg.paths, input_size(cfg.model.name))
    fraction = (cfg.model.pretrain.corpus_fractions or {}).get(name)
    return dataset if fraction is None else replace(dataset, pretrain_fraction=fraction)


def pretrain_contrastive(clip, tokenizer, preprocess, cfg: RunConfig, device, resume: Resume | None) -> dict:
    """Contrastive pretraining of a CLIP that has no published weights, on captioned training images."""
    recipe: PretrainConfig = cfg.model.pretrain
    sources = []
    for name in recipe.corpus:
        dataset = _corpus_dataset(cfg, name)
        split = load_splits(dataset, data_cache(cfg)).train  # never validation, the defender's pool or test
        sources.append(LabelledSource(split, dataset.class_names, dataset.templates, dataset.pretrain_fraction))
    corpus = build_corpus(sources, tokenizer, preprocess.image_size, recipe.seed).to(device)
    generator = torch.Generator().manual_seed(recipe.seed)
    torch.manual_seed(recipe.seed)
    clip.train()
    params = list(trainable_parameters(clip, "").values())
    loss_fn = contrastive_loss(clip, corpus.images, corpus.sampler(generator), preprocess.image_size, preprocess.mean, preprocess.std)
    schedule = BatchSchedule(len(corpus), recipe.batch_size, recipe.seed, device=device)
    result = fit(
        params, loss_fn, schedule, _settings(recipe), "theta_pre: contrastive pretraining",
        generator=generator, resume=resume, precision=resolve_precision(cfg.precision, device),
    )  # fmt: skip
    clip.eval()
    return {"corpus_size": len(corpus), "seconds": result.seconds, "final_loss": result.final_loss, "resumed_from_step": result.resumed_from}


def build_model(model_cfg, device):
    """The CLIP model (holding published weights for open_clip tags, random ones otherwise), its tokenizer
    and preprocessing."""
    if model_cfg.pretrained is not None:
        clip = clip_models.create_pretrained(model_cfg.name, model_cfg.pretrained, model_cfg.cache_dir, device)
    else:
        torch.manual_seed(model_cfg.pretrain.seed)
        clip = clip_models.create(model_cfg.name, device)
    clip.eval()
    return clip, clip_models.tokenizer(model_cfg.name), clip_models.preprocess_of(clip)


def obtain_pretrained(cfg: RunConfig, clip, tokenizer, preprocess, cache: ArtifactCache, device) -> StateDict:
    """theta_pre, loaded into ``clip``: the published weights, or the pretraining recipe's (cached) result."""
    if cfg.model.pretrained is not None:
        return task_vectors.clone(clip.state_dict())
    spec = pretrained_spec(cfg)

    def build():
        meta = pretrain_contrastive(clip, tokenizer, preprocess, cfg, device, _resume(cfg, cache, "pretrained", spec))
        log.info("theta_pre: pretrained in %.1fs on %d captioned images", meta["seconds"], meta["corpus_size"])
        return task_vectors.clone(clip.state_dict()), meta

    state, _, _ = cache.get_or_build("pretrained", spec, build)
    clip.load_state_dict(state)
    clip.eval()
    return {k: v.to(device) for k, v in state.items()}


def _resume(cfg: RunConfig, cache: ArtifactCache, kind: str, spec: dict) -> Resume | None:
    """Resumable state of a cached stage's fine-tune lives beside its cache entry."""
    if not cfg.checkpoint_every or not cache.enabled:
        return None
    return Resume(path=cache.scratch_path(kind, spec, "resume.pt"), every=cfg.checkpoint_every)


# --- theta_b ---------------------------------------------------------------------------------------------


def dataset_spec(cfg: RunConfig) -> dict:
    """Everything about the dataset that determines numbers (not where it lives)."""
    return {k: v for k, v in vars(cfg.dataset).items() if k not in ("root", "download", "source_dir", "num_workers")}


def backdoored_spec(cfg: RunConfig) -> dict:
    """Everything that determines theta_b (in the contrastive setting, also the pairs it was fine-tuned on)."""
    spec = {
        "pretrained": pretrained_spec(cfg),
        "dataset": dataset_spec(cfg),
        "attack": attacks.spec(cfg.attack),
        "finetune": vars(cfg.finetune),
        "precision": _precision_name(cfg),
        "seed": cfg.seed,
    }
    return {**spec, **contrastive.spec(cfg)} if cfg.setting == "contrastive" else spec


def _precision_name(cfg: RunConfig) -> str:
    """The precision training actually runs in (part of what determines cached weights)."""
    return resolve_precision(cfg.precision, resolve_device(cfg.device)).name


def load_handed_checkpoint(path: str, clip, model_name: str) -> StateDict:
    """A suspicious model a user was handed, checked against the configured architecture before any compute."""
    expected = clip.state_dict()
    check_fits(path, {k: tuple(v.shape) for k, v in expected.items()}, model_name)
    state = load_state_dict(Path(path).expanduser())
    return {k: v.to(device=expected[k].device, dtype=expected[k].dtype) for k, v in state.items()}


def obtain_backdoored(cfg: RunConfig, classifier, pretrained: StateDict, attack, splits: Splits, preprocess, cache, device):
    """theta_b as (state dict, from_cache, metadata): the attacker's fine-tune of theta_pre on poisoned data (cached)."""
    spec = backdoored_spec(cfg)

    def build():
        classifier.clip.load_state_dict(pretrained)
        indices = attack.poison_indices(splits.train.labels, cfg.seed)
        cross = attack.cross_indices(splits.train.labels, indices, cfg.seed)
        data = poison(splits.train, attack, indices, cross)
        torch.manual_seed(cfg.seed)
        params = trainable_parameters(classifier.clip, "visual")
        result = finetune_classifier(
            classifier, list(params.values()), data, attack, preprocess.image_size, _settings(cfg.finetune),
            seed=cfg.seed, desc="theta_b: poisoned fine-tune", resume=_resume(cfg, cache, "backdoored", spec),
            precision=resolve_precision(cfg.precision, device), compile_model=cfg.compile,
        )  # fmt: skip
        meta = {
            "poisoned_indices": indices.tolist(), "cross_indices": cross.tolist(),
            "seconds": result.seconds, "final_loss": result.final_loss,
        }  # fmt: skip
        return task_vectors.clone(classifier.clip.state_dict()), meta

    state, meta, from_cache = cache.get_or_build("backdoored", spec, build)
    return {k: v.to(device) for k, v in state.items()}, from_cache, meta


# --- attack artifacts in the run dir ---------------------------------------------------------------------

PREVIEW_IMAGES = 8


def write_trigger_preview(attack, test, image_size: int, run_dir: Path, tracker: Tracker, seed: int) -> Path:
    """``triggers.png``: non-target test images, clean / triggered / difference; logged to W&B."""
    victims = torch.nonzero(test.labels != attack.target_class).flatten()[:PREVIEW_IMAGES]
    path = save_png(trigger_grid(attack, test.images[victims], image_size, seed=seed), run_dir / "triggers.png")
    tracker.log_image("attack/triggers", path, caption="clean / triggered / |difference| (stretched)")
    return path


def write_poisoned_indices(meta: dict, run_dir: Path) -> None:
    """``poisoned_indices.json``: the training-split indices the attack poisoned (and WaNet's cross samples)."""
    if "poisoned_indices" in meta:
        record = {"poisoned": meta["poisoned_indices"], "cross": meta.get("cross_indices", [])}
        write_json_atomic(run_dir / "poisoned_indices.json", record)


# --- unknown attack: trigger inversion -------------------------------------------------------------------


def suspect_spec(cfg: RunConfig) -> dict:
    """What determines the suspicious model and the defender's pool (the inversion's cache key)."""
    if cfg.backdoored_checkpoint:
        from bdunlearn.cache import sha256_of

        model = {"pretrained": pretrained_spec(cfg), "checkpoint_sha256": sha256_of(Path(cfg.backdoored_checkpoint).expanduser())}
    else:
        model = {"backdoored": backdoored_spec(cfg)}
    return {**model, "dataset": dataset_spec(cfg)}


def defense_spec(cfg: RunConfig) -> dict:
    """What determines theta_b and the trigger its defense works with (part of the defense's cache keys): the
    real attack when it is known, the inversion's when it is not."""
    if cfg.attack_knowledge == "known":
        trigger = {"attack": attacks.spec(cfg.attack)}
    else:  # the threshold only decides whether the defense runs, not what it computes (a forced run reuses tau_t)
        from bdunlearn.inversion.stage import trigger_settings

        trigger = {"inversion": trigger_settings(cfg.inversion)}
    return {**suspect_spec(cfg), "trigger": trigger}


def invert_trigger(
    cfg: RunConfig, classifier, backdoored: StateDict, pretrained: StateDict, splits: Splits, preprocess, cache, precision, run_dir, tracker
):
    """``attack_knowledge=unknown``: the configured inversion on theta_b and the defender's pool (cached), judged
    against theta_pre (the public model theta_b was fine-tuned from; the reference check)."""
    from bdunlearn.inversion import stage

    return stage.run(
        cfg.inversion, classifier, backdoored, pretrained, splits.defense, len(cfg.dataset.class_names), preprocess.image_size,
        cfg.eval_batch_size, precision, cache, suspect_spec(cfg), run_dir, tracker,
    )  # fmt: skip


# --- diagnostics -----------------------------------------------------------------------------------------


def analyse(cfg, classifier, pretrained, backdoored, evaluator, attack, splits, preprocess, cache, device, run_dir, trigger_vector) -> dict:
    """``analysis.*``: theta_c (the attacker's recipe on clean data, cached), its metrics, and the diagnostics of
    ``bdunlearn.analysis``."""
    clean_cfg = analysis.clean_model_config(cfg)
    clean_state, _, _ = obtain_backdoored(
        clean_cfg, classifier, pretrained, attacks.build(clean_cfg.attack), splits, preprocess, cache, device
    )
    record = evaluator(clean_state).as_dict("_clean_model")
    context = analysis.Context(
        cfg=cfg, classifier=classifier, pretrained=pretrained, backdoored=backdoored, clean_model=clean_state, test=splits.test,
        attack=attack, image_size=preprocess.image_size, precision=evaluator.precision, run_dir=run_dir, trigger_vector=trigger_vector,
    )  # fmt: skip
    record.update(analysis.analyse(context))
    return record


# --- the run ---------------------------------------------------------------------------------------------


@dataclass
class Evaluator:
    classifier: ZeroShotClassifier
    test: ImageSet
    image_size: int
    batch_size: int
    attack: Attack | None  # None: the attack plants no trigger, so there is no ASR / RA to measure
    seed: int
    precision: Precision

    def __call__(self, state) -> Metrics:
        self.classifier.clip.load_state_dict(state)
        return evaluate(
            self.classifier, self.test, self.image_size, self.batch_size, self.attack, seed=self.seed, precision=self.precision
        )


def run(cfg: RunConfig, run_dir: Path, tracker: Tracker, record: dict | None = None) -> dict:
    """Execute every stage and return the run record (status ``ok``)."""
    record = dict(record) if record is not None else base_record(cfg)
    device = resolve_device(cfg.device)
    configure_backends(device)
    precision = resolve_precision(cfg.precision, device)
    cache = ArtifactCache(cfg.paths.cache_dir, enabled=cfg.use_cache)
    log.info("device: %s (%s); run dir: %s", device, precision.name, run_dir)

    splits = load_splits(cfg.dataset, data_cache(cfg))
    log.info("splits: %s", splits.sizes())
    splits = Splits(**{name: getattr(splits, name).to(device) for name in ("train", "defense", "val", "test")})

    clip, tokenizer, preprocess = build_model(cfg.model, device)
    if getattr(cfg.defense, "params", None) is not None:
        selected_names(clip, cfg.defense.params, "defense.params")  # a pattern that selects nothing: fail before training
    pairs = None  # setting=contrastive: the image-caption pairs (a bad count or file stops the run here, before training)
    if cfg.setting == "contrastive":
        selected_names(clip, cfg.contrastive.params, "contrastive.params")
        pairs = contrastive.load_pairs(cfg, splits, tokenizer, preprocess.image_size, data_cache(cfg), device)
        record.update(pairs.record())
    handed = load_handed_checkpoint(cfg.backdoored_checkpoint, clip, cfg.model.name) if cfg.backdoored_checkpoint else None
    pretrained_state = obtain_pretrained(cfg, clip, tokenizer, preprocess, cache, device)

    def head_of_current_weights():
        return zeroshot_head(clip, tokenizer, cfg.dataset.class_names, cfg.dataset.templates, device)

    # the contrastive setting trains the text tower too: the zero-shot head is rebuilt from it at every evaluation
    head_builder = head_of_current_weights if pairs is not None else None
    classifier = ZeroShotClassifier(clip, head_of_current_weights(), preprocess, head_builder).to(device)
    controls = control.prepare(cfg, clip, tokenizer, preprocess, device, data_cache(cfg))
    control_acc = control.ControlEvaluator(controls, preprocess.image_size, cfg.eval_batch_size, precision)
    attack = attacks.build(cfg.attack)
    attack.prepare(
        PrepareContext(
            classifier=classifier, train=splits.train, image_size=preprocess.image_size, cache=cache,
            spec={"pretrained": pretrained_spec(cfg), "dataset": dataset_spec(cfg)},
        )
    )  # fmt: skip
    if attack.has_trigger:
        write_trigger_preview(attack, splits.test, preprocess.image_size, run_dir, tracker, cfg.seed)
    trigger = attack if attack.has_trigger else None  # attack=none: no ASR / RA (null in the record)
    evaluator = Evaluator(classifier, splits.test, preprocess.image_size, cfg.eval_batch_size, trigger, cfg.seed, precision)

    record.update(evaluator(pretrained_state).as_dict("_pretrained"))
    record.update(control_acc(pretrained_state, "_pretrained"))
    if handed is not None:
        backdoored_state, from_cache = handed, False
    elif pairs is not None:
        spec = backdoored_spec(cfg)
        backdoored_state, from_cache, backdoored_meta = contrastive.obtain_backdoored(
            cfg, classifier, pretrained_state, attack, pairs, preprocess.image_size, spec, _resume(cfg, cache, "backdoored", spec),
            cache, precision, device,
        )  # fmt: skip
        write_poisoned_indices(backdoored_meta, run_dir)
    else:
        backdoored_state, from_cache, backdoored_meta = obtain_backdoored(
            cfg, classifier, pretrained_state, attack, splits, preprocess, cache, device
        )
        write_poisoned_indices(backdoored_meta, run_dir)
    record["backdoored_from_cache"] = from_cache
    backdoored_metrics = evaluator(backdoored_state)
    record.update(backdoored_metrics.as_dict("_backdoored"))
    record.update(control_acc(backdoored_state, "_backdoored"))
    tracker.log({f"backdoored/{k}": v for k, v in backdoored_metrics.as_dict().items()})

    defense_attack, defense_target, found = attack, cfg.attack.target_class, None
    if cfg.attack_knowledge == "unknown":  # the defense gets an inverted trigger; the real one only evaluates
        found = invert_trigger(cfg, classifier, backdoored_state, pretrained_state, splits, preprocess, cache, precision, run_dir, tracker)
        record.update(found.record)
        defense_attack, defense_target = found.trigger, found.target_class
    inputs = DefenseInputs(
        classifier=classifier, backdoored=backdoored_state, pretrained=pretrained_state, pool=splits.defense,
        val=splits.val, attack=defense_attack, target_class=defense_target, image_size=preprocess.image_size,
        eval_batch_size=cfg.eval_batch_size, seed=cfg.seed, precision=precision, cache=cache,
        backdoored_spec=defense_spec(cfg), pairs=pairs.defender if pairs is not None else None,
        target_captions=pairs.target_captions if pairs is not None else None,
    )  # fmt: skip
    started = time.perf_counter()
    if found is not None and not found.detected:  # nothing detected: the model is returned as it is
        log.info("no backdoor detected: defense=%s is skipped and theta_b returned unchanged", cfg.defense.name)
        outcome = DefenseOutcome(state=backdoored_state, samples=0)
    else:
        outcome = defenses.REGISTRY[cfg.defense.name].defend(inputs, cfg.defense)
    if found is not None:
        record["defense_skipped"] = not found.detected
    record["defense_seconds"] = time.perf_counter() - started
    record["defense_samples"] = outcome.samples
    record["alpha"] = outcome.alpha
    record["alpha_curve"] = outcome.alpha_curve

    record.update(evaluator(outcome.state).as_dict())
    record.update(control_acc(outcome.state, ""))
    backdoored_ca = record["clean_acc_backdoored"]
    record["clean_acc_retained"] = record["clean_acc"] / backdoored_ca if backdoored_ca else None
    for key in ("trigger_vector_from_cache", "trigger_finetune_seconds"):
        if key in outcome.extras:
            record[key] = outcome.extras[key]
    if "trigger_vector" in outcome.extras:
        attack_vector = task_vectors.subtract({k: backdoored_state[k] for k in outcome.extras["trigger_vector"]}, pretrained_state)
        record["cosine_trigger_attack"] = task_vectors.cosine(outcome.extras["trigger_vector"], attack_vector)
    if cfg.analysis.clean_reference:
        record.update(
            analyse(cfg, classifier, pretrained_state, backdoored_state, evaluator, attack, splits, preprocess, cache, device, run_dir,
                    outcome.extras.get("trigger_vector"))
        )  # fmt: skip
    record["status"] = "ok"
    if outcome.alpha_curve:
        tracker.log_table("tbar/alpha_curve", outcome.alpha_curve)
    tracker.log({f"defended/{k}": record[k] for k in ("clean_acc", "asr", "robust_acc")})
    tracker.summary(record)
    return record
