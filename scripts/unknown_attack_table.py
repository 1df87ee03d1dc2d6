"""Write results/unknown_attack.md: known-trigger TBAR vs DECREE-TBAR vs BTI-DBF-TBAR, and clean-model detection.

    bdunlearn -m attack=badnets,blended,wanet seed=0,1 defense=tbar hydra.sweep.dir=/tmp/inv/sweep-known
    bdunlearn -m attack=badnets,blended,wanet,none seed=0,1 defense=tbar attack_knowledge=unknown inversion=decree \\
        hydra.sweep.dir=/tmp/inv/sweep-decree
    bdunlearn -m ... inversion=bti_dbf hydra.sweep.dir=/tmp/inv/sweep-bti
    bdunlearn -m attack=none seed=2,3 defense=none attack_knowledge=unknown inversion=decree,bti_dbf \\
        hydra.sweep.dir=/tmp/inv/sweep-calibration
    python scripts/unknown_attack_table.py /tmp/inv/sweep-known /tmp/inv/sweep-decree /tmp/inv/sweep-bti \\
        --calibration /tmp/inv/sweep-calibration --out results/unknown_attack.md --previews results/

Every number comes from a ``result.json``; the commands are read back from each sweep's ``multirun.yaml``.
``--calibration`` sweeps (models the detection thresholds or an inversion's settings were chosen on, never the
reported seeds) get their own table, ``--replication`` sweeps (models nothing was chosen on, e.g. built on a GPU
by scripts/device_unknown_attack.sh) a summary of their own. The report itself:
``bdunlearn.reports.studies.unknown_attack``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bdunlearn.config.keys import INVERSION_VERDICT_KEYS
from bdunlearn.inversion import REGISTRY as INVERSIONS
from bdunlearn.reports.machine import describe  # noqa: E402
from bdunlearn.reports.studies.unknown_attack import InversionDefaults, write


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweeps", nargs="+", type=Path, help="hydra.sweep.dir of each sweep")
    parser.add_argument("--calibration", nargs="*", type=Path, default=[], help="sweeps of the calibration / development models")
    parser.add_argument("--out", type=Path, default=Path("results/unknown_attack.md"))
    parser.add_argument("--previews", type=Path, default=None, help="copy seed 0's inverted_trigger.png here")
    parser.add_argument("--note", action="append", default=[], help="a line for the header (e.g. the commit that ran)")
    parser.add_argument("--replication", nargs="*", type=Path, default=[], help="sweeps of models nothing was chosen on (e.g. another machine's)")
    parser.add_argument("--replication-note", action="append", default=[], help="a line for the replication section (where and how it ran)")
    args = parser.parse_args()
    inversions = InversionDefaults.of({name: module.Config for name, module in INVERSIONS.items()}, INVERSION_VERDICT_KEYS)
    print(write(
        args.sweeps, args.calibration, args.out, inversions, describe(), notes=args.note, previews=args.previews,
        replication=args.replication, replication_notes=args.replication_note,
    ))  # fmt: skip


if __name__ == "__main__":
    main()
