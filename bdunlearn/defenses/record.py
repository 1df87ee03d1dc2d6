"""The record's keys about a defense's outcome beyond the defended model's CA / ASR / RA: its trigger vector (TBAR)
and, for a defense that picks among operating points, every point's test numbers."""

from __future__ import annotations

from collections.abc import Callable

from bdunlearn import task_vectors
from bdunlearn.defenses.base import DefenseOutcome
from bdunlearn.task_vectors import StateDict


def trigger_vector_keys(outcome: DefenseOutcome, backdoored: StateDict, pretrained: StateDict) -> dict:
    """Cache use, cost and cosine with theta_b - theta_pre of a defense's trigger vector (TBAR)."""
    keys = (
        "trigger_vector_from_cache", "trigger_finetune_seconds", "trigger_finetune_loss", "trigger_finetune_start_loss",
        "trigger_finetune_start_grad_norm",
    )  # fmt: skip
    record = {key: outcome.extras[key] for key in keys if key in outcome.extras}
    if "trigger_vector" in outcome.extras:
        vector = outcome.extras["trigger_vector"]
        attack_vector = task_vectors.subtract({k: backdoored[k] for k in vector}, pretrained)
        record["cosine_trigger_attack"] = task_vectors.cosine(vector, attack_vector)
    return record


def operating_point_keys(outcome: DefenseOutcome, backdoored: StateDict, evaluate: Callable, defended: dict) -> dict:
    """``alpha_<rule>``, ``clean_acc_<rule>``, ``asr_<rule>``, ``robust_acc_<rule>`` and ``clean_acc_retained_<rule>``
    of each operating point (TBAR: ``kappa`` and ``asr_target``), on test; the chosen point's numbers are the
    defended model's (``defended``), the others are evaluated here."""
    points = outcome.extras.get("operating_points") or {}
    record = {"alpha_rule": outcome.extras.get("alpha_rule")} if points else {}
    if "asr_target_reached" in outcome.extras:
        record["asr_target"] = outcome.extras["asr_target"]
        record["asr_target_reached_on_val"] = outcome.extras["asr_target_reached"]
    for rule, alpha in points.items():
        if alpha == outcome.alpha:
            metrics = {k: defended[k] for k in ("clean_acc", "asr", "robust_acc")}
        else:
            metrics = evaluate(task_vectors.add(backdoored, outcome.extras["trigger_vector"], -alpha)).as_dict()
        record[f"alpha_{rule}"] = alpha
        record.update({f"{k}_{rule}": v for k, v in metrics.items()})
        ca = defended.get("clean_acc_backdoored")
        record[f"clean_acc_retained_{rule}"] = metrics["clean_acc"] / ca if ca else None
    return record
