"""ξ as the paper plots it: per attack, the disentanglement map of the clean vector with TBAR's own τ_t beside the
map with the poison's direction θ_b − θ_c (both written by runs with ``analysis.disentanglement_grid``)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from bdunlearn.reports import plots
from bdunlearn.reports.records import load_records
from bdunlearn.reports.tables import cell

MAPS = {"disentanglement.csv": "θ_b − θ_c (the poison's direction)", "disentanglement_trigger_vector.csv": "τ_t (TBAR's estimate)"}
KEYS = {"": "θ_b − θ_c", "trigger_vector_": "τ_t"}


def runs_with_maps(sources: list[str]) -> pd.DataFrame:
    frame = load_records(sources)
    has_both = [all((Path(d) / name).is_file() for name in MAPS) for d in frame.get("run_dir", [])]
    return frame[has_both] if len(frame) else frame


def grid(path: Path) -> tuple[np.ndarray, list[float]]:
    rows = pd.read_csv(path)
    alphas = sorted(rows["alpha_c"].unique())
    xi = rows.pivot(index="alpha_t", columns="alpha_c", values="xi").loc[alphas, alphas].to_numpy()
    return xi, alphas


def save_pair(run_dir: Path, attack: str, seed: int, path: Path) -> None:
    figure, axes = plt.subplots(1, 2, figsize=(10.5, 4.4))
    for ax, (name, title) in zip(axes, MAPS.items(), strict=True):
        xi, alphas = grid(run_dir / name)
        image = plots.xi_heatmap(ax, xi, alphas, alphas, fontsize=6, aspect="auto")
        ax.set_xlabel("α_c (clean vector θ_c − θ_pre)")
        ax.set_ylabel(f"α_t ({title.split(' (')[0]})")
        ax.set_title(f"{title}", fontsize=9)
        figure.colorbar(image, ax=ax, label="ξ (sum of two disagreement rates)")
    figure.suptitle(f"ξ(α_c, α_t), {attack}, seed {seed}", fontsize=10)
    plots.save_atomic(figure, path)


def section(sources: list[str], out: Path, name: str) -> str:
    """The section's Markdown; writes ``<name>_xi_<attack>.png`` (the first seed's pair of maps) into ``out``."""
    frame = runs_with_maps(sources)
    if frame.empty:
        return "No run under the given dirs wrote both maps (TBAR with analysis.disentanglement_grid)."
    header = ["attack", "seeds", *(f"{label}: {what}" for label in KEYS.values() for what in ("ξ(1,1)", "area ξ ≤ 0.1", "ASR at (1,1)")), "maps"]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for attack, group in frame.sort_values("seed").groupby("attack", sort=True):
        first = group.iloc[0]
        figure = f"{name}_xi_{attack}.png"
        save_pair(Path(first["run_dir"]), attack, int(first["seed"]), Path(out) / figure)
        cells = []
        for prefix in KEYS:
            at_one = group[f"xi_{prefix}at_one"]
            asr = group[f"xi_{prefix}asr_at_one"] if f"xi_{prefix}asr_at_one" in group else group["asr_backdoored"]
            cells += [cell(at_one), cell(group[f"xi_{prefix}disentangled_area"]), cell(asr)]
        lines.append(f"| `{attack}` | {group['seed'].nunique()} | " + " | ".join(cells) + f" | [png]({figure}) |")
    return "\n".join(lines)
