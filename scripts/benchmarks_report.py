"""Run the CPU benchmarks side by side and write ``results/benchmarks.md`` from what they print.

    python scripts/benchmarks_report.py [--out results/benchmarks.md]

GPU figures come from ``scripts/device_check.sh`` on a GPU machine; until one has been run they are listed
as not yet measured.
"""

from __future__ import annotations

import argparse
import datetime
import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe  # noqa: E402

from bdunlearn.atomic import write_text_atomic  # noqa: E402

BENCHES = [
    # (command, key printed last, goal, what it compares)
    (["scripts/bench_train.py", "--data-pipeline"], "ratio", ">= 0.95", "framework / bare training loop, images/s (tiny CLIP, batch 64)"),
    (["scripts/bench_triggers.py", "--image-size", "32"], "ratio", ">= 50", "batched / per-image PIL triggers, 256 images of 32x32"),
    (["scripts/bench_triggers.py", "--image-size", "224"], "ratio", ">= 50", "batched / per-image PIL triggers, 256 images of 224x224"),
    (["scripts/bench_alpha.py"], "alpha_scan_over_trigger_finetune", "< 1", "TBAR alpha scan / trigger fine-tune, seconds (default run)"),
    (["scripts/bench_alpha.py"], "alpha_scan_over_clean_finetune", "< 1", "TBAR alpha scan / full clean fine-tune, seconds (default run)"),
]
GPU_ROWS = [
    "| MFU, ViT-B/32, batch 128, bf16 | not yet measured | >= 35% | `bash scripts/device_check.sh` |",
    "| MFU, ViT-L/14, batch 128, bf16 | not yet measured | >= 50% | `bash scripts/device_check.sh` |",
    "| end-to-end tiny run on CUDA | not yet measured | runs | `bash scripts/device_check.sh` |",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results/benchmarks.md")
    args = parser.parse_args()
    outputs: dict[tuple[str, ...], str] = {}
    rows, logs = [], []
    for command, key, goal, what in BENCHES:
        if tuple(command) not in outputs:
            done = subprocess.run([sys.executable, *command], capture_output=True, text=True, check=True)
            outputs[tuple(command)] = done.stdout
            logs.append(f"$ python {' '.join(command)}\n{done.stdout.strip()}")
        value = re.findall(rf"^{key}=(\S+)$", outputs[tuple(command)], re.M)[-1]
        rows.append(f"| {what} | {value} | {goal} | `python {' '.join(command)}` |")
    text = "\n".join([
        "# Benchmarks",
        "",
        f"Produced by `python scripts/benchmarks_report.py` on {datetime.date.today()}: {describe()}.",
        "Each figure is a ratio measured side by side in one process (repeats alternate between the two sides).",
        "",
        "| figure | measured | goal | command |",
        "| --- | --- | --- | --- |",
        *rows,
        *GPU_ROWS,
        "",
        "The trigger ratio at 32x32 moves a lot between runs (timings of well under a millisecond per batch), and",
        "at 224x224 the batched path is bound by memory bandwidth (each call copies the batch), so on this 2-core",
        "CPU the 50x goal is not met; both sides produce the same triggered batch (checked before timing).",
        "",
        "## Output",
        "",
        "```text",
        "\n\n".join(logs),
        "```",
        "",
    ])  # fmt: skip
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out, text)
    print(text)


if __name__ == "__main__":
    main()
