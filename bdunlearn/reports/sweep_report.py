"""A sweep's tables and trade-off plots, written into its own directory (the Hydra callback, the scripts).

``write_tables`` is ``scripts/make_tables.py`` and ``write_plots`` is ``scripts/plot_tradeoff.py``; the callback
(:mod:`bdunlearn.reports.sweep_callback`) calls both over a sweep's ok records when the sweep ends.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bdunlearn.reports import plots
from bdunlearn.reports.studies.record_tables import make_tables
from bdunlearn.reports.tables import ordered

TRADEOFF_COLUMNS = ("run", "label", "defense", "attack", "dataset", "seed", "alpha", "clean_acc", "asr")


def write_plots(frame: pd.DataFrame, out: Path, facet: str | None = None) -> list[Path]:
    """``tradeoff.png`` (test CA against ASR per defense) and, where runs have α curves, ``alpha_curves.png``."""
    out.mkdir(parents=True, exist_ok=True)
    wrote = [out / "tradeoff.png"]
    plots.plot_tradeoff(plots.facet_panels(frame, facet), wrote[0], groups=ordered(frame["defense"], "defense"))
    curves = plots.with_alpha_curves(frame)
    if not curves.empty:
        wrote.append(out / "alpha_curves.png")
        plots.plot_alpha_curves(plots.facet_panels(curves, facet), wrote[-1])
    return wrote


def write_tables(sources: list[str], out: Path, name: str, pivot: str, metrics: list[str], *, command: str, hardware: str) -> list[Path]:
    """``<out>/<name>.csv``, ``.md`` and ``.tex``, mean ± std over seeds (as ``scripts/make_tables.py``)."""
    make_tables(sources, out, name, pivot, metrics, 3, command=command, hardware=hardware)
    return [out / f"{name}.{ext}" for ext in ("csv", "md", "tex")]


def tradeoff_rows(frame: pd.DataFrame) -> list[list]:
    """One row per run of :data:`TRADEOFF_COLUMNS` (the W&B trade-off chart's table)."""
    table = frame.assign(run=frame.get("run_dir", pd.Series(range(len(frame)), index=frame.index)).astype(str))
    for column in TRADEOFF_COLUMNS:
        if column not in table:
            table[column] = None
    table["label"] = table["label"].fillna(table["defense"])
    table = table.astype(object).where(table.notna(), None)
    return table[list(TRADEOFF_COLUMNS)].values.tolist()
