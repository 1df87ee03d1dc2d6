"""``results/tbar_estimation.md``: the four suspects' sections and the closing paragraph, in words computed from
the numbers (``tbar_estimation`` holds the tables and the measures)."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import pandas as pd

from bdunlearn.atomic import write_text_atomic
from bdunlearn.reports.criteria import PAPER_ASR, PAPER_CA_KEPT, PLANTED_ASR
from bdunlearn.reports.provenance import sweep_command, sweeps_among
from bdunlearn.reports.studies import tbar_estimation as te
from bdunlearn.reports.studies import tbar_estimation_maps

SUSPECTS = {
    "operating_point": "1. The operating point",
    "estimate": "2. The estimate of the trigger vector",
    "regime": "3. The attacker's regime",
    "pretraining": "4. The quality of θ_pre",
}
EXTRA = (te.Column("trigger_finetune_start_loss", "trigger fine-tune: start loss"),
         te.Column("trigger_finetune_start_grad_norm", "start gradient norm"))  # fmt: skip
DEFENDED = (te.Column("asr", "test ASR (defended)"), te.Column("clean_acc_retained", "CA kept (defended)"))


def mean(frame: pd.DataFrame, key: str) -> float:
    return float(pd.to_numeric(frame[key], errors="coerce").mean()) if key in frame else float("nan")


def tbar_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """TBAR with the paper's recipe (label ``tbar``; named variants such as ``tbar_margin`` carry their own)."""
    return frame[frame["label"] == "tbar"]


def cosine(frame: pd.DataFrame) -> tuple[str, float]:
    """cos(τ_t, θ_b − θ_c) where the runs have θ_c, else cos(τ_t, θ_b − θ_pre)."""
    poison = mean(frame, "cosine_trigger_poison")
    return ("θ_b − θ_c", poison) if not math.isnan(poison) else ("θ_b − θ_pre", mean(frame, "cosine_trigger_attack"))


def meeting_claim(frame: pd.DataFrame) -> list[str]:
    """Labels whose seeds' mean test ASR and CA kept meet the paper's claim."""
    means = frame.groupby("label")[["asr", "clean_acc_retained"]].mean()
    return [label for label, row in means.iterrows() if row["asr"] <= PAPER_ASR and row["clean_acc_retained"] >= PAPER_CA_KEPT]


def gaps(frame: pd.DataFrame) -> dict[str, float]:
    """TBAR's mean gap to the claim per configuration, in the section's order."""
    tbar = tbar_rows(frame)
    return {c: mean(tbar[tbar["configuration"] == c], "gap") for c in dict.fromkeys(tbar["configuration"])}


def operating_point(frame: pd.DataFrame) -> tuple[str, dict]:
    tbar = tbar_rows(frame)
    tbar = tbar[tbar["configuration"] == tbar["configuration"].iloc[0]]  # the paper's recipe only
    kappa_asr, target_asr = mean(tbar, te.KAPPA["asr"]), mean(tbar, te.TARGET["asr"])
    kappa_kept, target_kept = mean(tbar, te.KAPPA["kept"]), mean(tbar, te.TARGET["kept"])
    met = {rule: float((tbar[k["asr"]] <= PAPER_ASR).mul(tbar[k["kept"]] >= PAPER_CA_KEPT).mean()) for rule, k in (("κ", te.KAPPA), ("ASR target", te.TARGET))}
    text = (
        f"The κ rule (lowest validation ASR keeping ≥ {PAPER_CA_KEPT:.0%} of CA) leaves a mean test ASR of "
        f"{kappa_asr:.3f} at {kappa_kept:.3f} of CA kept; the ASR-target rule (smallest α with validation ASR ≤ "
        f"{PAPER_ASR}) reaches a test ASR of {target_asr:.3f} at {target_kept:.3f} of CA kept. Runs meeting the claim: "
        f"{met['κ']:.0%} under the κ rule, {met['ASR target']:.0%} under the ASR-target rule. **Verdict:** the "
        f"operating point explains the headline \"TBAR leaves ASR {kappa_asr:.1f}\" (the κ rule stops where CA would "
        f"drop below {PAPER_CA_KEPT:.0%}), but not the gap to the claim: where the backdoor is removed, CA kept "
        f"falls short of {PAPER_CA_KEPT} by {PAPER_CA_KEPT - target_kept:.3f}."
    )  # fmt: skip
    return text, {"gap": PAPER_CA_KEPT - target_kept}


