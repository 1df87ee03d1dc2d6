"""What ``scripts/bench_stream_run.py`` measures (its docstring says how to run it): a whole ``bdunlearn`` run in
a subprocess, over a folder of image files whose decoded size is ten times a memory cap, with the peak memory
of its process tree sampled from /proc while it runs."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from bdunlearn.data.storage import decoded_bytes
from bdunlearn.experiments.image_files import _kib, _tree, write_image_folder
from bdunlearn.reports.machine import describe

MB = 10**6


def overrides(args, root: Path, run_dir: Path, count: int) -> list[str]:
    """The run: tiny CLIP, the folder decoded at ``image_size``, ``dataset.storage=auto`` with the cap as its budget.
    What a run holds in memory besides the stream is kept small: the defender's pool (200 images), validation (at
    most 500) and the pretraining corpus (0.5% of the training images); test, streamed, is 5% (6,643 images), so
    that the run's five passes over it take minutes on two cores."""
    return [
        "dataset=folder", f"dataset.root={root}", f"dataset.image_size={args.image_size}", "dataset.storage=auto",
        f"dataset.memory_budget_gb={args.cap_mb * MB / 1e9:g}", f"dataset.num_workers={args.workers}",
        f"dataset.splits.defense_fraction={200 / count:.4g}", "dataset.splits.test_fraction=0.05", "dataset.splits.max_val_samples=500", "dataset.pretrain_fraction=0.005",
        f"model.pretrain.steps={args.steps}", f"finetune.steps={args.steps}", f"finetune.batch_size={args.batch_size}",
        "defense.steps=20", "defense.num_samples=100", f"eval_batch_size={args.batch_size}",
        "logger.wandb.mode=disabled", "save_model=false", "use_cache=false", f"hydra.run.dir={run_dir}",
    ]  # fmt: skip


def watch(process: subprocess.Popen, interval: float) -> dict:
    """Peak memory of ``process`` and its descendants until it exits: PSS summed (shared pages split between
    the processes that map them), RSS summed (shared pages counted once per process), the largest single RSS."""
    peak = {"pss": 0, "rss_sum": 0, "rss_max": 0, "processes": 0}
    while process.poll() is None:
        pids = _tree(process.pid)
        rss = [1024 * _kib(p, "status", "VmRSS:") for p in pids]
        peak["pss"] = max(peak["pss"], 1024 * sum(_kib(p, "smaps_rollup", "Pss:") for p in pids))
        peak["rss_sum"], peak["rss_max"] = max(peak["rss_sum"], sum(rss)), max(peak["rss_max"], max(rss, default=0))
        peak["processes"] = max(peak["processes"], len(pids))
        time.sleep(interval)
    return peak


def run(args) -> None:
    """The measurement, for the arguments ``scripts/bench_stream_run.py`` parses."""
    cap = args.cap_mb * MB
    count = args.count or math.ceil(10 * cap / decoded_bytes(1, args.image_size))
    workdir = Path(args.workdir)
    files, source = write_image_folder(workdir / "png-native", count, "png")
    decoded = decoded_bytes(len(files), args.image_size)
    print(f"{describe()}; {len(files)} {source} PNG files, {decoded / MB:,.0f} MB decoded at {args.image_size} px = {decoded / cap:.1f} x the cap")
    run_dir = workdir / "run"
    command = [sys.executable, "-m", "bdunlearn", *overrides(args, workdir / "png-native", run_dir, len(files))]
    print("$ bdunlearn " + " ".join(command[3:]))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled"}
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(process.stdout), daemon=True)
    reader.start()
    peak = watch(process, args.interval)
    reader.join()
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit("the run failed:\n" + "".join(output[-40:]))
    record = json.loads((run_dir / "result.json").read_text())
    print(f"run: {seconds:.0f} s, dataset.storage=auto chose {record['data_storage']!r}; CA/ASR backdoored "
          f"{record['clean_acc_backdoored']:.3f}/{record['asr_backdoored']:.3f}, defended {record['clean_acc']:.3f}/{record['asr']:.3f}")  # fmt: skip
    print(f"peak memory of the run's {peak['processes']} processes: PSS {peak['pss'] / MB:,.0f} MB, RSS sum "
          f"{peak['rss_sum'] / MB:,.0f} MB, largest RSS {peak['rss_max'] / MB:,.0f} MB; cap {cap / MB:,.0f} MB")  # fmt: skip
    print(f"run_peak_pss_mb={peak['pss'] / MB:.0f}")
    print(f"run_pss_over_cap={peak['pss'] / cap:.3f}")
