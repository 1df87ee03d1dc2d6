"""Sweeps that reuse work: cached stages, skipped completed runs, crash-resume, launchers, and the tables."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import SHRINK

FAST = ["model.pretrain.steps=80", "finetune.steps=120", "logger.wandb.mode=disabled"]
REPO = Path(__file__).resolve().parent.parent


def _records(sweep: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in sorted(sweep.glob("*/result.json"))}


def _entries(cache: Path, kind: str) -> int:
    return len([p for p in (cache / kind).glob("*") if (p / "entry.json").is_file()]) if (cache / kind).is_dir() else 0


@pytest.mark.slow  # heavy end-to-end: python -m pytest -m slow
def test_a_sweep_trains_each_stage_once_and_running_it_again_trains_nothing(run_cli, tmp_path, monkeypatch):
    cache = tmp_path / "fresh-cache"
    monkeypatch.setenv("BDUNLEARN_CACHE_DIR", str(cache))
    command = ["-m", "defense=none,tbar,finetune", "seed=0,1", *FAST]
    done, _ = run_cli(*command, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    sweeps = list((tmp_path / "multirun").iterdir())
    assert len(sweeps) == 1 and sweeps[0].name.startswith("defense=none,tbar,finetune_seed=0,1_")  # named after the command
    records = _records(sweeps[0])
    assert len(records) == 6 and all(r["status"] == "ok" for r in records.values())
    for seed in (0, 1):
        trained = [r for r in records.values() if r["seed"] == seed and not r["backdoored_from_cache"]]
        assert len(trained) == 1  # theta_b once per seed, reused by the seed's other defenses
    assert (_entries(cache, "pretrained"), _entries(cache, "backdoored"), _entries(cache, "trigger_vector")) == (1, 2, 2)
    stamps = {name: (sweeps[0] / name / "result.json").stat().st_mtime_ns for name in records}

    again, _ = run_cli(*command, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stdout.count("skipped:") == 6 and "reusing cache entry" not in again.stdout
    assert {name: (sweeps[0] / name / "result.json").stat().st_mtime_ns for name in records} == stamps
    assert (_entries(cache, "pretrained"), _entries(cache, "backdoored"), _entries(cache, "trigger_vector")) == (1, 2, 2)


@pytest.mark.slow  # heavy end-to-end: python -m pytest -m slow
def test_a_killed_sweep_run_again_ends_with_exactly_one_ok_record_per_run(tmp_path):
    sweep = tmp_path / "sweep"
    cmd = [sys.executable, "-m", "bdunlearn", "-m", "seed=0,1,2", *SHRINK, f"hydra.sweep.dir={sweep}"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 600
    while not (sweep / "0" / "result.json").is_file() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    first = sweep / "0" / "result.json"
    assert first.is_file() and json.loads(first.read_text())["status"] == "ok"
    stamp = first.stat().st_mtime_ns
    assert len(_records(sweep)) < 3  # killed midway

    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    records = _records(sweep)
    assert sorted(records) == ["0", "1", "2"] and all(r["status"] == "ok" for r in records.values())
    assert sorted(r["seed"] for r in records.values()) == [0, 1, 2]
    assert first.stat().st_mtime_ns == stamp  # the run that had finished was skipped, not redone


@pytest.mark.slow  # heavy end-to-end: python -m pytest -m slow
@pytest.mark.parametrize("launcher", ["joblib", "submitit_local"])
def test_launchers_produce_the_records_of_the_basic_launcher(run_cli, tmp_path, launcher):
    def sweep(name: str, *extra: str) -> dict[str, dict]:
        done, _ = run_cli("-m", "seed=0,1", "defense=finetune", *SHRINK, f"hydra.sweep.dir={tmp_path / name}", *extra, timeout=900)
        assert done.returncode == 0, done.stderr[-2000:]
        return {str(r["seed"]): r for r in _records(tmp_path / name).values()}

    extra = ["hydra.launcher.n_jobs=1"] if launcher == "joblib" else ["hydra.launcher.timeout_min=20"]
    basic = sweep("basic")
    other = sweep(launcher, f"hydra/launcher={launcher}", *extra)
    assert sorted(other) == sorted(basic) == ["0", "1"]
    for seed, record in basic.items():
        for key in ("status", "config_hash", "clean_acc_backdoored", "asr_backdoored", "clean_acc", "asr", "defense_samples"):
            assert other[seed][key] == record[key], (launcher, seed, key)


def _write_run(root: Path, name: str, record: dict) -> None:
    run = root / name
    (run / ".hydra").mkdir(parents=True)
    (run / "result.json").write_text(json.dumps({"status": "ok", **record}))
    (run / ".hydra" / "config.yaml").write_text(f"defense:\n  name: {record['defense']}\n  num_samples: {record['defense_samples']}\n")


def test_make_tables_rows_and_numbers_match_the_records(tmp_path):
    runs = tmp_path / "runs"
    values = {
        ("badnets", "tbar", 0): (0.90, 0.10), ("badnets", "tbar", 1): (0.80, 0.30),
        ("badnets", "none", 0): (0.95, 1.00), ("badnets", "none", 1): (0.93, 0.98),
        ("blended", "tbar", 0): (0.70, 0.50),
    }  # fmt: skip
    for i, ((attack, defense, seed), (ca, asr)) in enumerate(values.items()):
        record = {"attack": attack, "defense": defense, "seed": seed, "dataset": "digits", "clean_acc": ca, "asr": asr, "defense_samples": 100}
        _write_run(runs, str(i), record)
    _write_run(runs, "failed", {"attack": "badnets", "defense": "tbar", "seed": 9, "dataset": "digits", "clean_acc": 0.0, "asr": 1.0, "defense_samples": 1})
    (runs / "failed" / "result.json").write_text(json.dumps({"status": "failed", "attack": "badnets"}))
    out = tmp_path / "tables"
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "make_tables.py"), str(runs), "--out", str(out)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    text = (out / "table.md").read_text()
    assert text.startswith("Made by `python scripts/make_tables.py ") and "from 5 ok run records" in text
    lines = text.split("\n\n", 1)[1].splitlines()
    assert lines[0] == "| attack | defense | digits CA | digits ASR |"
    assert lines[2:] == [
        "| badnets | none | 0.940 ± 0.014 | 0.990 ± 0.014 |",
        "| badnets | tbar | 0.850 ± 0.071 | 0.200 ± 0.141 |",
        "| blended | tbar | 0.700 | 0.500 |",
    ]
    assert "\\multicolumn{2}{c}{digits}" in (out / "table.tex").read_text()
    csv = (out / "table.csv").read_text().splitlines()
    assert csv[0] == "attack,defense,dataset,mean,std,count,metric" and len(csv) == 1 + 3 * 2

    pivoted = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "make_tables.py"), str(runs), "--out", str(out), "--name", "budget",
         "--pivot", "defense/cfg.defense.num_samples", "--metrics", "asr"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert pivoted.returncode == 0, pivoted.stderr
    assert (out / "budget.md").read_text().split("\n\n", 1)[1].splitlines()[2:] == ["| none | 0.990 ± 0.014 |", "| tbar | 0.300 ± 0.200 |"]

    bad = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "make_tables.py"), str(runs), "--pivot", "attack/nope"], capture_output=True, text=True, timeout=120
    )
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "'nope'" in bad.stderr
