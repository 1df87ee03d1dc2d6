"""Run ``bdunlearn`` (the embedded default) on an empty cache and again on the warm cache, and record both.

    python scripts/measure_default.py [--out results/default_run.md] [--readme README.md]

Writes the before/after table, wall times and the record's headline numbers to ``--out`` and puts the same
block into README between the ``<!-- measured: default-run -->`` markers.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe  # noqa: E402

from bdunlearn.atomic import write_text_atomic  # noqa: E402

MARK = "<!-- measured: default-run -->"


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
    parser.add_argument("--readme", default="README.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cold, table, record = run(tmp / "cache", tmp / "cold")
        warm, _, warm_record = run(tmp / "cache", tmp / "warm")
    assert warm_record["backdoored_from_cache"], "the second run should reuse theta_pre and theta_b"
    block = "\n".join([
        "```text",
        "$ bdunlearn",
        table.replace(str(tmp), "outputs/..."),
        "```",
        "",
        f"Cold (empty cache): {cold:.0f} s; warm (θ_pre and θ_b cached): {warm:.0f} s. "
        f"Fine-tuning adds {100 * (record['clean_acc_backdoored'] - record['clean_acc_pretrained']):.1f} points of clean "
        f"accuracy over zero-shot θ_pre ({record['clean_acc_pretrained']:.3f} → {record['clean_acc_backdoored']:.3f}). "
        f"TBAR chose α = {record['alpha']:g} on the validation split: test ASR {record['asr_backdoored']:.3f} → "
        f"{record['asr']:.3f}, CA retained {record['clean_acc_retained']:.3f}; cosine(τ_t, θ_b − θ_pre) = "
        f"{record['cosine_trigger_attack']:.3f}.",
        f"Measured {datetime.date.today()} on {describe()} by `python scripts/measure_default.py`.",
    ])  # fmt: skip
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    curve = "\n".join(f"| {p['alpha']:g} | {p['val_clean_acc']:.3f} | {p['val_asr']:.3f} |" for p in record["alpha_curve"])
    write_text_atomic(
        out,
        "# The default run (`bdunlearn`, no overrides)\n\n" + block + "\n\n## TBAR's validation curve\n\n"
        "| alpha | val CA | val ASR |\n| --- | --- | --- |\n" + curve + "\n"
    )
    readme = Path(args.readme)
    text = readme.read_text()
    pattern = re.compile(re.escape(MARK) + r".*?" + re.escape(MARK.replace("-->", "end -->")), re.S)
    replacement = f"{MARK}\n{block}\n{MARK.replace('-->', 'end -->')}"
    if pattern.search(text):
        text = pattern.sub(lambda _: replacement, text)
    else:
        text = text.replace(MARK, replacement, 1)
    write_text_atomic(readme, text)
    print(block)


if __name__ == "__main__":
    main()
