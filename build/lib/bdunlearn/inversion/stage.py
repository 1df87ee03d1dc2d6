"""The inversion stage of an ``attack_knowledge=unknown`` run: invert (cached), estimate the target and judge each
candidate trigger, keep the first judged backdoored (else the last), save.

The defender sees theta_b, its clean pool and the public pretrained model theta_pre that theta_b was fine-tuned from
(the reference check, ``reference.py``). What comes out replaces the real trigger and target in TBAR's inputs; the
attack's real trigger is still used to *evaluate* the defended model on test.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch

from bdunlearn.attacks.preview import save_png, trigger_grid
from bdunlearn.cache import ArtifactCache
from bdunlearn.config.keys import inversion_settings
from bdunlearn.data.images import ImageSet
from bdunlearn.inversion import REGISTRY, reference
from bdunlearn.inversion.base import (
    InversionContext,
    InvertedTrigger,
    estimate_target,
    pool_subset,
)
from bdunlearn.models.checkpoint import save_state_dict
from bdunlearn.runtime import Precision
from bdunlearn.task_vectors import StateDict
from bdunlearn.tracking import Tracker

log = logging.getLogger(__name__)
PREVIEW_IMAGES = 8


@dataclass
class Found:
    trigger: InvertedTrigger  # target_class is the estimate
    target_class: int
    detected: bool
    record: dict = field(default_factory=dict)  # keys for the run record


def cache_spec(inversion_cfg, suspect_spec: dict, precision: Precision) -> dict:
    """What determines the inverted trigger: the suspicious model and pool (``suspect_spec``) and the method's
    settings, minus those of the verdict."""
    return {"suspect": suspect_spec, "inversion": inversion_settings(inversion_cfg), "precision": precision.name}


@dataclass
class Judged:
    """One candidate trigger with its target estimate and verdict."""

    trigger: InvertedTrigger
    meta: dict  # the method's numbers for this candidate ("score": its statistic)
    target: int
    share: float
    statistic_detected: bool
    specificity: reference.Specificity
    detected: bool

    def summary(self) -> dict:
        """The candidate's line in the record's ``inversion_candidates``."""
        budget = {"norm_bound": self.meta["norm_bound"]} if "norm_bound" in self.meta else {}
        return {
            **budget,
            "target_class": self.target,
            "statistic": float(self.meta["score"]),
            "flip_rate": self.specificity.suspect_flip_rate,
            "reference_flip_rate": self.specificity.reference_flip_rate,
            "transfer": self.specificity.transfer,
            "detected": self.detected,
        }


def invert_cached(
    inversion_cfg, context: InversionContext, backdoored: StateDict, cache: ArtifactCache, suspect_spec: dict
) -> tuple[list[tuple[InvertedTrigger, dict]], bool]:
    """The method's candidate triggers on theta_b (loaded into ``context.classifier``), each with its numbers ("score":
    its statistic), from the cache when the suspect, pool and settings match; and whether they came from it."""
    module = REGISTRY[inversion_cfg.name]
    classifier = context.classifier

    def build():
        classifier.clip.load_state_dict(backdoored)
        results = module.invert(context, inversion_cfg)
        tensors = {f"{i}.{k}": v for i, result in enumerate(results) for k, v in result.trigger.tensors().items()}
        return tensors, {"candidates": [{"score": result.score, **result.meta} for result in results]}

    spec = cache_spec(inversion_cfg, suspect_spec, context.precision)
    tensors, meta, from_cache = cache.get_or_build("inversion", spec, build)
    device = context.pool.images.device
    candidates = []
    for i, candidate_meta in enumerate(meta["candidates"]):
        prefix = f"{i}."
        own = {k.removeprefix(prefix): v.to(device) for k, v in tensors.items() if k.startswith(prefix)}
        candidates.append((module.rebuild(own, inversion_cfg), candidate_meta))
    return candidates, from_cache


def judge(module, inversion_cfg, context: InversionContext, trigger, meta: dict, num_classes: int, backdoored, pretrained) -> Judged:
    """Target estimate on theta_b, the method's own verdict and the reference check of one candidate."""
    context.classifier.clip.load_state_dict(backdoored)
    target, share, _ = estimate_target(context, trigger, num_classes)
    trigger.target_class = target
    statistic_detected = bool(module.is_detected(float(meta["score"]), inversion_cfg))
    specificity = reference.measure(context, trigger, target, backdoored, pretrained, inversion_cfg.reference_min_flip)
    detected = reference.verdict(inversion_cfg.detection, statistic_detected, specificity, inversion_cfg.reference_threshold)
    return Judged(trigger, meta, target, share, statistic_detected, specificity, detected)


