"""Write results/defense_budget.{md,png} from the run records of ``bdunlearn -m experiment=defense_budget``.

    bdunlearn -m experiment=defense_budget
    python scripts/defense_budget.py 'multirun/experiment=defense_budget' --out results/

The table gives, at each budget, every defense's test CA and ASR (mean ± std over seeds), the share of
theta_b's CA it kept, and the samples and seconds it used; the figure plots CA against ASR per defense, one
point per budget. Every number comes from a ``result.json``. The report itself:
``bdunlearn.reports.studies.defense_budget``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bdunlearn.reports.machine import describe  # noqa: E402
from bdunlearn.reports.studies import defense_budget


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("--out", type=Path, default=Path("results"))
    parser.add_argument("--train-size", type=int, default=60000, help="training images the budgets are shares of")
    parser.add_argument("--note", default=None, help="a line about how the sweep ran (e.g. what else shared the machine)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    print(defense_budget.write(args.sweep_dir, args.out, args.train_size, describe()))


if __name__ == "__main__":
    main()
