"""Run the CPU benchmarks side by side and write ``results/benchmarks.md`` from what they print.

    python scripts/benchmarks_report.py [--out results/benchmarks.md]

GPU figures come from ``scripts/device_check.sh`` on a GPU machine; until one has been run they are listed
as not yet measured. The benchmarks and the report: ``bdunlearn.reports.studies.benchmarks``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import torch

from bdunlearn.atomic import write_text_atomic
from bdunlearn.reports.machine import describe  # noqa: E402
from bdunlearn.reports.studies import benchmarks


def run(command: list[str]) -> str:
    """What a bench script prints (it inherits this environment, OMP_NUM_THREADS included)."""
    return subprocess.run([sys.executable, *command], capture_output=True, text=True, check=True).stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results/benchmarks.md")
    args = parser.parse_args()
    load = os.getloadavg()[0]  # the machine is shared: how busy it was when the run began
    rows, logs, measured = benchmarks.measure(run)
    threads = torch.get_num_threads()  # intra-op threads: the bench processes inherit this environment
    text = benchmarks.report(rows, logs, measured, hardware=describe(), threads=threads, load=load)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out, text)
    print(text)


if __name__ == "__main__":
    main()
