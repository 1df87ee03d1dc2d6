"""Write results/contrastive.md from the run records of a contrastive-setting sweep.

    bdunlearn -m experiment=contrastive_cpu defense=none,tbar,cleanclip,finetune seed=0,1
    python scripts/contrastive_table.py 'multirun/experiment=contrastive_cpu_defense=none,tbar,cleanclip,finetune_seed=0,1'

Per defense: zero-shot test CA and ASR of theta_b (before) and of the defended model (after), RA, the share of
theta_b's CA kept, the image–caption pairs the defense used, TBAR's alpha and the defense's seconds; mean ± std
over seeds. Every number comes from a ``result.json``; none is edited by hand. The report itself:
``bdunlearn.reports.studies.contrastive``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bdunlearn.reports.machine import describe  # noqa: E402
from bdunlearn.reports.studies import contrastive


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("--out", type=Path, default=Path("results/contrastive.md"))
    args = parser.parse_args()
    command = f"python scripts/contrastive_table.py {' '.join(sys.argv[1:])}"
    print(contrastive.write(args.sweep_dir, args.out, command, describe()))


if __name__ == "__main__":
    main()
