"""A run's stages, in order: config → RunContext (device, splits, theta_pre, attack) → theta_b → defense →
evaluation → record.

``prepare(cfg)`` sets a run up; every research script sets its runs up through it too. ``run(ctx, ...)``
executes the remaining stages, each a call; expensive stages go through the artifact cache.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from bdunlearn import analysis, attacks, control, defenses, distributed, settings
from bdunlearn.atomic import write_json_atomic
from bdunlearn.attacks.base import Attack, PrepareContext
from bdunlearn.attacks.preview import save_png, trigger_grid
from bdunlearn.cache import ArtifactCache
from bdunlearn.config import RunConfig, dataset_config, input_size, keys
from bdunlearn.data import datasets
from bdunlearn.data import sources as data_sources
from bdunlearn.data.splits import Splits
from bdunlearn.defenses.base import DefenseInputs, DefenseOutcome
from bdunlearn.defenses.record import operating_point_keys, trigger_vector_keys
from bdunlearn.evaluation import Metrics, evaluate
from bdunlearn.models import export, sources
from bdunlearn.models.zeroshot import ZeroShotClassifier, zeroshot_head
from bdunlearn.params import selected_names
from bdunlearn.pretrained import build_model, obtain_pretrained
from bdunlearn.records import base_record
from bdunlearn.runtime import (
    Precision,
    configure_backends,
    resolve_device,
    resolve_precision,
)
from bdunlearn.task_vectors import StateDict
from bdunlearn.tracking import Tracker
from bdunlearn.training import Resume

log = logging.getLogger(__name__)
PREVIEW_IMAGES = 8


@dataclass
class Evaluator:
    """CA / ASR / RA on the test split of whatever weights it is handed."""

    classifier: ZeroShotClassifier
    test: Any  # ImageSet, or a StreamedSplit (dataset.storage=stream)
    image_size: int
    batch_size: int
    attack: Attack | None  # None: the attack plants no trigger, so there is no ASR / RA to measure
    seed: int
    precision: Precision

    def __call__(self, state) -> Metrics:
        self.classifier.clip.load_state_dict(state)
        if data_sources.streamed(self.test):
            from bdunlearn.streaming import evaluate_streamed as evaluate_split
        else:
            evaluate_split = evaluate
        return evaluate_split(self.classifier, self.test, self.image_size, self.batch_size, self.attack, seed=self.seed, precision=self.precision)


@dataclass
class RunContext:
    """Everything a run's stages share once it is set up: one object handed down instead of a dozen arguments."""

    cfg: RunConfig
    device: torch.device
    precision: Precision
    cache: ArtifactCache
    setting: ModuleType  # bdunlearn.settings.<cfg.setting>
    splits: Splits = None
    clip: Any = None
    tokenizer: Any = None
    preprocess: Any = None
    pretrained: StateDict = None  # theta_pre
    classifier: ZeroShotClassifier = None
    attack: Attack = None
    pairs: Any = None  # setting=contrastive: PairData
    controls: control.ControlEvaluator = None
    evaluator: Evaluator = None

    @property
    def data_cache(self) -> str | None:
        return self.cfg.paths.cache_dir if self.cfg.use_cache else None

    def load_dataset(self, name: str):
        """Another dataset's config (a pretraining corpus, a control), at the model's input size."""
        config = datasets.at_model_size(dataset_config(name, self.cfg.paths), input_size(self.cfg.model.name))
        return datasets.with_class_names(config)

    def load_splits(self, dataset_cfg) -> Splits:
        """A dataset's splits (``dataset.storage``): streamed, or decoded through the cache (when it is on) into memory."""
        return data_sources.load_splits(dataset_cfg, self.data_cache)

    def resume(self, kind: str, spec: dict) -> Resume | None:
        """Resumable state of a cached stage's fine-tune lives beside its cache entry."""
        if not self.cfg.checkpoint_every or not self.cache.enabled:
            return None
        return Resume(path=self.cache.scratch_path(kind, spec, "resume.pt"), every=self.cfg.checkpoint_every)

    def spec(self, kind: str) -> dict:
        """What determines the run's theta_pre, theta_b or the defense's trigger (``kind``), for cache keys."""
        load, precision = self.load_dataset, self.precision.name
        if kind == "pretrained":
            return keys.pretrained_spec(self.cfg, precision, load)
        if kind == "backdoored":
            return keys.backdoored_spec(self.cfg, precision, load)
        checkpoint, cache_dir = self.cfg.backdoored_checkpoint, self.cfg.model.cache_dir
        located = sources.locate(checkpoint, cache_dir, key="backdoored_checkpoint", download=True) if checkpoint else None
        digest = sources.fingerprint(located)["sha256"] if located else None
        if kind == "suspect":
            return keys.suspect_spec(self.cfg, precision, load, digest)
        return keys.defense_spec(self.cfg, precision, load, digest)


