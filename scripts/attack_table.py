"""Write results/attacks.md from the run records of an attack sweep, and copy its trigger previews.

    bdunlearn -m attack=badnets,blended,wanet,sig,badclip defense=tbar seed=0,1 hydra.sweep.dir=/tmp/attacks-sweep
    python scripts/attack_table.py /tmp/attacks-sweep --out results/attacks.md --previews results/

Every number comes from a ``result.json``; the command is read back from the sweep's ``multirun.yaml``.
The report itself: ``bdunlearn.reports.studies.attacks``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bdunlearn.reports.machine import describe  # noqa: E402
from bdunlearn.reports.studies import attacks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path, help="hydra.sweep.dir of the attack sweep")
    parser.add_argument("--out", type=Path, default=Path("results/attacks.md"))
    parser.add_argument("--previews", type=Path, default=None, help="copy each attack's triggers.png here as triggers_<attack>.png")
    args = parser.parse_args()
    print(attacks.write(args.sweep_dir, args.out, args.previews, describe()))


if __name__ == "__main__":
    main()
