"""Why TBAR misses the paper's claim here: the per-suspect report, from the run records of each suspect's sweeps.

    python scripts/tbar_estimation.py --operating-point SWEEP... --estimate SWEEP... [--maps SWEEP...] \
        --regime SWEEP... --pretraining SWEEP... [--out results/] [--name tbar_estimation]

Each option takes the sweep (or run) dirs of one suspect, its baseline first (the paper's recipe on that
suspect's testbed): the operating point and the estimate on the default testbed (e.g. `bdunlearn -m
attack=badnets,blended seed=0,1,2 analysis.clean_reference=true defense.loss=ce,margin`); --maps: TBAR runs
with analysis.disentanglement_grid (xi of its own tau_t, per attack); the attacker's regime on the scale
study's testbed (`experiment=paper_regime`); theta_pre's quality along `experiment=pretrain_ladder`. A suspect
left out is reported as not measured. Writes ``<out>/<name>.md``; the report: bdunlearn.reports.studies.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bdunlearn.errors import UserError
from bdunlearn.reports.machine import describe
from bdunlearn.reports.studies import tbar_estimation_report as report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for suspect in report.SUSPECTS:
        parser.add_argument(f"--{suspect.replace('_', '-')}", nargs="+", dest=suspect, help=report.SUSPECTS[suspect])
    parser.add_argument("--maps", nargs="+", help="TBAR runs with analysis.disentanglement_grid: xi of tau_t, per attack")
    parser.add_argument("--out", type=Path, default=Path("results"))
    parser.add_argument("--name", default="tbar_estimation")
    args = parser.parse_args()
    sections = {s: getattr(args, s) for s in report.SUSPECTS if getattr(args, s)}
    if not sections:
        parser.error("give the sweeps of at least one suspect")
    try:
        path = report.write(sections, args.out, args.name, f"python scripts/tbar_estimation.py {' '.join(sys.argv[1:])}", describe(), args.maps)
    except UserError as error:
        sys.exit(f"tbar_estimation: error: {error}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