def estimate(frame: pd.DataFrame) -> tuple[str, dict]:
    tbar = tbar_rows(frame)
    by_config = tbar.groupby("configuration", sort=False)
    cosines = by_config["cosine_trigger_poison"].mean()
    baseline = next(iter(by_config.groups))
    lines, better = [], []
    for other in list(by_config.groups)[1:]:
        gain, wins, pairs = te.paired_gain(frame, baseline, other)
        lines.append(f"`{other}`: {gain:+.3f} CA kept at the ASR target ({wins} of {pairs} attack × seed pairs better)")
        if te.reliably_better(wins, pairs, tbar[tbar["configuration"] == other]):
            better.append(other)
    valid = tbar[["cosine_trigger_poison", te.TARGET["kept"]]].apply(pd.to_numeric, errors="coerce").dropna()
    correlation = valid.corr().iloc[0, 1] if len(valid) > 2 else float("nan")
    best = cosines.idxmax()
    text = (
        f"Against the paper's recipe (`{baseline}`), paired by attack and seed: " + "; ".join(lines) + ". "
        f"The highest cos(τ_t, θ_b − θ_c) is {cosines.max():.3f} (`{best}`), "
        + ("reaching" if cosines.max() >= te.COSINE_AIM else "short of")
        + f" the aim of {te.COSINE_AIM}; across the runs, cos and CA kept at the ASR target correlate at r = {correlation:.2f}. "
        + (f"**Reliably better** (every seed of every attack): {', '.join(f'`{b}`' for b in better)}." if better
           else "**No variant is reliably better** (every seed of at least two attacks).")
    )  # fmt: skip
    by_gap = gaps(frame)
    best = min(by_gap, key=by_gap.get)
    return text, {"gap": by_gap[baseline], "best_gap": by_gap[best], "best": best, "better": better}


def regime(frame: pd.DataFrame) -> tuple[str, dict]:
    verdicts, numbers = [], {}
    for config, group in frame.groupby("configuration", sort=False):
        planted = mean(group, "asr_backdoored")
        control = mean(group, "control_kept")
        paper_like = planted >= PLANTED_ASR and control >= te.CONTROL_KEPT
        tbar = tbar_rows(group)
        direction, cos = cosine(tbar)
        numbers[config] = {"paper_like": paper_like, "gap": mean(tbar, "gap")}
        met = meeting_claim(group)
        verdicts.append(
            f"`{config}`: θ_b ASR {planted:.3f}, control kept {control:.3f} ({'paper-like' if paper_like else 'not paper-like'}); "
            f"TBAR's cos(τ_t, {direction}) {cos:.3f}, gap to the claim {numbers[config]['gap']:.3f}; meeting the claim: "
            + (", ".join(f"`{label}`" for label in met) if met else "no defense")
        )
    configs = list(numbers)
    change = numbers[configs[-1]]["gap"] - numbers[configs[0]]["gap"] if len(configs) > 1 else float("nan")
    text = "; ".join(verdicts) + f". **Verdict:** the regime changes TBAR's gap by {change:+.3f} (last row against the first)."
    return text, {"gap": numbers[configs[0]]["gap"], "best_gap": min(n["gap"] for n in numbers.values()), "rows": numbers}


def pretraining(frame: pd.DataFrame) -> tuple[str, dict]:
    parts, numbers = [], {}
    for config, group in frame.groupby("configuration", sort=False):
        reference, tbar = group[group["defense"] != "tbar"], tbar_rows(group)
        numbers[config] = mean(tbar, "gap")
        parts.append(
            f"`{config}`: zero-shot CA {mean(group, 'clean_acc_pretrained'):.3f}, ξ(1,1) of θ_b − θ_c "
            f"{mean(reference, 'xi_at_one'):.3f}, of τ_t {mean(tbar, 'xi_trigger_vector_at_one'):.3f}, cos(τ_t, θ_b − θ_c) "
            f"{mean(tbar, 'cosine_trigger_poison'):.3f}, gap {numbers[config]:.3f}"
        )
    configs = list(numbers)
    change = numbers[configs[-1]] - numbers[configs[0]] if len(configs) > 1 else float("nan")
    text = "; ".join(parts) + f". **Verdict:** along the ladder TBAR's gap changes by {change:+.3f} (top rung against the first)."
    return text, {"gap": numbers[configs[0]], "best_gap": min(numbers.values()), "gaps": numbers}


