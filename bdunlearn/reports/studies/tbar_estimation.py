"""Why TBAR misses the paper's claim here: one section per suspect (the operating point, the estimate of τ_t, the
attacker's regime, the quality of θ_pre), each from the run records of its own sweeps, and a closing paragraph
that names the factor that moves TBAR furthest towards the claim, with the numbers.

The yardstick throughout is the paper's claim (``criteria``): test ASR ≤ ``PAPER_ASR`` with ≥ ``PAPER_CA_KEPT``
of θ_b's CA kept. Its *gap* for a configuration is ``PAPER_CA_KEPT`` − the CA kept at the ASR-target operating
point (the smallest α whose validation ASR ≤ ``defense.asr_target``): how much more clean accuracy TBAR gives
up than the claim allows, once it removes the backdoor. Each section's first row is its baseline (the paper's
recipe on that section's testbed); a configuration's gain is how much it shrinks the baseline's gap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from bdunlearn.errors import UserError
from bdunlearn.reports.criteria import PAPER_CA_KEPT
from bdunlearn.reports.records import load_records
from bdunlearn.reports.tables import cell

CONTROL_KEPT = 0.9  # a paper-like attacker keeps at least this share of θ_pre's control accuracy
COSINE_AIM = 0.3  # the aim for cos(τ_t, θ_b − θ_c)
KAPPA = {"asr": "asr_kappa", "kept": "clean_acc_retained_kappa"}
TARGET = {"asr": "asr_asr_target", "kept": "clean_acc_retained_asr_target"}


@dataclass(frozen=True)
class Column:
    key: str  # a record key (or one derived in ``derive``)
    header: str


COMMON = (
    Column("cosine_trigger_poison", "cos(τ_t, θ_b − θ_c)"),
    Column("cosine_trigger_attack", "cos(τ_t, θ_b − θ_pre)"),
    Column(KAPPA["asr"], "test ASR, κ rule"),
    Column(KAPPA["kept"], "CA kept, κ rule"),
    Column(TARGET["asr"], "test ASR, ASR target"),
    Column(TARGET["kept"], "CA kept, ASR target"),
    Column("gap", "gap to the claim"),
)
REGIME = (
    Column("asr_backdoored", "θ_b ASR"),
    Column("control_kept", "θ_b control kept"),
    Column("clean_acc_backdoored", "θ_b CA"),
)
PRETRAINING = (
    Column("clean_acc_pretrained", "θ_pre zero-shot CA"),
    Column("xi_at_one", "ξ(1,1), θ_b − θ_c"),
    Column("xi_disentangled_area", "area ξ ≤ 0.1, θ_b − θ_c"),
    Column("xi_trigger_vector_at_one", "ξ(1,1), τ_t"),
    Column("xi_trigger_vector_disentangled_area", "area ξ ≤ 0.1, τ_t"),
)
# the knobs a section's rows differ by, in the order they are named (only those that vary are shown)
ESTIMATE_KNOBS = (
    "cfg.defense.optimizer", "cfg.defense.loss", "cfg.defense.lr", "cfg.defense.num_samples", "cfg.defense.start",
    "cfg.defense.contrast", "cfg.defense.contrast_op", "cfg.defense.images", "cfg.defense.steps",
)  # fmt: skip
REGIME_KNOBS = ("cfg.finetune.lr", "cfg.finetune.steps", "cfg.attack.poison_rate")
PRETRAINING_KNOBS = ("cfg.model.pretrain.steps", "cfg.model.pretrain.corpus", "cfg.model.pretrain.corpus_fractions")


def derive(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    if TARGET["kept"] in frame:
        frame["gap"] = PAPER_CA_KEPT - pd.to_numeric(frame[TARGET["kept"]], errors="coerce")
    if {"control_acc_backdoored", "control_acc_pretrained"} <= set(frame.columns):
        frame["control_kept"] = frame["control_acc_backdoored"] / frame["control_acc_pretrained"]
    return frame


def varying(frame: pd.DataFrame, knobs: tuple[str, ...]) -> list[str]:
    """The knobs (or, for a dict-valued knob, its flattened entries) whose value differs between records."""
    columns = [c for k in knobs for c in frame.columns if c == k or c.startswith(k + ".")]
    return [c for c in columns if frame[c].map(str).nunique() > 1]


def _value(row: pd.Series, knob: str) -> str:
    value = row[knob]
    if isinstance(value, float) and math.isnan(value):
        return "unset"
    return str(value).replace("${dataset.name}", str(row.get("dataset", "${dataset.name}")))


def _name(knob: str) -> str:
    """The knob's last key; a dict-valued knob's entry keeps its parent ("corpus_fractions.digits")."""
    parts = knob.split(".")
    return ".".join(parts[-2:]) if len(parts) > 2 and parts[-2] not in {"defense", "finetune", "attack", "pretrain"} else parts[-1]


def configuration(row: pd.Series, knobs: list[str], baseline: pd.Series) -> str:
    """The knobs in which ``row`` differs from the section's baseline (the baseline: all of them, marked)."""
    if all(str(row[k]) == str(baseline[k]) for k in knobs):
        named = [k for k in knobs if _value(row, k) != "unset"]
        return "baseline: " + (", ".join(f"{_name(k)}={_value(row, k)}" for k in named) or "as configured")
    return ", ".join(f"{_name(k)}={_value(row, k)}" for k in knobs if str(row[k]) != str(baseline[k]))


