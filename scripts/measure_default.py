"""Run ``bdunlearn`` (the embedded default) on an empty cache and again on the warm cache, and record both.

    python scripts/measure_default.py [--out results/default_run.md] [--readme README.md docs/quickstart.md]

Writes the before/after table, wall times and the record's headline numbers to ``--out`` and puts the same
block into README and the quickstart page between the ``<!-- measured: default-run -->`` markers (``bdunlearn.reports.studies.default_run``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

from bdunlearn.atomic import write_text_atomic
from bdunlearn.reports.machine import describe  # noqa: E402
from bdunlearn.reports.studies import default_run


def run(cache: Path, run_dir: Path) -> tuple[float, str, dict]:
    env = {**os.environ, "BDUNLEARN_CACHE_DIR": str(cache), "HF_HUB_OFFLINE": "1"}
    started = time.perf_counter()
    done = subprocess.run(
        ["bdunlearn", f"hydra.run.dir={run_dir}"], capture_output=True, text=True, env=env, check=True
    )
    seconds = time.perf_counter() - started
    table = "\n".join(line for line in done.stdout.splitlines() if not line.startswith("["))
    return seconds, table.strip(), json.loads((run_dir / "result.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results/default_run.md")
    parser.add_argument("--readme", nargs="+", default=["README.md", "docs/quickstart.md"], help="files holding the measured block")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cold, table, record = run(tmp / "cache", tmp / "cold")
        warm, _, warm_record = run(tmp / "cache", tmp / "warm")
    assert warm_record["backdoored_from_cache"], "the second run should reuse theta_pre and theta_b"
    block = default_run.summary_block(table, record, cold=cold, warm=warm, run_root=str(tmp), hardware=describe())
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out, default_run.report(block, record))
    for readme in map(Path, args.readme):
        write_text_atomic(readme, default_run.with_block(readme.read_text(), block))
    print(block)


if __name__ == "__main__":
    main()
