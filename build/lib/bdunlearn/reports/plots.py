"""Figures from run records (matplotlib, no display): TBAR's α curves, CA-against-ASR trade-offs, ξ heat maps.

The plotting functions take *panels*: ``[(title, frame of runs), ...]``, one axes each, so that a caller decides
what a panel is (a value of ``--facet``, a rung of the scale ladder) and in which order runs are drawn.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from bdunlearn.atomic import write_bytes_atomic  # noqa: E402
from bdunlearn.errors import UserError  # noqa: E402

Panels = Sequence[tuple[str, pd.DataFrame]]


def facet_panels(frame: pd.DataFrame, facet: str | None) -> list[tuple[str, pd.DataFrame]]:
    """One panel per value of the record key or ``cfg.*`` column ``facet`` (one panel of everything for None)."""
    if facet is None:
        return [("all runs", frame)]
    if facet not in frame.columns:
        raise UserError(f"--facet {facet!r} is not a record key or cfg.* column")
    return [(str(value), group) for value, group in frame.groupby(facet, sort=True)]


def with_alpha_curves(frame: pd.DataFrame) -> pd.DataFrame:
    """The runs that have a validation α curve (TBAR, interpolation)."""
    return frame[frame["alpha_curve"].notna()] if "alpha_curve" in frame else frame.iloc[0:0]


def panel_grid(count: int, size: tuple[float, float], columns: int | None = 3):
    """A figure of ``count`` axes, at most ``columns`` per row (None: all in one row), each ``size`` inches."""
    cols = count if columns is None else min(count, columns)
    rows = (count + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(size[0] * cols, size[1] * rows), squeeze=False)
    for ax in axes.flat[count:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:count])


def save(fig, path: Path, dpi: int = 130) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)


def save_atomic(fig, path: Path, dpi: int = 130) -> None:
    """``save``, but a reader never sees half a file (the PNG is rendered in memory, then renamed into place)."""
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    write_bytes_atomic(path, buffer.getvalue())


def _seed_labels(run) -> tuple[str, str]:
    return f"val CA (seed {run['seed']})", f"val ASR (seed {run['seed']})"


def plot_alpha_curves(
    panels: Panels, path: Path, *, relative: bool = False,
    colours: Callable[[pd.Series], tuple[str, str]] = lambda run: ("tab:blue", "tab:red"),
    labels: Callable[[pd.Series], tuple[str | None, str | None]] = _seed_labels, opacity: float = 0.7,
    mark_chosen: bool = True, bars: Sequence[float] = (), xlabel: str = "α (θ_b − α·τ_t)", ylabel: str | None = None,
    first_ylabel: str | None = "validation CA (solid) / ASR (dashed)", ylim=(-0.02, 1.02), grid: bool = True,
    legend_size: float | None = None, title: str = "TBAR α curves (dotted: the α chosen by the κ rule)",
    title_size: float = 10, panel_size=(4.4, 3.6), columns: int | None = 3,
) -> None:  # fmt: skip
    """Validation CA (solid) and ASR (dashed) against α, one pair of lines per run with an ``alpha_curve``.

    ``relative``: CA as the share of θ_b's (α = 0) kept; ``mark_chosen``: a dotted line at the run's α;
    ``bars``: dotted horizontal lines (e.g. the claim's); ``legend_size``: a legend per panel.
    """
    fig, axes = panel_grid(len(panels), panel_size, columns)
    for ax, (panel_title, runs) in zip(axes, panels):
        for _, run in runs.iterrows():
            curve = pd.DataFrame(json.loads(run["alpha_curve"]))
            clean = curve["val_clean_acc"]
            if relative:
                clean = clean / curve.loc[curve["alpha"] == 0.0, "val_clean_acc"].iloc[0]
            (clean_colour, asr_colour), (clean_label, asr_label) = colours(run), labels(run)
            ax.plot(curve["alpha"], clean, "-", color=clean_colour, alpha=opacity, label=clean_label)
            ax.plot(curve["alpha"], curve["val_asr"], "--", color=asr_colour, alpha=opacity, label=asr_label)
            if mark_chosen and pd.notna(run.get("alpha")):
                ax.axvline(run["alpha"], color="grey", lw=0.8, ls=":")
        for bar in bars:
            ax.axhline(bar, color="grey", lw=0.8, ls=":")
        ax.set(title=panel_title, xlabel=xlabel, ylim=ylim, **({"ylabel": ylabel} if ylabel else {}))
        if grid:
            ax.grid(alpha=0.3)
        if legend_size is not None:
            ax.legend(fontsize=legend_size)
    if first_ylabel:
        axes[0].set_ylabel(first_ylabel)
    fig.suptitle(title, fontsize=title_size)
    save(fig, path)


def plot_tradeoff(
    panels: Panels, path: Path, *, group_key: str = "defense", groups: Sequence[str], y: str = "clean_acc",
    palette: str = "tab10", marker: Callable[[str], str] = lambda group: "o", faint: dict | None = None,
    bold: dict | None = None, backdoored: bool = True, claim: tuple[float, float] | None = None, grid: bool = True,
    xlabel: str = "ASR (test)", ylabel: str = "CA (test)", legend: dict | None = None, last_legend: bool = False,
    title: str = "test CA against ASR (up and left is better)", title_size: float = 10, panel_size=(4.4, 3.8),
    columns: int | None = 3,
) -> None:  # fmt: skip
    """Test ``y`` against ASR per group of runs (a defense, an arm): every run faint, the mean ± std bold.

    ``faint`` and ``bold`` style the runs' scatter and the mean's errorbar (a ``bold`` without ``fmt`` takes the
    group's ``marker``); ``backdoored``: θ_b as a black cross; ``claim`` = (ASR bar, y bar): the region that meets
    the ASR bar shaded and the y bar dotted; the legend goes on the first panel (``last_legend``: the last).
    """
    fig, axes = panel_grid(len(panels), panel_size, columns)
    colours = plt.get_cmap(palette)
    faint = {"alpha": 0.25, "s": 14} if faint is None else faint
    bold = {"fmt": "o", "capsize": 2, "zorder": 4} if bold is None else bold
    for ax, (panel_title, frame) in zip(axes, panels):
        if backdoored:
            ax.scatter(frame["asr_backdoored"].mean(), frame["clean_acc_backdoored"].mean(), marker="x", color="black", s=60, label="θ_b", zorder=3)
        if claim is not None:
            ax.axvspan(0, claim[0], ymin=0, ymax=1, color="tab:green", alpha=0.08)
            ax.axhline(claim[1], color="grey", lw=0.8, ls=":")
        for i, group in enumerate(groups):
            runs = frame[frame[group_key] == group]
            if runs.empty:
                continue
            colour = colours(i % colours.N)
            ax.scatter(runs["asr"], runs[y], color=colour, marker=marker(group), **faint)
            style = bold if "fmt" in bold else {**bold, "marker": marker(group)}
            ax.errorbar(runs["asr"].mean(), runs[y].mean(), xerr=runs["asr"].std(), yerr=runs[y].std(), color=colour, label=group, **style)
        ax.set(title=panel_title, xlabel=xlabel, ylabel=ylabel, xlim=(-0.03, 1.03))
        if grid:
            ax.grid(alpha=0.3)
    (axes[-1] if last_legend else axes[0]).legend(**(legend or {"fontsize": 7, "loc": "best"}))
    fig.suptitle(title, fontsize=title_size)
    save(fig, path)


def xi_heatmap(ax, values: np.ndarray, columns: Sequence[float], rows: Sequence[float], fontsize: float, aspect: str | None = None):
    """ξ(α_c, α_t) as an image, each cell written on it (rows: α_t, columns: α_c); returns the image."""
    image = ax.imshow(values, origin="lower", cmap="viridis", vmin=0, vmax=max(1.0, float(values.max())), aspect=aspect)
    ax.set_xticks(range(len(columns)), [f"{a:g}" for a in columns])
    ax.set_yticks(range(len(rows)), [f"{a:g}" for a in rows])
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            ax.text(j, i, f"{values[i, j]:.2f}", ha="center", va="center", fontsize=fontsize, color="white" if values[i, j] < 0.6 else "black")
    return image