def prepare_spec(cfg: RunConfig, kind: str) -> dict:
    """The cache spec of the run's ``kind`` of artifact (see ``RunContext.spec``) without setting the run up."""
    device = resolve_device(cfg.device)
    return RunContext(cfg, device, resolve_precision(cfg.precision, device), None, settings.REGISTRY[cfg.setting]).spec(kind)


def prepare(cfg: RunConfig) -> RunContext:
    """Set a run up to the point where theta_b is made: device, splits, theta_pre (cached), its zero-shot
    classifier, the setting's data (pairs), the control datasets and the attack (prepared against theta_pre)."""
    device = resolve_device(cfg.device)
    configure_backends(device)
    ctx = RunContext(
        cfg=cfg, device=device, precision=resolve_precision(cfg.precision, device),
        cache=ArtifactCache(cfg.paths.cache_dir, enabled=cfg.use_cache), setting=settings.REGISTRY[cfg.setting],
    )  # fmt: skip
    with distributed.main_first():  # rank 0 fills the decoded cache; the other ranks then read it
        splits = ctx.load_splits(cfg.dataset)
    log.info("splits (%s): %s", cfg.dataset.storage, splits.sizes())
    ctx.splits = data_sources.on_device(splits, device)
    ctx.clip, ctx.tokenizer, ctx.preprocess = build_model(cfg.model, device)
    if getattr(cfg.defense, "params", None) is not None:
        selected_names(ctx.clip, cfg.defense.params, "defense.params")  # a pattern that selects nothing: fail before training
    ctx.pairs = ctx.setting.prepare_data(ctx)
    ctx.pretrained = obtain_pretrained(ctx)

    def head_of_current_weights():
        return zeroshot_head(ctx.clip, ctx.tokenizer, cfg.dataset.class_names, cfg.dataset.templates, device)

    rebuilt = head_of_current_weights if ctx.setting.REBUILDS_HEAD else None
    ctx.classifier = ZeroShotClassifier(ctx.clip, head_of_current_weights(), ctx.preprocess, rebuilt).to(device)
    controls = control.prepare(
        cfg.control_datasets, ctx.load_dataset, ctx.load_splits, ctx.data_cache, ctx.clip, ctx.tokenizer, ctx.preprocess, device
    )
    ctx.controls = control.ControlEvaluator(controls, ctx.preprocess.image_size, cfg.eval_batch_size, ctx.precision)
    ctx.attack = attacks.build(cfg.attack)
    spec = {"pretrained": ctx.spec("pretrained"), "dataset": keys.dataset_spec(cfg.dataset)}
    ctx.attack.prepare(PrepareContext(ctx.classifier, ctx.splits.train, ctx.preprocess.image_size, ctx.cache, spec))
    trigger = ctx.attack if ctx.attack.has_trigger else None  # attack=none: no ASR / RA (null in the record)
    ctx.evaluator = Evaluator(ctx.classifier, ctx.splits.test, ctx.preprocess.image_size, cfg.eval_batch_size, trigger, cfg.seed, ctx.precision)
    return ctx


def load_handed_checkpoint(ctx: RunContext) -> StateDict:
    """A suspicious model a user was handed (a weights file, an open_clip or bdunlearn folder, hf-hub:org/name),
    checked against the configured architecture."""
    model = ctx.cfg.model
    expected = ctx.clip.state_dict()
    state = sources.load(ctx.cfg.backdoored_checkpoint, model.name, model.cache_dir, key="backdoored_checkpoint")
    return {k: v.to(device=expected[k].device, dtype=expected[k].dtype) for k, v in state.items()}


