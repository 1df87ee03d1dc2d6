"""The scale study's report: does TBAR's premise appear as the CLIP grows, and with which variant?

    python scripts/scale_study.py 'multirun/experiment=scale_study' [--out results/] [--name scale_study]

Reads every ``ok`` run record of the sweep(s) (``bdunlearn -m experiment=scale_study``: rung × seed × study
arm, see ``conf/experiment/scale_study.yaml``) and writes into ``--out``:

- ``<name>.md``: per rung the testbed (θ_pre zero-shot CA, the clean fine-tune θ_c, θ_b, the control dataset)
  and the weight-space diagnostics (ξ of the clean and poison vectors, cosines of TBAR's vector with the
  attack's and the poison's); per rung × arm the defended test CA / ASR / CA kept and each arm's distance to
  the paper's claim (``bdunlearn.reports.criteria``), read off the validation α curve for the arms that have
  one; and the answer to "which rung and variant reaches the claim, and how far is each from it";
- ``<name>.csv``: the per rung × arm numbers (mean, std, count over seeds);
- ``<name>_alpha_curves.png``, ``<name>_tradeoff.png``, ``<name>_trend.png``, ``<name>_disentanglement.png``.

Every number comes from the records (and the ξ grids the reference arm writes beside its record). The report
itself: ``bdunlearn.reports.studies.scale``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bdunlearn import api
from bdunlearn.reports.machine import describe  # noqa: E402
from bdunlearn.reports.provenance import git_commit
from bdunlearn.reports.studies import scale


def fidelity_run() -> tuple[str, str, int]:
    """(model, label, seed) of the run ``bdunlearn experiment=fidelity_cpu`` makes."""
    cfg = api.compose(["experiment=fidelity_cpu"])
    return cfg.model.name, cfg.label, cfg.seed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sources", nargs="+", help="sweep dirs (or globs) of experiment=scale_study")
    parser.add_argument("--out", type=Path, default=Path("results"))
    parser.add_argument("--name", default="scale_study")
    args = parser.parse_args()
    print(scale.write(
        args.sources, args.out, args.name, fidelity=fidelity_run(), command=f"python scripts/scale_study.py {' '.join(sys.argv[1:])}",
        commit=git_commit(Path(__file__).resolve().parent), hardware=describe(),
    ))  # fmt: skip


if __name__ == "__main__":
    main()
