"""TBAR: estimate the backdoor as a task vector by fine-tuning on triggered samples, then subtract it.

Classification setting: triggered images labelled with the target class, cross-entropy through the frozen head.
Contrastive setting: triggered images of the defender's pairs paired with captions naming the target class, the
CLIP loss (the one training loop either way); alpha by the same validation rule, on zero-shot validation CA/ASR.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field

import torch
from tqdm.auto import tqdm

from bdunlearn import task_vectors
from bdunlearn.config import checks
from bdunlearn.config.keys import TBAR_VARIANT_DEFAULTS
from bdunlearn.data.captions import CaptionCorpus
from bdunlearn.data.images import ImageSet
from bdunlearn.data.poison import (
    TriggerableSet,
    triggered_target_pairs,
    triggered_target_set,
    untriggered_pairs,
)
from bdunlearn.defenses.base import DefenseConfig, DefenseInputs, DefenseOutcome
from bdunlearn.defenses.finetuning import draw_samples
from bdunlearn.errors import UserError
from bdunlearn.evaluation import evaluate
from bdunlearn.objectives import CRITERIA, finetune_classifier, finetune_pairs
from bdunlearn.params import trainable_parameters
from bdunlearn.training import OPTIMIZERS, OptimSettings

log = logging.getLogger(__name__)


@dataclass
class TbarConfig(DefenseConfig):
    """TBAR: fine-tune theta_b on triggered images labelled with the target class, take tau_t = theta_b' - theta_b,
    return theta_b - alpha tau_t with alpha chosen on the validation split (lowest val ASR among alphas with val
    CA >= kappa x val CA(theta_b); ties: the smaller alpha)."""

    name: str = "tbar"
    num_samples: int = 100  # triggered samples drawn from the defender's clean pool
    clean_fraction: float = 0.0  # fraction of the samples left clean (own labels) instead of triggered
    images: str = "all"  # pool images the samples are drawn from: "all", or "non_target" (class != target)
    contrast: str = "none"  # "target" / "own_labels": subtract a fine-tune of the same images without the trigger,
    #                         labelled with the target / with their own labels ("none": the paper's tau_t)
    contrast_op: str = "subtract"  # "subtract" the contrast vector, or "project" it out of tau_t
    start: str = "backdoored"  # fine-tune the trigger vector from theta_b ("backdoored", the paper) or theta_pre
    # parameters fine-tuned (and so spanning the trigger vector): comma-separated name prefixes or globs (visual:
    # the image tower; e.g. 'visual.transformer.resblocks.*.attn.*' attention only)
    params: str = "visual"
    steps: int = 100  # optimizer steps of the trigger fine-tune
    batch_size: int = 32  # samples per step
    lr: float = 1e-4  # the trigger fine-tune's learning rate (optimizer below)
    weight_decay: float = 0.0  # AdamW's decoupled weight decay
    warmup_steps: int = 0  # steps of linear warm-up before the cosine decay
    alpha_grid: list[float] = field(  # the alphas scanned on the validation split
        default_factory=lambda: [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.2, 1.4, 1.6, 1.8, 2.0, 2.5, 3.0]
    )
    kappa: float = 0.95  # keep alphas whose validation CA >= kappa * CA(theta_b)
    # which operating point is "the defended model": kappa (the lowest validation ASR keeping kappa of CA, this
    # project's rule) | asr_target (the smallest alpha with validation ASR <= asr_target, the CA cost left free);
    # the record holds both either way
    alpha_rule: str = "kappa"
    asr_target: float = 0.05  # validation ASR the asr_target rule aims at
    # how tau_t is estimated (the paper: AdamW on cross-entropy): sgd takes plain gradient steps (AdamW normalises
    # the tiny gradients of a fine-tune that starts near zero loss); margin is a non-saturating logit-margin loss
    optimizer: str = "adamw"
    loss: str = "ce"  # ce (cross-entropy to the target) | margin (non-saturating logit margin)


Config = TbarConfig
IMAGES = ("all", "non_target")
CONTRASTS = ("none", "target", "own_labels")
CONTRAST_OPS = ("subtract", "project")
ALPHA_RULES = ("kappa", "asr_target")
NEEDS_TRIGGER = True  # the trigger vector is fine-tuned on triggered samples: attack=none has nothing to remove
CONTRASTIVE = True  # triggered images paired with target captions (images=non_target needs labels: classification only)


def check(cfg: TbarConfig) -> None:
    checks.require(cfg.num_samples >= 1, f"defense.num_samples={cfg.num_samples}: must be at least 1")
    checks.optim(cfg, "defense")
    checks.require(len(cfg.alpha_grid) > 0, "defense.alpha_grid is empty; give at least one alpha >= 0")
    checks.require(all(a >= 0 for a in cfg.alpha_grid), f"defense.alpha_grid={cfg.alpha_grid}: alphas must be >= 0")
    checks.require(0 < cfg.kappa <= 1, f"defense.kappa={cfg.kappa} is out of range; it must lie in (0, 1]")
    checks.fraction(cfg.clean_fraction, "defense.clean_fraction", allow_one=False)
    checks.choice(cfg.start, ("backdoored", "pretrained"), "defense.start")
    checks.choice(cfg.images, IMAGES, "defense.images")
    checks.choice(cfg.contrast, CONTRASTS, "defense.contrast")
    checks.choice(cfg.contrast_op, CONTRAST_OPS, "defense.contrast_op")
    checks.choice(cfg.alpha_rule, ALPHA_RULES, "defense.alpha_rule")
    checks.choice(cfg.optimizer, OPTIMIZERS, "defense.optimizer")
    checks.choice(cfg.loss, tuple(CRITERIA), "defense.loss")
    checks.fraction(cfg.asr_target, "defense.asr_target")


@dataclass
class AlphaPoint:
    alpha: float
    val_clean_acc: float
    val_asr: float


def select_alpha(curve: list[AlphaPoint], kappa: float) -> AlphaPoint:
    """Lowest validation ASR among the alphas whose validation CA >= kappa * CA(theta_b); ties → smaller alpha.

    CA(theta_b) is the curve's value at alpha = 0, which must be on the curve (and is always eligible).
    """
    reference = next((p for p in curve if p.alpha == 0.0), None)
    if reference is None:
        raise ValueError("the alpha curve must contain alpha = 0 (the backdoored model itself)")
    eligible = [p for p in curve if p.val_clean_acc >= kappa * reference.val_clean_acc]
    return min(eligible, key=lambda p: (p.val_asr, p.alpha))


def select_by_asr_target(curve: list[AlphaPoint], target: float) -> AlphaPoint:
    """The smallest alpha whose validation ASR <= ``target`` (near-zero ASR, whatever it costs in CA); when none
    reaches it, the lowest validation ASR (ties: the smaller alpha)."""
    reached = [p for p in curve if p.val_asr <= target]
    return min(reached, key=lambda p: p.alpha) if reached else min(curve, key=lambda p: (p.val_asr, p.alpha))


def alpha_scan(inputs: DefenseInputs, trigger_vector: task_vectors.StateDict, grid: list[float]) -> list[AlphaPoint]:
    """Validation CA and ASR of theta_b - alpha * tau_t for every alpha (and alpha = 0), weights swapped in place."""
    clip = inputs.classifier.clip
    curve = []
    for alpha in tqdm(sorted({0.0, *map(float, grid)}), desc="tbar: alpha scan", leave=False, disable=None):
        clip.load_state_dict(task_vectors.add(inputs.backdoored, trigger_vector, -alpha))
        metrics = evaluate(
            inputs.classifier, inputs.val, inputs.image_size, inputs.eval_batch_size, inputs.attack,
            inputs.target_class, seed=inputs.seed, precision=inputs.precision,
        )  # fmt: skip
        curve.append(AlphaPoint(alpha=alpha, val_clean_acc=metrics.clean_acc, val_asr=metrics.asr))
    clip.load_state_dict(inputs.backdoored)
    return curve


# The settings that shape the trigger vector (the alpha grid and kappa only choose how much of it to subtract).
VECTOR_KEYS = ("num_samples", "clean_fraction", "start", "params", "steps", "batch_size", "lr", "weight_decay", "warmup_steps")


def trigger_vector_spec(inputs: DefenseInputs, cfg: TbarConfig) -> dict:
    variant = {key: getattr(cfg, key) for key, default in TBAR_VARIANT_DEFAULTS.items() if getattr(cfg, key) != default}
    return {
        "backdoored": inputs.backdoored_spec,
        "tbar": {**{key: getattr(cfg, key) for key in VECTOR_KEYS}, **variant},
        "target_class": inputs.target_class,
        "seed": inputs.seed,
        "precision": inputs.precision.name,
    }


def draw_triggered_samples(inputs: DefenseInputs, cfg: TbarConfig) -> ImageSet | CaptionCorpus:
    """The pool images TBAR's fine-tunes see: ``cfg.num_samples`` of the pool, or of its non-target images (in the
    contrastive setting: of the defender's pairs)."""
    if inputs.contrastive:
        return draw_samples(inputs.pairs, cfg.num_samples, inputs.seed)
    pool = inputs.pool
    if cfg.images == "non_target":
        pool = pool.subset(torch.nonzero(pool.labels != inputs.target_class).flatten())
        if len(pool) < cfg.num_samples:
            raise UserError(
                f"defense.num_samples={cfg.num_samples} exceeds the {len(pool)} pool images outside the target class "
                f"{inputs.target_class}; lower it or use defense.images=all"
            )
    return draw_samples(pool, cfg.num_samples, inputs.seed)


