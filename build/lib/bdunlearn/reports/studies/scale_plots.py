"""The scale study's figures: α curves and trade-offs per rung, the trend across rungs, the ξ maps."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from bdunlearn.reports import criteria, plots
from bdunlearn.reports.criteria import PAPER_ASR, PAPER_CA_KEPT
from bdunlearn.reports.studies.scale_ladder import arms, rung_name, rungs

CURVE_COLOURS = {"tbar": "tab:blue", "interpolate": "tab:green"}


def plot_alpha_curves(frame: pd.DataFrame, path: Path, curve_arms=("tbar", "interpolate")) -> None:
    panels = [
        (rung_name(model), pd.concat([frame[(frame["model"] == model) & (frame["label"] == arm)] for arm in curve_arms]))
        for model in rungs(frame)
    ]

    def colours(run) -> tuple[str, str]:
        colour = CURVE_COLOURS.get(run["label"], "tab:purple")
        return colour, colour

    def labels(run) -> tuple[str | None, str | None]:
        return (f"{run['label']}: CA kept", f"{run['label']}: ASR") if run["seed"] == 0 else (None, None)

    plots.plot_alpha_curves(
        panels, path, relative=True, colours=colours, labels=labels, opacity=0.8, mark_chosen=False,
        bars=(PAPER_CA_KEPT, PAPER_ASR), xlabel="α", ylabel="validation", first_ylabel=None, ylim=(-0.02, 1.05),
        grid=False, legend_size=7, title="Validation CA kept (solid) and ASR (dashed) against α; dotted: the claim's bars",
        title_size=9, panel_size=(4.6, 3.8), columns=None,
    )  # fmt: skip


def arm_marker(arm: str) -> str:
    return "X" if arm == "none" else ("s" if arm.startswith("finetune") else ("D" if arm == "interpolate" else "o"))


def plot_tradeoff(frame: pd.DataFrame, path: Path) -> None:
    plots.plot_tradeoff(
        [(rung_name(model), frame[frame["model"] == model]) for model in rungs(frame)], path,
        group_key="label", groups=arms(frame), y="clean_acc_retained", palette="tab20", marker=arm_marker,
        faint={"alpha": 0.35, "s": 18}, bold={"ms": 7, "lw": 1}, backdoored=False, claim=(PAPER_ASR, PAPER_CA_KEPT),
        grid=False, xlabel="test ASR", ylabel="test CA kept (CA / CA θ_b)", last_legend=True,
        legend={"fontsize": 6, "loc": "center left", "bbox_to_anchor": (1.0, 0.5)},
        title=f"Test trade-off per arm (faint: seeds, bold: mean ± std)\ngreen: ASR ≤ {PAPER_ASR}; dotted: {PAPER_CA_KEPT:.0%} of CA kept",
        title_size=9, panel_size=(4.8, 4.2), columns=None,
    )  # fmt: skip


def _means(runs: pd.DataFrame, key: str, order: list[str]) -> list[pd.Series]:
    return [pd.to_numeric(runs[runs["model"] == m][key], errors="coerce") for m in order]


def plot_trend(frame: pd.DataFrame, path: Path) -> None:
    order = rungs(frame)
    x = list(range(len(order)))
    labels = [rung_name(m) for m in order]
    fig, (asr_ax, claim_ax, diag_ax) = plt.subplots(1, 3, figsize=(15, 4.2))
    cmap = plt.get_cmap("tab20")
    for i, arm in enumerate(arms(frame)):
        runs = frame[frame["label"] == arm]
        style = {"color": "black", "lw": 2.4, "zorder": 5} if arm == "tbar" else {"color": cmap(i % 20), "lw": 1.1}
        asr = _means(runs, "asr", order)
        asr_ax.errorbar(x, [a.mean() for a in asr], yerr=[a.std() for a in asr], marker="o", capsize=2, label=arm, **style)
        if arm == "none":
            continue
        kept = [v.mean() for v in _means(runs, "val_kept_at_claim_asr", order)]
        if any(pd.notna(v) for v in kept):
            claim_ax.plot(x, kept, marker="o", label=arm, **style)
    asr_ax.axhline(PAPER_ASR, color="grey", lw=0.8, ls=":")
    asr_ax.set(xticks=x, xticklabels=labels, ylabel="test ASR at the chosen α (mean ± std)", ylim=(-0.03, 1.03),
               title="Backdoor left after each arm (lower is better)")  # fmt: skip
    asr_ax.legend(fontsize=6, ncol=2)
    claim_ax.axhline(PAPER_CA_KEPT, color="grey", lw=0.8, ls=":")
    claim_ax.set(xticks=x, xticklabels=labels, ylabel=f"val CA kept at ASR ≤ {PAPER_ASR}", title="Distance to the claim (higher is better)")
    claim_ax.legend(fontsize=6, ncol=2)
    reference = frame[frame["label"] == "none"]
    tbar = frame[frame["label"] == "tbar"]
    for data, key, label in (
        (reference, "xi_at_one", "ξ(1, 1): clean vs poison vector"),
        (reference, "xi_disentangled_area", f"share of the ξ grid ≤ {criteria.DISENTANGLED_XI}"),
        (tbar, "cosine_trigger_poison", "cos(τ_t, θ_b − θ_c)"),
        (tbar, "cosine_trigger_attack", "cos(τ_t, θ_b − θ_pre)"),
    ):
        if key in data:
            diag_ax.plot(x, [v.mean() for v in _means(data, key, order)], "o-", label=label)
    diag_ax.set(xticks=x, xticklabels=labels, title="Weight-space diagnostics")
    diag_ax.legend(fontsize=7)
    plots.save(fig, path)


def plot_disentanglement(frame: pd.DataFrame, path: Path) -> bool:
    """The reference arm's ξ maps (``disentanglement.csv`` beside its records), mean over seeds; False if none."""
    reference = frame[(frame["label"] == "none")].sort_values("seed")
    maps = []
    for model in rungs(frame):
        runs = reference[reference["model"] == model]
        grids = [Path(d) / "disentanglement.csv" for d in runs["run_dir"]]
        grids = [g for g in grids if g.is_file()]
        if grids:
            maps.append((model, pd.concat([pd.read_csv(g) for g in grids]).groupby(["alpha_t", "alpha_c"])["xi"].mean().unstack()))
    if not maps:
        return False
    fig, axes = plt.subplots(1, len(maps), figsize=(4.2 * len(maps), 3.8), squeeze=False)
    for ax, (model, grid) in zip(axes[0], maps):
        image = plots.xi_heatmap(ax, grid.values, grid.columns, grid.index, fontsize=7)
        ax.set(title=rung_name(model), xlabel="α_c (θ_c − θ_pre)", ylabel="α_t (θ_b − θ_c)")
        fig.colorbar(image, ax=ax, fraction=0.046)
    fig.suptitle("ξ(α_c, α_t) of the clean and poison vectors, mean over seeds (0: disentangled)", fontsize=9)
    plots.save(fig, path)
    return True


def plot_all(frame: pd.DataFrame, out: Path, name: str) -> bool:
    """Every figure of the report into ``out``; whether there were ξ maps to draw."""
    plot_alpha_curves(frame, out / f"{name}_alpha_curves.png")
    plot_tradeoff(frame, out / f"{name}_tradeoff.png")
    plot_trend(frame, out / f"{name}_trend.png")
    return plot_disentanglement(frame, out / f"{name}_disentanglement.png")
