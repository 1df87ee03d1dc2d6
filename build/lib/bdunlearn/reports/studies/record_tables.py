"""Any set of run records as tables (``scripts/make_tables.py``): mean ± std over seeds in CSV, Markdown, LaTeX."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from bdunlearn.atomic import write_text_atomic
from bdunlearn.errors import UserError
from bdunlearn.reports.provenance import sweep_command, sweeps_among
from bdunlearn.reports.records import aggregate, load_records
from bdunlearn.reports.tables import pivot, to_latex, to_markdown


def parse_pivot(text: str) -> tuple[list[str], list[str]]:
    """``ROWS/COLS`` (comma-separated column names; COLS may be empty) as two lists."""
    rows, sep, cols = text.partition("/")
    rows_list = [c for c in rows.split(",") if c]
    if not sep or not rows_list:
        raise UserError(f"--pivot {text!r}: write ROWS/COLS, e.g. attack,defense/dataset (COLS may be empty)")
    return rows_list, [c for c in cols.split(",") if c]


def provenance(sources: list[str], runs: int, command: str, hardware: str) -> str:
    """Who made the table: ``command``, the sweeps' own commands (from their multirun.yaml), the machine."""
    lines = [
        f"Made by `{command}` on {dt.date.today()} ({hardware}) "
        f"from {runs} ok run records; mean ± std over seeds (one value: a single seed).",
    ]
    lines += [f"- sweep `{s}`: `{sweep_command(s)}`" for s in sweeps_among(sources)]
    return "\n".join(lines) + "\n"


def make_tables(
    sources: list[str], out: Path, name: str, layout: str, metrics: list[str], digits: int, *, command: str, hardware: str
) -> str:
    """Write ``<out>/<name>.csv`` (long form), ``.md`` and ``.tex``; returns the Markdown table."""
    rows, cols = parse_pivot(layout)
    frame = load_records(sources)
    if frame.empty:
        raise UserError(f"no ok run records under {', '.join(sources)}")
    long = aggregate(frame, [*rows, *cols], metrics)
    wide = pivot(long, rows, cols, metrics, digits)
    markdown = to_markdown(wide)
    write_text_atomic(out / f"{name}.csv", long.to_csv(index=False))
    write_text_atomic(out / f"{name}.md", provenance(sources, len(frame), command, hardware) + "\n" + markdown)
    write_text_atomic(out / f"{name}.tex", to_latex(wide))
    return markdown
