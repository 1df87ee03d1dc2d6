"""The scale study: the ladder's models and arms compose, a shrunken sweep records the diagnostics, and the
report and the pretraining script tell the numbers of the records."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bdunlearn.config import CONFIG_DIR
from tests.conftest import REPO, SHRINK

STAGES = [o for o in SHRINK if not o.startswith("defense.")]  # defense=none and interpolate have no steps
ARMS = sorted(p.stem for p in (CONFIG_DIR / "arm").glob("*.yaml"))
# The testbed shrunk onto digits (always at hand): no Fashion-MNIST, no control dataset.
ON_DIGITS = ["dataset=digits", "control_datasets=[]", "model.pretrain.corpus=[digits]", "model.pretrain.corpus_fractions=null"]


@pytest.mark.parametrize("arm", ARMS)
def test_every_study_arm_composes_into_the_study_and_names_its_runs(compose, arm):
    cfg = compose("experiment=scale_study", f"arm={arm}")
    assert cfg.label == ("none" if arm == "reference" else arm)
    baselines = {"reference": "none", "interpolate": "interpolate", "ft_sam": "ft_sam", "par": "par", "cleanclip": "cleanclip"}
    expected = baselines.get(arm, "finetune" if arm.startswith("finetune") else "tbar")
    assert cfg.defense.name == expected
    assert cfg.analysis.clean_reference  # every arm of the study records the poison's direction


def test_the_ladder_grows_width_and_depth_at_the_same_input_and_patch():
    from bdunlearn.models.architectures import architecture

    rungs = [architecture(f"bdunlearn-{name}")["vision_cfg"] for name in ("tiny", "small", "medium")]
    assert [r["width"] for r in rungs] == sorted(r["width"] for r in rungs) and len({r["width"] for r in rungs}) == 3
    assert [r["layers"] for r in rungs] == sorted(r["layers"] for r in rungs)
    assert {(r["image_size"], r["patch_size"]) for r in rungs} == {(16, 4)}  # the trigger stays the same in pixels
    for name in ("tiny", "small", "medium"):
        assert architecture(f"bdunlearn-{name}")["text_cfg"]["vocab_size"] == 49408  # the bundled tokenizer's


def test_a_shrunken_study_sweep_records_the_diagnostics_and_the_report_tells_its_numbers(run_cli, tmp_path):
    sweep = tmp_path / "sweep"
    done, _ = run_cli(
        "-m", "experiment=scale_study", "model=tiny", "seed=0", "arm=reference,tbar,interpolate", *ON_DIGITS, *STAGES,
        "analysis.disentanglement_samples=200", f"hydra.sweep.dir={sweep}", timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    records = {r["label"]: r for r in (json.loads(p.read_text()) for p in sweep.glob("*/result.json"))}
    assert sorted(records) == ["interpolate", "none", "tbar"]
    for record in records.values():
        assert record["status"] == "ok" and 0 <= record["clean_acc_clean_model"] <= 1
        assert -1 <= record["cosine_poison_clean"] <= 1
    assert -1 <= records["tbar"]["cosine_trigger_poison"] <= 1 and "cosine_trigger_poison" not in records["none"]
    reference_dir = next(p.parent for p in sweep.glob("*/result.json") if json.loads(p.read_text())["label"] == "none")
    grid = (reference_dir / "disentanglement.csv").read_text().splitlines()
    assert grid[0].startswith("alpha_c,alpha_t,xi") and len(grid) == 1 + 25  # the reference arm's 5 x 5 grid
    assert 0 <= records["none"]["xi_at_one"] <= 2 and 0 <= records["none"]["xi_disentangled_area"] <= 1

    out = tmp_path / "report"
    report = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "scale_study.py"), str(sweep), "--out", str(out)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert report.returncode == 0, report.stderr[-2000:]
    text = (out / "scale_study.md").read_text()
    assert "## The answer" in text and "experiment=scale_study" in text
    tbar_row = next(line for line in text.splitlines() if "| `tbar` |" in line)
    tbar = records["tbar"]
    assert f"| {tbar['clean_acc']:.3f} | {tbar['asr']:.3f} | {tbar['clean_acc_retained']:.3f} |" in tbar_row
    rung_row = next(line for line in text.splitlines() if line.startswith("| tiny (w64, 3L) |"))
    assert f"{records['none']['xi_at_one']:.3f}" in rung_row and f"{tbar['cosine_trigger_poison']:.3f}" in rung_row
    for figure in ("alpha_curves", "tradeoff", "trend", "disentanglement"):
        assert (out / f"scale_study_{figure}.png").stat().st_size > 0


def test_the_pretraining_script_reports_each_rung_it_builds(tmp_path):
    out = tmp_path / "pretrain.md"
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "pretrain.py"), "--models", "tiny", "--out", str(out), "--",
         "model.pretrain.steps=20", "logger.wandb.mode=disabled"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "tiny: built in" in done.stdout or "tiny: cached" in done.stdout
    row = next(line for line in out.read_text().splitlines() if line.startswith("| `tiny`"))
    assert "16 px, patch 4, width 64, 3 layers" in row and "20 × 128" in row


@pytest.mark.slow
@pytest.mark.parametrize("model", ["small", "medium"])
def test_the_larger_rungs_pretrain_to_a_zero_shot_classifier(tmp_path, model):
    """The larger rungs' real pretraining recipes (tens of minutes on 2 CPU cores): outside CI."""
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "pretrain.py"), "--models", model, "--", "experiment=scale_study"],
        capture_output=True, text=True, timeout=4 * 3600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    line = next(line for line in done.stdout.splitlines() if line.startswith(f"{model}:"))
    zero_shot = float(line.split("zero-shot CA ")[1].split()[0])
    assert zero_shot > 0.3  # ten classes: far above chance


@pytest.mark.slow
def test_fidelity_cpu_reproduces_its_row_of_the_committed_scale_study(run_cli, tmp_path, monkeypatch):
    """From an empty cache (pretraining included), as a new user would run it: outside CI."""
    text = (REPO / "results" / "scale_study.md").read_text().split("## `experiment=fidelity_cpu`")[1]
    row = next(line for line in text.splitlines() if line.startswith("| ") and "`" in line)
    cells = [c.strip() for c in row.strip("|").split("|")]
    monkeypatch.setenv("BDUNLEARN_CACHE_DIR", str(tmp_path / "cache"))
    done, run_dir = run_cli("experiment=fidelity_cpu", "logger.wandb.mode=disabled", timeout=3600)
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads((run_dir / "result.json").read_text())
    keys = ("clean_acc_pretrained", "clean_acc_backdoored", "asr_backdoored", "clean_acc", "asr", "clean_acc_retained")
    assert [f"{record[k]:.4f}" for k in keys] == cells[3:9]