def rows_of(frame: pd.DataFrame, knobs: tuple[str, ...], by_attack: bool = True) -> pd.DataFrame:
    """One row per (attack, configuration of the varying ``knobs``, label), baseline first: the configuration
    of the section's first source."""
    frame = derive(frame)
    shown = varying(frame, knobs)
    frame["configuration"] = [configuration(row, shown, frame.iloc[0]) for _, row in frame.iterrows()]
    order = list(dict.fromkeys(frame["configuration"]))
    frame["order"] = frame["configuration"].map(order.index)
    return frame.sort_values(["attack", "order", "label", "seed"] if by_attack else ["order", "label", "seed"])


def table(frame: pd.DataFrame, columns: tuple[Column, ...]) -> str:
    present = [c for c in columns if c.key in frame and frame[c.key].notna().any()]
    header = ["attack", "configuration", "defense", "seeds", *(c.header for c in present)]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for (attack, configuration, label), group in frame.groupby(["attack", "configuration", "label"], sort=False):
        cells = [f"`{attack}`", configuration, f"`{label}`", str(group["seed"].nunique())]
        lines.append("| " + " | ".join([*cells, *(cell(group[c.key]) for c in present)]) + " |")
    return "\n".join(lines)


def paired_gain(frame: pd.DataFrame, baseline: str, other: str) -> tuple[float, int, int]:
    """Mean of the CA kept at the ASR target of ``other`` minus ``baseline``'s, paired by attack and seed; how
    many pairs ``other`` wins and how many there are."""
    tbar = frame[frame["defense"] == "tbar"]
    base = tbar[tbar["configuration"] == baseline].set_index(["attack", "seed"])[TARGET["kept"]]
    rival = tbar[tbar["configuration"] == other].set_index(["attack", "seed"])[TARGET["kept"]]
    both = base.index.intersection(rival.index)
    if not len(both):
        return float("nan"), 0, 0
    differences = rival.loc[both] - base.loc[both]
    return float(differences.mean()), int((differences > 0).sum()), len(both)


def reliably_better(wins: int, pairs: int, frame: pd.DataFrame) -> bool:
    """The issue's bar for a variant to become an option: better on every seed of at least two attacks."""
    return pairs > 0 and wins == pairs and frame["attack"].nunique() >= 2


def load(sources: list[str]) -> pd.DataFrame:
    frame = load_records(sources)
    if frame.empty:
        raise UserError(f"no ok run records under {', '.join(sources)}")
    for column in ("attack", "seed", "label", "defense"):
        if column not in frame:
            raise UserError(f"records under {', '.join(sources)} lack {column!r}; give bdunlearn run or sweep dirs")
    return frame
