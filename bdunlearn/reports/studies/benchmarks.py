"""``results/benchmarks.md``: the CPU benchmarks side by side, each figure against its goal."""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable

from bdunlearn.reports.criteria import meets_goal

BENCHES = [
    # (command, key printed last, goal, what it compares)
    (["scripts/bench_train.py", "--data-pipeline"], "ratio", ">= 0.95", "framework / bare training loop, images/s (tiny CLIP, batch 64)"),
    (["scripts/bench_triggers.py", "--image-size", "32"], "ratio", ">= 50", "in-place batched / per-image PIL triggers, 256 images of 32x32"),
    (["scripts/bench_triggers.py", "--image-size", "224"], "ratio", ">= 50", "in-place batched / per-image PIL triggers, 256 images of 224x224"),
    (["scripts/bench_triggers.py", "--image-size", "32"], "pipeline_ratio", "-", "the same from uint8 images, with the conversion to float (32x32)"),
    (["scripts/bench_triggers.py", "--image-size", "224"], "pipeline_ratio", "-", "the same from uint8 images, with the conversion to float (224x224)"),
    (["scripts/bench_alpha.py"], "alpha_scan_over_trigger_finetune", "< 1", "TBAR alpha scan / trigger fine-tune, seconds (default run)"),
    (["scripts/bench_alpha.py"], "alpha_scan_over_clean_finetune", "< 1", "TBAR alpha scan / full clean fine-tune, seconds (default run)"),
    (["scripts/bench_stream.py"], "ratio", ">= 0.9", "streamed / bare torchvision ImageFolder DataLoader, images/s per worker (JPEGs, 224 px)"),
    (["scripts/bench_stream_run.py"], "run_pss_over_cap", "< 1", "peak PSS of a whole streamed `bdunlearn` run / its 2,000 MB cap (files decoding to 20 GB)"),
]
GPU_ROWS = [
    "| MFU, ViT-B/32, batch 128, bf16 | not yet measured | >= 35% | `bash scripts/device_check.sh` |",
    "| MFU, ViT-L/14, batch 128, bf16 | not yet measured | >= 50% | `bash scripts/device_check.sh` |",
    "| end-to-end tiny run on CUDA | not yet measured | runs | `bash scripts/device_check.sh` |",
    "| streamed `bdunlearn` run on CUDA, peak PSS / 3,000 MB cap | awaits a lent GPU | < 1 | `bash scripts/device_check.sh scale` |",
    "| `torchrun --nproc_per_node 2 -m bdunlearn` on 2 GPUs (NCCL): CA / ASR as one GPU | awaits a lent 2-GPU machine | equal | `bash scripts/device_check.sh scale` |",
]


def measure(run: Callable[[list[str]], str]) -> tuple[list[str], list[str], list[tuple[str, float, str]]]:
    """Run each distinct bench command once (``run`` returns what it printed) and read each figure off its output:
    (table rows, the commands' logs, (what, value, goal) per figure)."""
    outputs: dict[tuple[str, ...], str] = {}
    rows, logs, measured = [], [], []
    for command, key, goal, what in BENCHES:
        if tuple(command) not in outputs:
            outputs[tuple(command)] = run(command)
            logs.append(f"$ python {' '.join(command)}\n{outputs[tuple(command)].strip()}")
        value = re.findall(rf"^{key}=(\S+)$", outputs[tuple(command)], re.M)[-1]
        rows.append(f"| {what} | {value} | {goal} | `python {' '.join(command)}` |")
        measured.append((what, float(value), goal))
    return rows, logs, measured


def goals_sentence(measured: list[tuple[str, float, str]]) -> str:
    """One sentence naming the CPU goals this run missed, from (what, value, goal) rows."""
    missed = [f"{what} ({value:g}, goal {goal})" for what, value, goal in measured if meets_goal(value, goal) is False]
    return f"Goals missed in this run: {'; '.join(missed)}." if missed else "Every CPU goal is met in this run."


def report(rows: list[str], logs: list[str], measured: list[tuple[str, float, str]], *, hardware: str, threads: int, load: float) -> str:
    return "\n".join([
        "# Benchmarks",
        "",
        f"Produced by `python scripts/benchmarks_report.py` on {datetime.date.today()}: {hardware};",
        f"{threads} torch thread(s) per process; 1-minute load average {load:.1f} when it started.",
        "Each figure is a ratio measured side by side in one process (repeats alternate between the two sides).",
        "",
        "| figure | measured | goal | command |",
        "| --- | --- | --- | --- |",
        *rows,
        *GPU_ROWS,
        "",
        goals_sentence(measured),
        "",
        "The trigger figures time `Attack.apply_`, the in-place trigger that training and evaluation write into the",
        "float batch they build anyway, against a per-image PIL pipeline (to PIL, trigger, back to a tensor) on the",
        "same batch; both sides produce the same triggered batch (checked before timing). BadNets writes only its",
        "patch; Blended reads and writes every pixel once (one `lerp_` pass), so at 224x224 it is bound by memory",
        "bandwidth. The rows without a goal start both sides from stored uint8 images, so they also charge the",
        "conversion to float pixels (`to_pixels`, which allocates the batch), work that the trigger rows leave out",
        "of the batched side. All timings come from a 2-core machine shared with other jobs, so ratios move between",
        "runs, most at 32x32 where a batched call takes well under a millisecond.",
        "",
        "The streamed run's memory is that of the `bdunlearn` process and its DataLoader workers, sampled from /proc",
        "every 50 ms: PSS splits the pages they share (torch's libraries), the RSS sum counts them once per process",
        "(both, and the largest single RSS, are in the output below). Besides the stream, such a run holds the small",
        "parts in memory: the defender's pool (200 images), validation (500) and the pretraining corpus (0.5%).",
        "Two processes under torch.distributed (gloo, CPU) against one at the same global batch are a test",
        "(`tests/test_scale_run.py`), not a figure here.",
        "",
        "## Output",
        "",
        "```text",
        "\n\n".join(logs),
        "```",
        "",
    ])  # fmt: skip
