"""A whole ``bdunlearn`` run in bounded memory: ``dataset=folder dataset.storage=auto dataset.memory_budget_gb=<cap>``
over real image files whose decoded size is at least ten times the cap, run as a subprocess while the peak
memory of its process tree (the command and its DataLoader workers) is sampled from /proc.

    python scripts/bench_stream_run.py               # cap 2,000 MB: 132,866 Fashion-MNIST PNGs decoded at 224 px

The last lines are ``run_peak_pss_mb=...`` and ``run_pss_over_cap=...`` (goal < 1).
"""

from __future__ import annotations

import argparse

from bdunlearn.experiments.bench_stream_run import run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cap-mb", type=int, default=2000, help="memory cap in MB (10^6 bytes)")
    parser.add_argument("--image-size", type=int, default=224, help="the size images are decoded at")
    parser.add_argument("--count", type=int, default=None, help="images (default: the fewest decoding to 10 x the cap)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=30, help="pretraining and attack fine-tune steps")
    parser.add_argument("--interval", type=float, default=0.05, help="seconds between memory samples")
    parser.add_argument("--workdir", default="/tmp/bdunlearn-bench-stream")
    run(parser.parse_args())


if __name__ == "__main__":
    main()