def closing(found: dict[str, dict]) -> str:
    """Which suspect moves TBAR furthest towards the claim, each measured against its own section's baseline."""
    baseline = found.get("operating_point", found.get("estimate", {})).get("gap", float("nan"))
    sentences = [
        f"On the default testbed the paper's recipe reaches ASR ≤ {PAPER_ASR} keeping {PAPER_CA_KEPT - baseline:.3f} of "
        f"θ_b's CA: a gap of {baseline:.3f} to the claim's {PAPER_CA_KEPT}, which the κ rule turns into a high ASR "
        "instead (suspect 1: the rule moves along the trade-off, it does not change it)."
    ]  # fmt: skip
    changes = {}
    if "estimate" in found:
        e = found["estimate"]
        changes["estimate"] = e["gap"] - e["best_gap"]
        sentences.append(
            f"The best estimate of τ_t (`{e['best']}`) shrinks that gap by {changes['estimate']:.3f} to {e['best_gap']:.3f}"
            + (", reliably (every seed of every attack)." if e["best"] in e["better"] else ".")
        )
    if "regime" in found:
        rows = found["regime"]["rows"]
        described = [f"`{c}` ({'paper-like' if r['paper_like'] else 'not paper-like'}) {r['gap']:.3f}" for c, r in rows.items()]
        first = next(iter(rows.values()))["gap"]
        changes["regime"] = first - min(r["gap"] for r in rows.values())
        sentences.append(f"On the Fashion-MNIST testbed TBAR's gap per attacker regime is {', '.join(described)}.")
    if "pretraining" in found:
        gaps = found["pretraining"]["gaps"]
        first = next(iter(gaps.values()))
        changes["pretraining"] = first - min(gaps.values())
        sentences.append("Along the pretraining ladder the gap is " + ", ".join(f"{g:.3f} (`{c}`)" for c, g in gaps.items()) + ".")
    if not changes:
        return " ".join(sentences)
    leader = max(changes, key=changes.get)
    name = SUSPECTS[leader][3:].lower()
    if changes[leader] <= 0.01:
        sentences.append(f"**No suspect explains the gap**: none shrinks its baseline's gap by more than {changes[leader]:.3f}.")
    else:
        share = changes[leader] / baseline if leader == "estimate" and baseline > 0 else None
        sentences.append(
            f"**{name[0].upper() + name[1:]} explains the most of it: {changes[leader]:.3f}"
            + (f" of the {baseline:.3f} ({share:.0%})" if share is not None else "") + "**"
            + "".join(f"; {SUSPECTS[k][3:].lower()} {v:+.3f}" for k, v in changes.items() if k != leader)
            + ". No suspect closes the gap."
        )
    return " ".join(sentences)


SECTIONS = {
    "operating_point": (operating_point, te.ESTIMATE_KNOBS, te.COMMON),
    "estimate": (estimate, te.ESTIMATE_KNOBS, te.COMMON + EXTRA),
    "regime": (regime, te.REGIME_KNOBS, te.REGIME + DEFENDED + te.COMMON),
    "pretraining": (pretraining, te.PRETRAINING_KNOBS, te.PRETRAINING + DEFENDED + te.COMMON),
}


MAPS_INTRO = (
    "ξ(α_c, α_t) of the clean vector τ_c = θ_c − θ_pre with, on one side, the poison's direction θ_b − θ_c and, on "
    "the other, TBAR's own estimate τ_t (the map the paper plots), on the test split; area: the share of grid points "
    "with ξ ≤ 0.1. ASR at (1,1): of θ_pre + τ_c + the vector (for θ_b − θ_c that model is θ_b)."
)


def write(sections: dict[str, list[str]], out: Path, name: str, command: str, hardware: str, maps: list[str] | None = None) -> Path:
    body, found, sources = [], {}, []
    for key, (judge, knobs, columns) in SECTIONS.items():
        if key not in sections:
            body.append(f"## {SUSPECTS[key]}\n\nNot measured: no records were given for this suspect.")
            continue
        frame = te.rows_of(te.load(sections[key]), knobs)
        text, found[key] = judge(frame)
        sources += sections[key]
        body.append(f"## {SUSPECTS[key]}\n\n{te.table(frame, columns)}\n\n{text}")
        if key == "estimate" and maps:
            body.append(f"### ξ with TBAR's own τ_t\n\n{MAPS_INTRO}\n\n{tbar_estimation_maps.section(maps, out, name)}")
            sources += maps
    sweeps = "\n".join(f"- `{s}`: `{sweep_command(s)}`" for s in sweeps_among(sources))
    header = (
        f"# TBAR's gap to the paper's claim: which suspect explains it\n\nMade by `{command}` on "
        f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d} ({hardware}); mean ± std over seeds. The claim: test ASR ≤ "
        f"{PAPER_ASR} with ≥ {PAPER_CA_KEPT:.0%} of θ_b's CA kept. *Gap* = {PAPER_CA_KEPT} − CA kept at the ASR-target "
        f"operating point (positive: TBAR gives up more than the claim allows). Sweeps:\n{sweeps}"
    )  # fmt: skip
    text = "\n\n".join([header, *body, f"## Which factor explains the gap\n\n{closing(found)}"]) + "\n"
    path = Path(out) / f"{name}.md"
    write_text_atomic(path, text)
    return path