def run(
    inversion_cfg,
    classifier,
    backdoored: StateDict,
    pretrained: StateDict,
    pool: ImageSet,
    num_classes: int,
    image_size: int,
    batch_size: int,
    precision: Precision,
    cache: ArtifactCache,
    suspect_spec: dict,
    run_dir: Path,
    tracker: Tracker,
) -> Found:
    module = REGISTRY[inversion_cfg.name]
    subset = pool_subset(pool, inversion_cfg.num_samples, inversion_cfg.seed)
    context = InversionContext(classifier, subset, image_size, batch_size, precision)
    candidates, from_cache = invert_cached(inversion_cfg, context, backdoored, cache, suspect_spec)
    judged = []
    for i, (trigger, candidate_meta) in enumerate(candidates):
        candidate = judge(module, inversion_cfg, context, trigger, candidate_meta, num_classes, backdoored, pretrained)
        judged.append(candidate)
        specificity = candidate.specificity
        log.info(
            "inversion %s, candidate %d/%d%s: statistic %.4f (%s by its threshold); estimated target %d (%.0f%% of the pool's "
            "votes), flip rate %.3f on theta_b, %.3f on theta_pre (transfer %.3f) → %s (detection=%s)%s",
            inversion_cfg.name, i + 1, len(candidates),
            f" (pixel budget {candidate_meta['norm_bound']:g})" if "norm_bound" in candidate_meta else "",
            float(candidate_meta["score"]), "backdoored" if candidate.statistic_detected else "not backdoored", candidate.target,
            100 * candidate.share, specificity.suspect_flip_rate, specificity.reference_flip_rate, specificity.transfer,
            "backdoored" if candidate.detected else "not backdoored", inversion_cfg.detection, " (cached)" if from_cache else "",
        )  # fmt: skip
    # the first candidate judged backdoored (BTI-DBF: the smallest pixel budget that finds one), else the last
    chosen_index = next((i for i, candidate in enumerate(judged) if candidate.detected), len(judged) - 1)
    chosen = judged[chosen_index]
    trigger, target, detected, specificity = chosen.trigger, chosen.target, chosen.detected, chosen.specificity
    score = float(chosen.meta["score"])
    detection_score = score if inversion_cfg.detection == "statistic" else specificity.transfer

    save_state_dict(
        run_dir / "inverted_trigger.safetensors", trigger.tensors(),
        metadata={"inversion": vars(inversion_cfg), "score": score, "transfer": specificity.transfer, "detected": detected, "target_class": target},
    )  # fmt: skip
    victims = torch.nonzero(subset.labels != target).flatten()[:PREVIEW_IMAGES]
    preview = save_png(trigger_grid(trigger, subset.images[victims], image_size), run_dir / "inverted_trigger.png")
    tracker.log_image("inversion/trigger", preview, caption=f"{inversion_cfg.name}: clean / inverted trigger / |difference|")
    record = {
        "inversion": inversion_cfg.name,
        "detected": detected,
        "detection": inversion_cfg.detection,
        "detection_score": detection_score,  # the statistic the verdict rests on (the transfer unless detection=statistic)
        "target_class_estimated": target,
        "inversion_statistic": score,  # the method's own (DECREE: PL1-norm; BTI-DBF: flip rate)
        "inversion_statistic_detected": chosen.statistic_detected,
        "inversion_target_share": chosen.share,
        "inversion_flip_rate": specificity.suspect_flip_rate,
        "inversion_reference_flip_rate": specificity.reference_flip_rate,
        "inversion_transfer": specificity.transfer,
        "inversion_candidate": chosen_index,  # which of inversion_candidates the run kept
        "inversion_candidates": [candidate.summary() for candidate in judged],
        "inversion_samples": len(subset),
        "inversion_seconds": judged[-1].meta.get("seconds"),  # the whole inversion (every candidate)
        "inversion_from_cache": from_cache,
        # the method's own numbers (DECREE: pool similarity, lambda; BTI-DBF: budget, pixel and feature MSEs, mask CEs)
        "inversion_details": {k: v for k, v in chosen.meta.items() if isinstance(v, (bool, int, float, str))},
    }
    tracker.log({f"inversion/{k}": v for k, v in record.items() if isinstance(v, (int, float, bool))})
    return Found(trigger=trigger, target_class=target, detected=detected, record=record)