def obtain_backdoored(ctx: RunContext, run_dir: Path | None = None) -> tuple[StateDict, bool]:
    """theta_b: the handed checkpoint, or the setting's attack fine-tune (cached); its poisoned ids in the run dir
    (when there is one)."""
    if ctx.cfg.backdoored_checkpoint:
        return load_handed_checkpoint(ctx), False
    state, from_cache, meta = ctx.setting.obtain_backdoored(ctx, lambda spec: ctx.resume("backdoored", spec))
    if run_dir is not None and distributed.is_main():
        record = {"poisoned": meta["poisoned_indices"], "cross": meta.get("cross_indices", [])}
        write_json_atomic(run_dir / "poisoned_indices.json", record)
    return state, from_cache


def write_trigger_preview(ctx: RunContext, run_dir: Path, tracker: Tracker) -> None:
    """``triggers.png``: non-target test images, clean / triggered / difference; logged to W&B."""
    victims = data_sources.first_images(ctx.splits.test, lambda labels: labels != ctx.attack.target_class, PREVIEW_IMAGES)
    grid = trigger_grid(ctx.attack, victims, ctx.preprocess.image_size, seed=ctx.cfg.seed)
    path = save_png(grid, run_dir / "triggers.png")
    tracker.log_image("attack/triggers", path, caption="clean / triggered / |difference| (stretched)")


def invert_trigger(ctx: RunContext, backdoored: StateDict, run_dir: Path, tracker: Tracker):
    """``attack_knowledge=unknown``: the configured inversion on theta_b and the defender's pool (cached), judged
    against theta_pre (the public model theta_b was fine-tuned from; the reference check)."""
    from bdunlearn.inversion import stage

    cfg = ctx.cfg
    return stage.run(
        cfg.inversion, ctx.classifier, backdoored, ctx.pretrained, ctx.splits.defense, len(cfg.dataset.class_names),
        ctx.preprocess.image_size, cfg.eval_batch_size, ctx.precision, ctx.cache, ctx.spec("suspect"), run_dir, tracker,
    )  # fmt: skip


def defend(ctx: RunContext, backdoored: StateDict, attack: Attack, target_class: int) -> DefenseOutcome:
    """The configured defense of theta_b, working with ``attack``'s trigger and ``target_class``."""
    pairs = ctx.pairs
    inputs = DefenseInputs(
        classifier=ctx.classifier, backdoored=backdoored, pretrained=ctx.pretrained, pool=ctx.splits.defense,
        val=ctx.splits.val, attack=attack, target_class=target_class, image_size=ctx.preprocess.image_size,
        eval_batch_size=ctx.cfg.eval_batch_size, seed=ctx.cfg.seed, precision=ctx.precision, cache=ctx.cache,
        backdoored_spec=ctx.spec("defense"), pairs=pairs.defender if pairs is not None else None,
        target_captions=pairs.target_captions if pairs is not None else None,
    )  # fmt: skip
    return defenses.REGISTRY[ctx.cfg.defense.name].defend(inputs, ctx.cfg.defense)


def obtain_clean_reference(ctx: RunContext) -> StateDict:
    """theta_c: the attacker's recipe on the clean training split (``attack=none``, the same seed; cached)."""
    clean_cfg = analysis.clean_model_config(ctx.cfg)
    resume = lambda spec: ctx.resume("backdoored", spec)  # noqa: E731
    state, _, _ = ctx.setting.obtain_backdoored(ctx, resume, cfg=clean_cfg, attack=attacks.build(clean_cfg.attack))
    return state


