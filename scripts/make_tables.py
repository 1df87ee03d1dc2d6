"""Aggregate run records into tables: mean ± std over seeds, as CSV, Markdown and LaTeX.

    python scripts/make_tables.py 'multirun/experiment=cpu_benchmark' --out results/cpu_benchmark
    python scripts/make_tables.py multirun/a multirun/b --pivot defense,cfg.defense.num_samples/dataset

The default layout is the paper's: rows attack × defense, columns dataset with CA and ASR. ``--pivot
ROWS/COLS`` takes comma-separated record keys or ``cfg.<dotted config key>`` columns. Writes
``<out>/<name>.csv`` (long form: group, metric, mean, std, count), ``<name>.md`` and ``<name>.tex``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import glob
import sys
from pathlib import Path

from bdunlearn.atomic import write_text_atomic
from bdunlearn.errors import UserError
from bdunlearn.tables import aggregate, load_records, pivot, sweep_command, to_latex, to_markdown

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe  # noqa: E402


def parse_pivot(text: str) -> tuple[list[str], list[str]]:
    rows, sep, cols = text.partition("/")
    rows_list = [c for c in rows.split(",") if c]
    if not sep or not rows_list:
        raise UserError(f"--pivot {text!r}: write ROWS/COLS, e.g. attack,defense/dataset (COLS may be empty)")
    return rows_list, [c for c in cols.split(",") if c]


def provenance(sources: list[str], runs: int) -> str:
    """Who made the table: this command, the sweeps' own commands (from their multirun.yaml), the machine."""
    sweeps = sorted({m for s in sources for m in (glob.glob(s) or [s]) if (Path(m) / "multirun.yaml").is_file()})
    lines = [
        f"Made by `python scripts/make_tables.py {' '.join(sys.argv[1:])}` on {dt.date.today()} ({describe()}) "
        f"from {runs} ok run records; mean ± std over seeds (one value: a single seed).",
    ]
    lines += [f"- sweep `{s}`: `{sweep_command(s)}`" for s in sweeps]
    return "\n".join(lines) + "\n"


def make_tables(sources: list[str], out: Path, name: str, layout: str, metrics: list[str], digits: int) -> str:
    rows, cols = parse_pivot(layout)
    frame = load_records(sources)
    if frame.empty:
        raise UserError(f"no ok run records under {', '.join(sources)}")
    long = aggregate(frame, [*rows, *cols], metrics)
    wide = pivot(long, rows, cols, metrics, digits)
    markdown = to_markdown(wide)
    write_text_atomic(out / f"{name}.csv", long.to_csv(index=False))
    write_text_atomic(out / f"{name}.md", provenance(sources, len(frame)) + "\n" + markdown)
    write_text_atomic(out / f"{name}.tex", to_latex(wide))
    return markdown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sources", nargs="+", help="run dirs, sweep dirs or globs holding result.json files")
    parser.add_argument("--out", type=Path, default=Path("tables"))
    parser.add_argument("--name", default="table")
    parser.add_argument("--pivot", default="attack,defense/dataset", help="ROWS/COLS (default: attack,defense/dataset)")
    parser.add_argument("--metrics", default="clean_acc,asr", help="comma-separated record keys (default: clean_acc,asr)")
    parser.add_argument("--digits", type=int, default=3)
    args = parser.parse_args()
    try:
        markdown = make_tables(args.sources, args.out, args.name, args.pivot, args.metrics.split(","), args.digits)
    except UserError as exc:
        print(f"make_tables: error: {exc}", file=sys.stderr)
        sys.exit(2)
    print(markdown, end="")
    print(f"wrote {args.out / args.name}.{{csv,md,tex}}")


if __name__ == "__main__":
    main()
