"""The command as a user runs it: one-line errors before compute, and the default end to end (shrunken)."""

from __future__ import annotations

import json

import pytest
from conftest import BEFORE_COMPUTE_CPU_SECONDS, SHRINK, child_cpu_seconds


@pytest.mark.parametrize(
    "override,fragment",
    [
        ("attack.poison_rate=2", "attack.poison_rate"),
        ("dataset=nope", "unknown dataset 'nope'; choose one of: cars, cifar10, cifar100, csv, digits, dtd"),
        ("defense=nope", "unknown defense 'nope'"),
        ("attack.patch_sz=4", "patch_sz"),
        ("seed=0,1", "add -m"),
    ],
)
def test_user_mistakes_exit_2_with_one_line_and_write_nothing(run_cli, override, fragment):
    started = child_cpu_seconds()
    done, run_dir = run_cli(override, timeout=60)
    assert child_cpu_seconds() - started < BEFORE_COMPUTE_CPU_SECONDS
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bdunlearn: error:") and fragment in lines[0]
    assert "Traceback" not in done.stderr + done.stdout
    assert not run_dir.exists()


def test_a_bad_value_in_one_point_of_a_sweep_stops_the_sweep_before_it_starts(run_cli, tmp_path):
    done, _ = run_cli("-m", "attack.poison_rate=0.1,2", f"hydra.sweep.dir={tmp_path / 'sweep'}", timeout=60)
    assert done.returncode == 2 and "attack.poison_rate=2" in done.stderr
    assert not (tmp_path / "sweep").exists()


def test_default_pipeline_end_to_end_shrunken(run_cli):
    done, run_dir = run_cli(*SHRINK)
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads((run_dir / "result.json").read_text())
    assert record["status"] == "ok"
    assert record["asr_backdoored"] >= 0.9
    assert record["asr"] < record["asr_backdoored"]
    assert record["clean_acc_backdoored"] > record["clean_acc_pretrained"] + 0.05  # fine-tuning adds accuracy
    curve = record["alpha_curve"]
    assert curve[0]["alpha"] == 0.0 and len(curve) >= 2
    assert record["alpha"] in [p["alpha"] for p in curve]
    assert record["defense_samples"] == 100 and record["defense_seconds"] > 0
    assert record["clean_acc_retained"] == pytest.approx(record["clean_acc"] / record["clean_acc_backdoored"])
    assert "pretrained" in done.stdout and "backdoored" in done.stdout and "tbar (alpha=" in done.stdout

    # the same run again reuses theta_pre and theta_b and reproduces the numbers exactly
    again, run_dir2 = run_cli(*SHRINK)
    assert again.returncode == 0, again.stderr[-2000:]
    second = json.loads((run_dir2 / "result.json").read_text())
    assert second["backdoored_from_cache"] is True and record["backdoored_from_cache"] is False
    for key in ("clean_acc_backdoored", "asr_backdoored", "clean_acc", "asr", "alpha", "config_hash"):
        assert second[key] == record[key]


@pytest.mark.slow  # heavy end-to-end: python -m pytest -m slow
def test_other_seeds_and_attack_settings_write_records(run_cli):
    done, run_dir = run_cli(*SHRINK, "seed=1", "attack.target_class=3", "attack.patch_size=4")
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads((run_dir / "result.json").read_text())
    assert record["status"] == "ok" and record["target_class"] == 3 and record["seed"] == 1
    assert record["asr_backdoored"] >= 0.9 and record["asr"] < record["asr_backdoored"]


def test_defense_none_returns_the_backdoored_model(run_cli):
    shrink = [o for o in SHRINK if not o.startswith("defense.")]
    done, run_dir = run_cli(*shrink, "defense=none")
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads((run_dir / "result.json").read_text())
    assert record["defense"] == "none" and record["alpha"] is None and record["defense_samples"] == 0
    assert record["asr"] == record["asr_backdoored"] and record["clean_acc_retained"] == 1.0
