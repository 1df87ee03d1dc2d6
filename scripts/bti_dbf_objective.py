"""Does BTI-DBF's objective prefer the real trigger? Its generator's terms next to the attack's own trigger's.

    python scripts/bti_dbf_objective.py --attacks badnets blended wanet --seeds 2 3 4 5 6 7 --out results/bti_dbf_objective.md

For each backdoored model (the default data and model, or whatever Hydra overrides follow ``--``) this takes
BTI-DBF's candidate generators (one per pixel budget of ``inversion.norm_bounds``; from the cache when a sweep
already inverted the model, else inverted here), recomputes its decoupling mask (deterministic) and measures on
the defender's pool what step 2 weighs: pixel MSE, benign-feature MSE and other-feature MSE (the term G
maximises, relative to the clean benign features' mean square), for each generator and for the attack's real
trigger. If the real trigger's other-feature MSE is below a generator's that stays within the same budgets, the
objective itself prefers something else: no optimiser would find the trigger by maximising it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bdunlearn.experiments.bti_dbf_objective import run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attacks", nargs="+", default=["badnets", "blended", "wanet"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[2, 3, 4, 5, 6, 7])
    parser.add_argument("--out", type=Path, default=Path("results/bti_dbf_objective.md"))
    parser.add_argument("overrides", nargs="*", help="Hydra overrides (after --)")
    run(parser.parse_args())


if __name__ == "__main__":
    main()