def _finetune_vector(inputs: DefenseInputs, cfg: TbarConfig, data, start, desc: str):
    """``start`` fine-tuned on ``data`` minus ``start``, over ``cfg.params``; with the fine-tune's result."""
    clip = inputs.classifier.clip
    clip.load_state_dict(start)
    params = trainable_parameters(clip, cfg.params)
    settings = OptimSettings(cfg.steps, cfg.batch_size, cfg.lr, cfg.weight_decay, cfg.warmup_steps, cfg.optimizer)
    if isinstance(data, CaptionCorpus):
        if cfg.loss != "ce":
            raise UserError(f"defense.loss={cfg.loss} applies to setting=classification; the contrastive form uses the CLIP loss")
        result = finetune_pairs(
            inputs.classifier, list(params.values()), data, inputs.attack, inputs.image_size, settings,
            seed=inputs.seed, desc=desc, precision=inputs.precision,
        )  # fmt: skip
    else:
        result = finetune_classifier(
            inputs.classifier, list(params.values()), data, inputs.attack, inputs.image_size, settings,
            seed=inputs.seed, desc=desc, precision=inputs.precision, criterion=cfg.loss,
        )  # fmt: skip
    finetuned = clip.state_dict()
    return task_vectors.subtract({k: finetuned[k] for k in params}, start), result


