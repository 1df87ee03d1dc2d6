"""Plot the CA/ASR trade-offs of a set of runs: TBAR's α curves and a CA-vs-ASR scatter per defense.

    python scripts/plot_tradeoff.py 'multirun/experiment=cpu_benchmark' --out results/cpu_benchmark --facet attack

Writes ``<out>/alpha_curves.png`` (validation CA and ASR against α for every run with an α curve, the chosen α
marked) and ``<out>/tradeoff.png`` (test CA against ASR: every run faint, each defense's mean ± std over seeds
bold, the backdoored model as a black cross), one panel per value of ``--facet``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bdunlearn.errors import UserError
from bdunlearn.reports.records import load_records
from bdunlearn.reports.sweep_report import write_plots


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
        wrote = write_plots(frame, args.out, args.facet)
    except UserError as exc:
        print(f"plot_tradeoff: error: {exc}", file=sys.stderr)
        sys.exit(2)
    print("wrote " + ", ".join(map(str, wrote)))


if __name__ == "__main__":
    main()
