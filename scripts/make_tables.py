"""Aggregate run records into tables: mean ± std over seeds, as CSV, Markdown and LaTeX.

    python scripts/make_tables.py 'multirun/experiment=cpu_benchmark' --out results/cpu_benchmark
    python scripts/make_tables.py multirun/a multirun/b --pivot defense,cfg.defense.num_samples/dataset

The default layout is the paper's: rows attack × defense, columns dataset with CA and ASR. ``--pivot
ROWS/COLS`` takes comma-separated record keys or ``cfg.<dotted config key>`` columns. Writes
``<out>/<name>.csv`` (long form: group, metric, mean, std, count), ``<name>.md`` and ``<name>.tex``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bdunlearn.errors import UserError
from bdunlearn.reports.machine import describe  # noqa: E402
from bdunlearn.reports.studies.record_tables import make_tables


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sources", nargs="+", help="run dirs, sweep dirs or globs holding result.json files")
    parser.add_argument("--out", type=Path, default=Path("tables"))
    parser.add_argument("--name", default="table")
    parser.add_argument("--pivot", default="attack,defense/dataset", help="ROWS/COLS (default: attack,defense/dataset)")
    parser.add_argument("--metrics", default="clean_acc,asr", help="comma-separated record keys (default: clean_acc,asr)")
    parser.add_argument("--digits", type=int, default=3)
    args = parser.parse_args()
    command = f"python scripts/make_tables.py {' '.join(sys.argv[1:])}"
    try:
        markdown = make_tables(
            args.sources, args.out, args.name, args.pivot, args.metrics.split(","), args.digits, command=command, hardware=describe()
        )
    except UserError as exc:
        print(f"make_tables: error: {exc}", file=sys.stderr)
        sys.exit(2)
    print(markdown, end="")
    print(f"wrote {args.out / args.name}.{{csv,md,tex}}")


if __name__ == "__main__":
    main()