def triggered_set(inputs: DefenseInputs, samples, clean_count: int):
    """The trigger fine-tune's data: samples triggered and labelled with (paired with captions naming) the target,
    the first ``clean_count`` left clean with their own labels (captions)."""
    if inputs.contrastive:
        return triggered_target_pairs(samples, inputs.target_captions, clean_count, seed=inputs.seed)
    return triggered_target_set(samples, inputs.target_class, clean_count)


def untriggered_set(inputs: DefenseInputs, samples, contrast: str):
    """The contrast fine-tune's data: the same images without the trigger, with the target's labels (captions)
    (``contrast=target``) or their own (``own_labels``)."""
    if inputs.contrastive:
        return untriggered_pairs(samples, inputs.target_captions if contrast == "target" else None, seed=inputs.seed)
    labels = torch.full_like(samples.labels, inputs.target_class) if contrast == "target" else samples.labels
    return TriggerableSet(samples.images, labels, torch.zeros(len(samples), dtype=torch.bool, device=labels.device))


def estimate_trigger_vector(inputs: DefenseInputs, cfg: TbarConfig) -> tuple[task_vectors.StateDict, dict]:
    """tau_t = theta_b' - theta_start, theta_b' fine-tuned from ``cfg.start`` on triggered samples labelled with
    the target class (minus the same fine-tune on the clean images under ``cfg.contrast``); with metadata
    (samples, seconds, final loss)."""
    samples = draw_triggered_samples(inputs, cfg)
    clean_count = int(round(cfg.clean_fraction * len(samples)))
    start = inputs.backdoored if cfg.start == "backdoored" else inputs.pretrained
    triggered = triggered_set(inputs, samples, clean_count)
    vector, result = _finetune_vector(inputs, cfg, triggered, start, "tbar: trigger fine-tune")
    seconds = result.seconds
    if cfg.contrast != "none":
        untriggered = untriggered_set(inputs, samples, cfg.contrast)
        contrast, contrast_result = _finetune_vector(inputs, cfg, untriggered, start, "tbar: contrast fine-tune")
        vector = task_vectors.add(vector, contrast, -1.0) if cfg.contrast_op == "subtract" else task_vectors.project_out(vector, contrast)
        seconds += contrast_result.seconds
    start = {"start_loss": result.losses[0] if result.losses else None, "start_grad_norm": result.start_grad_norm}
    return vector, {"samples": len(samples), "seconds": seconds, "final_loss": result.final_loss, **start}