def analyse(ctx: RunContext, backdoored: StateDict, run_dir: Path, trigger_vector: StateDict | None) -> dict:
    """``analysis.*``: theta_c (the attacker's recipe on clean data, cached), its metrics, and the diagnostics of
    ``bdunlearn.analysis``."""
    clean_state = obtain_clean_reference(ctx)
    record = ctx.evaluator(clean_state).as_dict("_clean_model")
    context = analysis.Context(
        cfg=ctx.cfg, classifier=ctx.classifier, pretrained=ctx.pretrained, backdoored=backdoored, clean_model=clean_state,
        test=ctx.splits.test, attack=ctx.attack, image_size=ctx.preprocess.image_size, precision=ctx.precision,
        run_dir=run_dir, trigger_vector=trigger_vector,
    )  # fmt: skip
    record.update(analysis.analyse(context))
    return record


def run(
    cfg: RunConfig, run_dir: Path, tracker: Tracker, record: dict | None = None, save_to: Path | None = None, command: str | None = None
) -> dict:
    """Execute every stage and return the run record (status ``ok``); the defended model is exported to ``save_to``
    (when given) in open_clip's folder layout, with a model card naming ``command``."""
    record = dict(record) if record is not None else base_record(cfg)
    log.info("device: %s (%s); run dir: %s", resolve_device(cfg.device), resolve_precision(cfg.precision, resolve_device(cfg.device)).name, run_dir)
    ctx = prepare(cfg)
    if ctx.pairs is not None:
        record.update(ctx.pairs.record())
    record["data_storage"] = cfg.dataset.storage
    if ctx.attack.has_trigger and distributed.is_main():
        write_trigger_preview(ctx, run_dir, tracker)
    evaluator, control_acc = ctx.evaluator, ctx.controls
    record.update(evaluator(ctx.pretrained).as_dict("_pretrained"))
    record.update(control_acc(ctx.pretrained, "_pretrained"))
    backdoored, record["backdoored_from_cache"] = obtain_backdoored(ctx, run_dir)
    backdoored_metrics = evaluator(backdoored)
    record.update(backdoored_metrics.as_dict("_backdoored"))
    record.update(control_acc(backdoored, "_backdoored"))
    tracker.log({f"backdoored/{k}": v for k, v in backdoored_metrics.as_dict().items()})

    defense_attack, defense_target, found = ctx.attack, cfg.attack.target_class, None
    if cfg.attack_knowledge == "unknown":  # the defense gets an inverted trigger; the real one only evaluates
        found = invert_trigger(ctx, backdoored, run_dir, tracker)
        record.update(found.record)
        defense_attack, defense_target = found.trigger, found.target_class
    started = time.perf_counter()
    if found is not None and not found.detected:  # nothing detected: the model is returned as it is
        log.info("no backdoor detected: defense=%s is skipped and theta_b returned unchanged", cfg.defense.name)
        outcome = DefenseOutcome(state=backdoored, samples=0)
    else:
        outcome = defend(ctx, backdoored, defense_attack, defense_target)
    if found is not None:
        record["defense_skipped"] = not found.detected
    record["defense_seconds"] = time.perf_counter() - started
    record.update(defense_samples=outcome.samples, alpha=outcome.alpha, alpha_curve=outcome.alpha_curve)
    record.update(evaluator(outcome.state).as_dict())
    record.update(control_acc(outcome.state, ""))
    backdoored_ca = record["clean_acc_backdoored"]
    record["clean_acc_retained"] = record["clean_acc"] / backdoored_ca if backdoored_ca else None
    record.update(trigger_vector_keys(outcome, backdoored, ctx.pretrained))
    record.update(operating_point_keys(outcome, backdoored, evaluator, record))
    if cfg.analysis.clean_reference:
        record.update(analyse(ctx, backdoored, run_dir, outcome.extras.get("trigger_vector")))
    record["status"] = "ok"
    if save_to is not None and distributed.is_main():
        ctx.clip.load_state_dict(outcome.state)
        dtype = export.DTYPES[cfg.save_model_dtype]
        record["exported_model"] = str(export.export_model(save_to, ctx.clip, cfg.model.name, record=record, command=command,
                                                           pretrained=cfg.model.pretrained, dtype=dtype, overwrite=True))
    if outcome.alpha_curve:
        tracker.log_table("tbar/alpha_curve", outcome.alpha_curve)
    tracker.log({f"defended/{k}": record[k] for k in ("clean_acc", "asr", "robust_acc")})
    tracker.summary(record)
    return record
