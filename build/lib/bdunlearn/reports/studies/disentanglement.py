"""``results/disentanglement.md`` and its heat maps (``scripts/disentanglement.py``): ξ(α_c, α_t) of a clean task
vector and a trigger vector, per attack. A *result* is what the script measured for one attack: its ``rows``
(one per grid point), ``alphas``, the cosine and norms of the two vectors.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from bdunlearn.analysis import grid_summary
from bdunlearn.reports import plots


def save_heatmap(result: dict, path: Path) -> None:
    alphas = result["alphas"]
    n = len(alphas)
    xi = np.array([r["xi"] for r in result["rows"]], dtype=np.float32).reshape(n, n)  # rows: alpha_t, columns: alpha_c
    figure, axes = plt.subplots(figsize=(5.6, 4.6))
    image = plots.xi_heatmap(axes, xi, alphas, alphas, fontsize=6, aspect="auto")
    axes.set_xlabel("α_c (clean task vector)")
    axes.set_ylabel("α_t (trigger vector)")
    kind = "fine-tune on triggered data" if result["trigger_vector"] == "triggered" else "θ_b − θ_c"
    axes.set_title(f"ξ(α_c, α_t): {result['attack']} (τ_t: {kind})\ncos(τ_c, τ_t) = {result['cosine']:.3f}", fontsize=9)
    figure.colorbar(image, ax=axes, label="ξ (sum of two disagreement rates)")
    plots.save_atomic(figure, path)


def summary(results: list[dict], command: str, low: float, hardware: str) -> str:
    lines = [
        "# Weight disentanglement of clean and trigger task vectors",
        "",
        "Produced by `scripts/disentanglement.py`; every number is in the CSV beside each heat map.",
        "",
        f"- command: `{command}`",
        f"- date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC; hardware: {hardware}",
        "- data and model: the embedded default (tiny CLIP, digits at 16×16); ξ on the test split "
        "(clean images; triggered non-target images)",
        f"- 'disentangled area': share of grid points with ξ ≤ {low}",
        "",
        "| attack | τ_t | cos(τ_c, τ_t) | ‖τ_c‖ | ‖τ_t‖ | ξ(1, 1) | CA at (1, 1) | ASR at (1, 1) | max ξ | disentangled area | map |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for result in results:
        rows = result["rows"]
        at_one = next((r for r in rows if r["alpha_c"] == 1.0 and r["alpha_t"] == 1.0), None)
        area = grid_summary(rows, low)["xi_disentangled_area"]
        name = f"disentanglement_{result['attack']}{'' if result['trigger_vector'] == 'triggered' else '_difference'}"
        one = (f"{at_one['xi']:.3f} | {at_one['clean_acc']:.3f} | {at_one['asr']:.3f}") if at_one else "– | – | –"
        lines.append(
            f"| `{result['attack']}` | {result['trigger_vector']} | {result['cosine']:.3f} | {result['norm_c']:.3f} | "
            f"{result['norm_t']:.3f} | {one} | {max(r['xi'] for r in rows):.3f} | {area:.2f} | [png]({name}.png), [csv]({name}.csv) |"
        )
    return "\n".join(lines) + "\n"
