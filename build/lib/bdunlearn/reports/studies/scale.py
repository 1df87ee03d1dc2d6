"""The scale study's report (``experiment=scale_study``): does TBAR's premise appear as the CLIP grows, and with
which variant? Per rung the testbed and the weight-space diagnostics, per rung × arm the defended numbers and
each arm's distance to the paper's claim, and the answer in prose. The figures: ``scale_plots``.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import pandas as pd

from bdunlearn.atomic import write_text_atomic
from bdunlearn.errors import UserError
from bdunlearn.reports import criteria
from bdunlearn.reports.criteria import PAPER_ASR, PAPER_CA_KEPT
from bdunlearn.reports.provenance import sweep_command, sweeps_above
from bdunlearn.reports.records import load_records
from bdunlearn.reports.studies import scale_plots
from bdunlearn.reports.studies.scale_ladder import arms, rung_name, rungs
from bdunlearn.reports.tables import cell

ARM_METRICS = ("clean_acc", "asr", "clean_acc_retained", "control_acc", "alpha", "defense_samples", "defense_seconds")
NO_VALUES = pd.Series(dtype=float)


def load(sources: list[str]) -> pd.DataFrame:
    """The study's ok records, with the fine-tune's gain, the claim's verdict and distance, and the rung's name."""
    frame = load_records(sources)
    missing = [c for c in ("model", "seed", "label") if c not in frame.columns]
    if missing:
        raise UserError(f"records lack {missing}: give the sweep of experiment=scale_study")
    frame["gain"] = frame["clean_acc_backdoored"] - frame["clean_acc_pretrained"]
    frame["meets_claim"] = criteria.meets_claim(frame["asr"], frame["clean_acc_retained"])
    distances = [criteria.claim_distance(c) for c in frame.get("alpha_curve", pd.Series([None] * len(frame)))]
    frame["val_kept_at_claim_asr"] = [d[0] for d in distances]
    frame["val_asr_at_claim_kept"] = [d[1] for d in distances]
    frame["rung"] = frame["model"].map(rung_name)
    return frame


def answer(frame: pd.DataFrame) -> list[str]:
    """The question of the study, answered from the numbers."""
    lines = []
    met = frame[frame["meets_claim"]]
    defended = frame[frame["label"] != "none"]
    if met.empty:
        lines.append(f"- **No rung and no arm reaches the claim** (test ASR ≤ {PAPER_ASR} with ≥ {PAPER_CA_KEPT:.0%} of θ_b's CA kept) in any seed.")
    else:
        pairs = sorted({(rung_name(m), a) for m, a in zip(met["model"], met["label"])})
        lines.append("- **Reached in at least one seed by:** " + ", ".join(f"{r} `{a}`" for r, a in pairs) + ".")
    for model in rungs(frame):
        runs = defended[defended["model"] == model]
        if runs.empty:
            continue
        means = runs.groupby("label")[["asr", "clean_acc_retained"]].mean()
        kept_ok = means[criteria.keeps_clean_accuracy(means["clean_acc_retained"])]
        best_asr = kept_ok["asr"].idxmin() if len(kept_ok) else None
        removed = means[criteria.removed_per_paper(means["asr"])]
        best_kept = removed["clean_acc_retained"].idxmax() if len(removed) else None
        parts = []
        if best_asr is not None:
            parts.append(f"among arms keeping ≥ {PAPER_CA_KEPT:.0%} of CA (means over seeds) the lowest ASR is `{best_asr}`'s {kept_ok.loc[best_asr, 'asr']:.3f}")
        else:
            parts.append(f"no arm keeps {PAPER_CA_KEPT:.0%} of CA on average")
        if best_kept is not None:
            parts.append(f"among arms with ASR ≤ {PAPER_ASR}, `{best_kept}` keeps the most CA ({removed.loc[best_kept, 'clean_acc_retained']:.3f})")
        else:
            parts.append(f"no arm brings mean ASR to {PAPER_ASR} or below")
        tbar_curves = runs[runs["label"].str.startswith("tbar")]
        curve_best = pd.to_numeric(tbar_curves["val_kept_at_claim_asr"], errors="coerce")
        if curve_best.notna().any():
            arm = tbar_curves.loc[curve_best.idxmax(), "label"]
            parts.append(f"on the validation curves the best TBAR variant at ASR ≤ {PAPER_ASR} keeps {curve_best.max():.3f} of CA (`{arm}`)")
        lines.append(f"- {rung_name(model)}: " + "; ".join(parts) + ".")
    trend = _trend(frame)
    if trend:
        lines.append("- Across rungs (small to large), " + trend + ".")
    return lines


def _means_across_rungs(runs: pd.DataFrame, key: str, order: list[str]) -> list[float]:
    return [pd.to_numeric(runs[runs["model"] == m][key], errors="coerce").mean() for m in order]


def _arrows(series: list[float]) -> str:
    return " → ".join("–" if pd.isna(v) else f"{v:.3f}" for v in series)


def _trend(frame: pd.DataFrame) -> str:
    order = rungs(frame)
    if len(order) < 2:
        return ""
    parts = []
    for arm in ("tbar", "interpolate"):
        series = _means_across_rungs(frame[frame["label"] == arm], "val_kept_at_claim_asr", order)
        if any(pd.notna(v) for v in series):
            parts.append(f"`{arm}`'s CA kept at validation ASR ≤ {PAPER_ASR} goes {_arrows(series)}")
    reference = frame[frame["label"] == "none"]
    if "xi_at_one" in reference:
        parts.append("ξ(1, 1) of the clean and poison vectors goes " + _arrows(_means_across_rungs(reference, "xi_at_one", order)))
    tbar = frame[frame["label"] == "tbar"]
    if "cosine_trigger_poison" in tbar:
        parts.append("cos(τ_t, θ_b − θ_c) goes " + _arrows(_means_across_rungs(tbar, "cosine_trigger_poison", order)))
    return "; ".join(parts)


def image_tower_params(model: str) -> int:
    """Parameters of the image tower (the part every fine-tune here trains)."""
    from bdunlearn.models.clip import (
        state_shapes,  # open_clip and torch: only when a report counts them
    )

    return sum(math.prod(shape) for name, shape in state_shapes(model).items() if name.startswith("visual"))


def rung_table(frame: pd.DataFrame) -> list[str]:
    head = (
        "| rung | image-tower params | seeds | CA θ_pre (zero-shot) | CA θ_c (clean fine-tune) | ASR θ_c | CA θ_b | ASR θ_b | fine-tune gain "
        f"| control CA θ_pre | control CA θ_b | ξ(1, 1) | ξ ≤ {criteria.DISENTANGLED_XI} area | cos(θ_b−θ_c, θ_c−θ_pre) | cos(τ_t, θ_b−θ_pre) | cos(τ_t, θ_b−θ_c) |"
    )
    lines = [head, "|" + " --- |" * (head.count("|") - 1)]
    for model in rungs(frame):
        runs = frame[frame["model"] == model]
        reference = runs[runs["label"] == "none"]
        tbar = runs[runs["label"] == "tbar"]
        base = reference if len(reference) else runs.drop_duplicates("seed")
        cells = [
            cell(base["clean_acc_pretrained"]), cell(base.get("clean_acc_clean_model", NO_VALUES)), cell(base.get("asr_clean_model", NO_VALUES)),
            cell(base["clean_acc_backdoored"]), cell(base["asr_backdoored"]), cell(base["gain"]),
            cell(base.get("control_acc_pretrained", NO_VALUES)), cell(base.get("control_acc_backdoored", NO_VALUES)),
            cell(reference.get("xi_at_one", NO_VALUES)), cell(reference.get("xi_disentangled_area", NO_VALUES), 2),
            cell(reference.get("cosine_poison_clean", NO_VALUES)), cell(tbar.get("cosine_trigger_attack", NO_VALUES)),
            cell(tbar.get("cosine_trigger_poison", NO_VALUES)),
        ]  # fmt: skip
        lines.append(f"| {rung_name(model)} | {image_tower_params(model):,} | {base['seed'].nunique()} | " + " | ".join(cells) + " |")
    return lines


def arm_table(frame: pd.DataFrame) -> tuple[list[str], pd.DataFrame]:
    """The per rung × arm Markdown rows, and the same numbers in long form (mean, std, count) for the CSV."""
    head = (
        "| rung | arm | seeds | CA | ASR | CA kept | control CA | α | samples | meets the claim (seeds) "
        f"| val: best CA kept at ASR ≤ {PAPER_ASR} | val: lowest ASR keeping ≥ {100 * PAPER_CA_KEPT:g} % |"
    )
    lines = [head, "|" + " --- |" * (head.count("|") - 1)]
    rows = []
    for model in rungs(frame):
        base = frame[frame["model"] == model].drop_duplicates("seed")
        kept = pd.to_numeric(base["clean_acc_pretrained"]) / pd.to_numeric(base["clean_acc_backdoored"])
        lines.append(
            f"| {rung_name(model)} | θ_pre (zero-shot) | {len(base)} | {cell(base['clean_acc_pretrained'])} | "
            f"{cell(base['asr_pretrained'])} | {cell(kept)} | {cell(base.get('control_acc_pretrained', NO_VALUES))} | – | – | – | – | – |"
        )
        for arm in arms(frame):
            runs = frame[(frame["model"] == model) & (frame["label"] == arm)]
            if runs.empty:
                continue
            met = int(runs["meets_claim"].sum())
            lines.append(
                f"| {rung_name(model)} | `{arm}` | {len(runs)} | {cell(runs['clean_acc'])} | {cell(runs['asr'])} | "
                f"{cell(runs['clean_acc_retained'])} | {cell(runs.get('control_acc', NO_VALUES))} | "
                f"{cell(runs['alpha'], 2)} | {cell(runs['defense_samples'], 0)} | {met}/{len(runs)} | "
                f"{cell(runs['val_kept_at_claim_asr'])} | {cell(runs['val_asr_at_claim_kept'])} |"
            )
            for metric in (*ARM_METRICS, "val_kept_at_claim_asr", "val_asr_at_claim_kept"):
                values = pd.to_numeric(runs.get(metric, NO_VALUES), errors="coerce").dropna()
                rows.append({"model": model, "arm": arm, "metric": metric, "mean": values.mean(), "std": values.std(), "count": len(values)})
    return lines, pd.DataFrame(rows)


def fidelity_row(frame: pd.DataFrame, model: str, label: str, seed: int) -> list[str]:
    """The record ``bdunlearn experiment=fidelity_cpu`` (``model``, ``label``, ``seed``) reproduces: the study's
    run of the same rung, arm and seed."""
    match = frame[(frame["model"] == model) & (frame["label"] == label) & (frame["seed"] == seed)]
    if match.empty:
        return [f"- `experiment=fidelity_cpu` ({model}, `{label}`, seed {seed}) has no run in these records."]
    run = match.iloc[0]
    return [
        f"`bdunlearn experiment=fidelity_cpu` is this study's {rung_name(run['model'])} `{run['label']}` run with seed {run['seed']} "
        f"(without the θ_c diagnostics, which change no number of it); it reproduces this row:",
        "",
        "| rung | arm | seed | CA θ_pre | CA θ_b | ASR θ_b | CA | ASR | CA kept | control CA | α |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        f"| {rung_name(run['model'])} | `{run['label']}` | {run['seed']} | {run['clean_acc_pretrained']:.4f} | {run['clean_acc_backdoored']:.4f} | "
        f"{run['asr_backdoored']:.4f} | {run['clean_acc']:.4f} | {run['asr']:.4f} | {run['clean_acc_retained']:.4f} | "
        f"{_fmt(run.get('control_acc'))} | {_fmt(run.get('alpha'), 2)} |",
    ]


def _fmt(value, digits: int = 4) -> str:
    return "–" if value is None or pd.isna(value) else f"{float(value):.{digits}f}"


def provenance(sources: list[str], frame: pd.DataFrame, command: str, commit: str, hardware: str) -> list[str]:
    """The sweeps' commands, read from the ``multirun.yaml`` above each record's run dir (sources may be globs)."""
    commands = [sweep_command(sweep) for sweep in sweeps_above(frame["run_dir"])]
    return [
        f"- sweeps: {'; '.join(f'`{c}`' for c in dict.fromkeys(commands)) or ', '.join(sources)}",
        f"- report: `{command}` at commit {commit}, {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- hardware (this report's machine; the sweep ran on the same kind): {hardware}",
        f"- runs: {len(frame)} ok records; seeds {sorted(frame['seed'].unique().tolist())}",
    ]


def write(
    sources: list[str], out: Path, name: str, *, fidelity: tuple[str, str, int], command: str, commit: str, hardware: str
) -> str:
    """Write ``<name>.md``, ``.csv`` and the figures into ``out``; returns the line to print."""
    frame = load(sources)
    out.mkdir(parents=True, exist_ok=True)
    arm_lines, long = arm_table(frame)
    long.to_csv(out / f"{name}.csv", index=False)
    has_maps = scale_plots.plot_all(frame, out, name)
    text = [
        "# Scale study: TBAR's premise across the scale ladder",
        "",
        "Produced by `scripts/scale_study.py` from the run records of the sweep(s) below; no number is edited by hand.",
        "",
        *provenance(sources, frame, command, commit, hardware),
        "",
        "## The answer",
        "",
        *answer(frame),
        "",
        "## The testbed and the weight-space diagnostics, per rung",
        "",
        "CA and ASR on the test split (ASR θ_c: the trigger's effect on a model that never saw it, the floor a defense can reach);",
        "the fine-tune gain is CA θ_b − CA θ_pre; ξ (the reference arm, test images) of",
        "τ_c = θ_c − θ_pre and the poison vector θ_b − θ_c; τ_t is TBAR's trigger vector (paper variant).",
        "",
        *rung_table(frame),
        "",
        "## Every arm, per rung",
        "",
        f"Test numbers at the chosen α (mean ± std over seeds). 'Meets the claim': test ASR ≤ {PAPER_ASR} and CA kept ≥ {PAPER_CA_KEPT}.",
        "The last two columns read the validation α curve (TBAR and its variants, interpolation): how much CA is kept",
        f"where ASR first reaches {PAPER_ASR}, and how low ASR gets while {PAPER_CA_KEPT:.0%} of CA is kept (the κ rule's choice).",
        "",
        *arm_lines,
        "",
        "## `experiment=fidelity_cpu`",
        "",
        *fidelity_row(frame, *fidelity),
        "",
        "## Figures",
        "",
        f"- α curves: ![alpha curves]({name}_alpha_curves.png)",
        f"- trade-offs: ![trade-offs]({name}_tradeoff.png)",
        f"- trend across rungs: ![trend]({name}_trend.png)",
        *([f"- ξ maps: ![disentanglement]({name}_disentanglement.png)"] if has_maps else []),
        "",
    ]
    write_text_atomic(out / f"{name}.md", "\n".join(text))
    return f"wrote {out / (name + '.md')} and its figures ({len(frame)} records)"