def defend(inputs: DefenseInputs, cfg: TbarConfig) -> DefenseOutcome:
    if cfg.start == "pretrained" and inputs.pretrained is None:
        raise UserError("defense.start=pretrained needs theta_pre, which this run does not have")
    if inputs.cache is not None and inputs.backdoored_spec is not None:
        vector, meta, from_cache = inputs.cache.get_or_build(
            "trigger_vector", trigger_vector_spec(inputs, cfg), lambda: estimate_trigger_vector(inputs, cfg)
        )
    else:
        (vector, meta), from_cache = estimate_trigger_vector(inputs, cfg), False
    device = inputs.backdoored[next(iter(vector))].device
    trigger_vector = {k: v.to(device) for k, v in vector.items()}

    curve = alpha_scan(inputs, trigger_vector, cfg.alpha_grid)
    points = {"kappa": select_alpha(curve, cfg.kappa), "asr_target": select_by_asr_target(curve, cfg.asr_target)}
    chosen_point = points[cfg.alpha_rule]
    log.info(
        "tbar: alpha=%g (val CA %.3f, val ASR %.3f); |tau_t|=%.4f",
        chosen_point.alpha, chosen_point.val_clean_acc, chosen_point.val_asr, task_vectors.norm(trigger_vector),
    )  # fmt: skip
    extras = {
        "trigger_vector": trigger_vector, "trigger_vector_from_cache": from_cache,
        "trigger_finetune_seconds": meta["seconds"], "trigger_finetune_loss": meta["final_loss"],
        # where the estimate starts (meta of vectors cached before these were kept has neither)
        "trigger_finetune_start_loss": meta.get("start_loss"), "trigger_finetune_start_grad_norm": meta.get("start_grad_norm"),
        "operating_points": {rule: point.alpha for rule, point in points.items()}, "alpha_rule": cfg.alpha_rule,
        "asr_target": cfg.asr_target, "asr_target_reached": any(p.val_asr <= cfg.asr_target for p in curve),
    }  # fmt: skip
    return DefenseOutcome(
        state=task_vectors.add(inputs.backdoored, trigger_vector, -chosen_point.alpha),
        samples=meta["samples"],
        alpha=chosen_point.alpha,
        alpha_curve=[asdict(p) for p in curve],
        extras=extras,
    )
