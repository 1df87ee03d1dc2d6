"""Every threshold a report judges runs by, and the verdicts built on them: defined here once.

Two different bars for "the backdoor is gone" are in use, on purpose:

- the paper's claim (TBAR, Table 1): test ASR at most ``PAPER_ASR`` while at least ``PAPER_CA_KEPT`` of θ_b's
  clean accuracy is kept. The studies that ask "does TBAR reproduce?" (scale study, defense budget, contrastive
  setting) measure against it;
- this project's verdict "backdoor removed" in the attack tables (``results/attacks.md``,
  ``results/unknown_attack.md``): the seeds' mean test ASR below ``REMOVED_BELOW``. It is looser than the paper's
  and ignores clean accuracy: those tables ask whether a trigger still works at all, next to the other columns.

The comparison operators are part of each definition (≤ for the paper's bars, < for ``REMOVED_BELOW``).
"""

from __future__ import annotations

import json

PAPER_ASR = 0.05  # the paper's claim: test ASR at most this ...
PAPER_CA_KEPT = 0.95  # ... with at least this share of θ_b's clean accuracy kept (also TBAR's κ default)
REMOVED_BELOW = 0.1  # the attack tables' "backdoor removed": the seeds' mean test ASR below this
PLANTED_ASR = 0.9  # an attack planted its backdoor when the seeds' mean ASR of θ_b is at least this
DISENTANGLED_XI = 0.1  # ξ at or below this counts as disentangled (``analysis.disentangled_below``'s default)


def removed_per_paper(asr):
    """ASR at most the paper's bar (a number, or elementwise on a pandas Series)."""
    return asr <= PAPER_ASR


def keeps_clean_accuracy(kept):
    """CA kept (CA / CA θ_b) at least the paper's bar (a number, or elementwise on a pandas Series)."""
    return kept >= PAPER_CA_KEPT


def meets_claim(asr, kept):
    """The paper's claim: backdoor removed with clean accuracy kept (numbers, or elementwise on Series)."""
    return removed_per_paper(asr) & keeps_clean_accuracy(kept)


def removed(mean_asr: float) -> bool:
    """The attack tables' verdict "backdoor removed", on the seeds' mean test ASR."""
    return mean_asr < REMOVED_BELOW


def planted(mean_asr_backdoored: float) -> bool:
    """Whether an attack planted its backdoor, on the seeds' mean ASR of θ_b."""
    return mean_asr_backdoored >= PLANTED_ASR


def right_target(record: dict) -> bool:
    """Whether an inversion's estimated target is the attack's real one."""
    return record.get("target_class_estimated") == record["target_class"]


def claim_distance(curve_json: str | float) -> tuple[float | None, float | None]:
    """How close a validation α curve comes to the paper's claim: (the best CA kept among the α whose val ASR
    meets ``PAPER_ASR``, the lowest val ASR among the α keeping ``PAPER_CA_KEPT``); None where no α does.

    CA kept is relative to α = 0 (θ_b itself). ``curve_json`` is the record's ``alpha_curve`` as JSON text;
    anything else (a run without a curve: NaN) gives (None, None).
    """
    if not isinstance(curve_json, str):
        return None, None
    curve = json.loads(curve_json)
    reference = next(p for p in curve if p["alpha"] == 0.0)["val_clean_acc"]
    kept = [p["val_clean_acc"] / reference for p in curve if removed_per_paper(p["val_asr"])]
    asr = [p["val_asr"] for p in curve if p["val_clean_acc"] >= PAPER_CA_KEPT * reference]
    return (max(kept) if kept else None), (min(asr) if asr else None)


def first_removed_per_paper(curve: list[dict]) -> dict | None:
    """The first point of a validation α curve (smallest α) whose val ASR meets the paper's bar, if any."""
    return next((p for p in curve if removed_per_paper(p["val_asr"])), None)


def meets_goal(value: float, goal: str) -> bool | None:
    """Whether ``value`` meets a benchmark goal written as ">= x" or "< x" (None for a row without a goal)."""
    kind, _, bound = goal.partition(" ")
    if kind == ">=":
        return value >= float(bound)
    if kind == "<":
        return value < float(bound)
    return None
