"""Plot the CA/ASR trade-offs of a set of runs: TBAR's α curves and a CA-vs-ASR scatter per defense.

    python scripts/plot_tradeoff.py 'multirun/experiment=cpu_benchmark' --out results/cpu_benchmark --facet attack

Writes ``<out>/alpha_curves.png`` (validation CA and ASR against α for every run with an α curve, the chosen α
marked) and ``<out>/tradeoff.png`` (test CA against ASR: every run faint, each defense's mean ± std over seeds
bold, the backdoored model as a black cross), one panel per value of ``--facet``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from bdunlearn.errors import UserError  # noqa: E402
from bdunlearn.tables import load_records  # noqa: E402

DEFENSE_ORDER = ("none", "tbar", "finetune", "ft_sam", "cleanclip", "par")


def _panels(frame: pd.DataFrame, facet: str | None):
    if facet is None:
        return [("all runs", frame)]
    if facet not in frame.columns:
        raise UserError(f"--facet {facet!r} is not a record key or cfg.* column")
    return [(str(value), group) for value, group in frame.groupby(facet, sort=True)]


def _axes(count: int, height: float = 3.6):
    cols = min(count, 3)
    rows = (count + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.4 * cols, height * rows), squeeze=False)
    for ax in axes.flat[count:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:count])


def plot_alpha_curves(frame: pd.DataFrame, facet: str | None, path: Path) -> bool:
    curves = frame[frame["alpha_curve"].notna()] if "alpha_curve" in frame else frame.iloc[0:0]
    if curves.empty:
        return False
    panels = _panels(curves, facet)
    fig, axes = _axes(len(panels))
    for ax, (title, group) in zip(axes, panels):
        for _, run in group.iterrows():
            curve = pd.DataFrame(json.loads(run["alpha_curve"]))
            label = f"seed {run['seed']}"
            ax.plot(curve["alpha"], curve["val_clean_acc"], "-", color="tab:blue", alpha=0.7, label=f"val CA ({label})")
            ax.plot(curve["alpha"], curve["val_asr"], "--", color="tab:red", alpha=0.7, label=f"val ASR ({label})")
            if pd.notna(run.get("alpha")):
                ax.axvline(run["alpha"], color="grey", lw=0.8, ls=":")
        ax.set(title=title, xlabel="α (θ_b − α·τ_t)", ylim=(-0.02, 1.02))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("validation CA (solid) / ASR (dashed)")
    fig.suptitle("TBAR α curves (dotted: the α chosen by the κ rule)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return True


def plot_tradeoff(frame: pd.DataFrame, facet: str | None, path: Path) -> None:
    panels = _panels(frame, facet)
    fig, axes = _axes(len(panels), height=3.8)
    colours = plt.get_cmap("tab10")
    defenses = [d for d in DEFENSE_ORDER if d in set(frame["defense"])] + sorted(set(frame["defense"]) - set(DEFENSE_ORDER))
    for ax, (title, group) in zip(axes, panels):
        ax.scatter(group["asr_backdoored"].mean(), group["clean_acc_backdoored"].mean(), marker="x", color="black", s=60, label="θ_b", zorder=3)
        for i, defense in enumerate(defenses):
            runs = group[group["defense"] == defense]
            if runs.empty:
                continue
            colour = colours(i % 10)
            ax.scatter(runs["asr"], runs["clean_acc"], color=colour, alpha=0.25, s=14)
            ax.errorbar(
                runs["asr"].mean(), runs["clean_acc"].mean(), xerr=runs["asr"].std(), yerr=runs["clean_acc"].std(),
                fmt="o", color=colour, label=defense, capsize=2, zorder=4,
            )  # fmt: skip
        ax.set(title=title, xlabel="ASR (test)", ylabel="CA (test)", xlim=(-0.03, 1.03))
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="best")
    fig.suptitle("test CA against ASR (up and left is better)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sources", nargs="+", help="run dirs, sweep dirs or globs holding result.json files")
    parser.add_argument("--out", type=Path, default=Path("plots"))
    parser.add_argument("--facet", default=None, help="record key or cfg.* column: one panel per value (e.g. attack)")
    args = parser.parse_args()
    try:
        frame = load_records(args.sources)
        if frame.empty:
            raise UserError(f"no ok run records under {', '.join(args.sources)}")
        args.out.mkdir(parents=True, exist_ok=True)
        wrote = [args.out / "tradeoff.png"]
        plot_tradeoff(frame, args.facet, wrote[0])
        if plot_alpha_curves(frame, args.facet, args.out / "alpha_curves.png"):
            wrote.append(args.out / "alpha_curves.png")
    except UserError as exc:
        print(f"plot_tradeoff: error: {exc}", file=sys.stderr)
        sys.exit(2)
    print("wrote " + ", ".join(map(str, wrote)))


if __name__ == "__main__":
    main()
