"""Pretrain θ_pre for each rung of the scale ladder (or find it in the cache), and report each one.

    python scripts/pretrain.py [--models tiny small medium] [--out results/pretrain.md] [-- OVERRIDES...]

Each model is composed exactly as a run would be (``model=<name>`` plus the Hydra overrides after ``--``, e.g.
``experiment=scale_study``), so the checkpoint lands under the cache key every run of that recipe looks up:
``paths.cache_dir/pretrained/<hash>/weights.safetensors`` with ``entry.json`` (the config that built it).
A killed pretraining resumes from its last save when started again. For every model the report gives the
architecture, the corpus, the seconds the pretraining took (when it was built, on whatever machine built it)
and the zero-shot clean accuracy of θ_pre on the test split of the run's dataset (and each control dataset).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bdunlearn.experiments.pretrain import run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["tiny", "small", "medium"], help="conf/model/ options")
    parser.add_argument("--out", type=Path, default=None, help="write the report here (Markdown)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides (after --), e.g. experiment=scale_study")
    run(parser.parse_args())


if __name__ == "__main__":
    main()
