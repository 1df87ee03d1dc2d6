"""Every user mistake ends in one line before compute; runs survive kills; the same seed gives the same numbers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import BEFORE_COMPUTE_CPU_SECONDS, SHRINK, child_cpu_seconds
from safetensors.torch import load_file

from bdunlearn.models.checkpoint import save_state_dict

BAD_VALUES = [
    ("attack.poison_rate=2", "attack.poison_rate"),
    ("attack.poison_rate=0", "attack.poison_rate"),
    ("attack.target_class=10", "attack.target_class"),
    ("attack.target_class=-1", "attack.target_class"),
    ("attack.patch_size=17", "attack.patch_size"),
    ("attack.patch_size=0", "attack.patch_size"),
    ("attack.location=middle", "attack.location"),
    ("attack.pattern=stripes", "attack.pattern"),
    ("defense.kappa=1.5", "defense.kappa"),
    ("defense.alpha_grid=[]", "defense.alpha_grid"),
    ("defense.alpha_grid=[0.5,-1]", "defense.alpha_grid"),
    ("defense.num_samples=0", "defense.num_samples"),
    ("defense.num_samples=5000", "defender's pool"),
    ("defense.start=middle", "defense.start"),
    ("defense.lr=0", "defense.lr"),
    ("finetune.steps=0", "finetune.steps"),
    ("checkpoint_every=-1", "checkpoint_every"),
    ("seed=abc", "seed"),
    ("device=tpu", "device"),
    ("logger.wandb.mode=sometimes", "logger.wandb.mode"),
    ("dataset.splits.val_fraction=0.9", "dataset.splits"),
    ("dataset.templates=[a photo]", "placeholder"),
    ("attack_knowledge=unknown", "attack_knowledge"),
    ("model.name=ViT-Z-99", "ViT-Z-99"),
    ("model.pretrained=foo", "no such tag"),
    ("dataset=nope", "unknown dataset 'nope'"),
    ("attack=nope", "unknown attack 'nope'"),
    ("defense=nope", "unknown defense 'nope'"),
    ("model=nope", "unknown model 'nope'"),
    ("attack.patch_sz=4", "patch_sz"),
    ("seed=0,1", "add -m"),
    ("unknown_key=1", "unknown_key"),
    ("backdoored_checkpoint=/nonexistent/model.safetensors", "no such file"),
    ("dataset=gtsrb", "no GTSRB under"),
    ("model=vit_b32", "cannot be downloaded offline"),
    ("control_datasets=[cifar10]", "no CIFAR-10 at"),
    ("control_datasets=[nope]", "unknown dataset 'nope'"),
    ("control_datasets=[digits,digits]", "listed twice"),
    ("dataset.splits.max_val_samples=0", "dataset.splits.max_val_samples"),
    ("finetune.epochs=0", "finetune.epochs"),
    ("hydra.run.dir=/proc/bdunlearn-readonly", "cannot write the output directory"),
]
if not torch.cuda.is_available():
    BAD_VALUES.append(("device=cuda", "no CUDA GPU"))


def assert_one_line_error(done: subprocess.CompletedProcess, fragment: str, seconds: float, run_dir: Path) -> None:
    assert done.returncode == 2, (done.returncode, done.stderr[-1000:])
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("bdunlearn: error: ") and fragment in lines[0], lines[0]
    assert "Traceback" not in done.stdout + done.stderr
    assert seconds < BEFORE_COMPUTE_CPU_SECONDS, f"took {seconds:.1f} CPU seconds"
    assert not run_dir.exists(), "a mistake found before compute must leave nothing behind"


@pytest.mark.parametrize("override,fragment", BAD_VALUES, ids=[o for o, _ in BAD_VALUES])
def test_bad_values(run_cli, override, fragment):
    started = child_cpu_seconds()
    done, run_dir = run_cli(override, timeout=60)
    assert_one_line_error(done, fragment, child_cpu_seconds() - started, run_dir)


def test_missing_dataset_files(run_cli, tmp_path):
    started = child_cpu_seconds()
    done, run_dir = run_cli("dataset=fashion_mnist", f"dataset.root={tmp_path}/fm", f"dataset.source_dir={tmp_path}/none")
    assert_one_line_error(done, "apt-get install dataset-fashion-mnist", child_cpu_seconds() - started, run_dir)


class _Exploit:
    def __reduce__(self):
        return (os.system, (f"touch {_Exploit.marker}",))


def _tiny_state() -> dict[str, torch.Tensor]:
    from bdunlearn.models import clip

    torch.manual_seed(0)
    return clip.create("bdunlearn-tiny").state_dict()


def _checkpoint_cases(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    good = _tiny_state()
    cases = {}
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00\x01garbage" * 10)
    cases["corrupt"] = (junk, "not a readable safetensors file")
    whole = tmp_path / "whole.safetensors"
    save_state_dict(whole, good)
    cut = tmp_path / "truncated.safetensors"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    cases["truncated"] = (cut, "not a readable safetensors file")
    wrong = tmp_path / "wrong_shape.safetensors"
    save_state_dict(wrong, {**good, "visual.proj": torch.zeros(3, 3)})
    cases["wrong shape"] = (wrong, "the model expects")
    other = tmp_path / "other_model.safetensors"
    save_state_dict(other, {"fc.weight": torch.zeros(10, 10), "fc.bias": torch.zeros(10)})
    cases["other architecture"] = (other, "does not fit model bdunlearn-tiny")
    evil = tmp_path / "evil.pt"
    _Exploit.marker = str(tmp_path / "pwned")
    torch.save({"visual.proj": torch.zeros(1), "payload": _Exploit()}, evil)
    cases["malicious pickle"] = (evil, "not a weights-only state dict")
    modules = tmp_path / "module.pt"
    torch.save({"not": "tensors"}, modules)
    cases["not a state dict"] = (modules, "state dict of tensors")
    return cases


def test_unusable_checkpoints(run_cli, tmp_path):
    for path, fragment in _checkpoint_cases(tmp_path).values():
        started = child_cpu_seconds()
        done, run_dir = run_cli(f"backdoored_checkpoint={path}", timeout=60)
        assert_one_line_error(done, fragment, child_cpu_seconds() - started, run_dir)
    assert not (tmp_path / "pwned").exists(), "the pickle's payload ran"


def test_diverging_loss_fails_the_run_with_the_step(run_cli):
    done, run_dir = run_cli(*SHRINK, "finetune.lr=1e30")
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("bdunlearn: run failed: theta_b: poisoned fine-tune: loss became NaN/inf at step")
    assert "Traceback" not in done.stderr
    record = json.loads((run_dir / "result.json").read_text())
    assert record["status"] == "failed" and record["failed_stage"] == "theta_b: poisoned fine-tune"
    assert isinstance(record["failed_step"], int)


def test_wandb_failure_only_warns(run_cli, tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    run_dir = tmp_path / "run0"
    run_dir.mkdir()
    (run_dir / "wandb").write_text("a file where W&B wants its folder")
    shrink = [o for o in SHRINK if not o.startswith(("defense.", "logger."))]
    done, _ = run_cli(*shrink, "logger.wandb.mode=offline", "defense=none", run_dir=run_dir)
    assert done.returncode == 0, done.stderr[-1500:]
    assert (done.stdout + done.stderr).count("W&B could not start") == 1
    assert json.loads((run_dir / "result.json").read_text())["status"] == "ok"


def _cli(cache: Path, run_dir: Path, *overrides: str) -> list[str]:
    return [sys.executable, "-m", "bdunlearn", f"hydra.run.dir={run_dir}", f"paths.cache_dir={cache}", *overrides]


def _weights(cache: Path, kind: str) -> dict[str, torch.Tensor]:
    (entry,) = (cache / kind).glob("*/weights.safetensors")
    return load_file(str(entry))


RESUMABLE = [*SHRINK, "finetune.steps=300", "checkpoint_every=25"]
SCIENCE = ("clean_acc_pretrained", "clean_acc_backdoored", "asr_backdoored", "clean_acc", "asr", "robust_acc", "alpha", "alpha_curve", "config_hash")


@pytest.mark.slow  # heavy end-to-end: python -m pytest -m slow
def test_sigkilled_run_resumes_to_bit_identical_weights(tmp_path):
    reference = subprocess.run(_cli(tmp_path / "cache_a", tmp_path / "a", *RESUMABLE), capture_output=True, text=True, timeout=600)
    assert reference.returncode == 0, reference.stderr[-1500:]

    cache_b = tmp_path / "cache_b"
    victim = subprocess.Popen(_cli(cache_b, tmp_path / "b", *RESUMABLE), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not list((cache_b / "backdoored").glob("*.resume.pt")) and victim.poll() is None:
        assert time.monotonic() < deadline, "no resumable state was ever written"
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert victim.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert not list((cache_b / "backdoored").glob("*/entry.json")), "a killed build must not look complete"

    resumed = subprocess.run(_cli(cache_b, tmp_path / "b2", *RESUMABLE), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-1500:]
    assert "resuming from step" in resumed.stdout + resumed.stderr
    a, b = _weights(tmp_path / "cache_a", "backdoored"), _weights(cache_b, "backdoored")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not list((cache_b / "backdoored").glob("*.resume.pt")), "resumable state is removed once the stage is done"
    record_a = json.loads((tmp_path / "a" / "result.json").read_text())
    record_b = json.loads((tmp_path / "b2" / "result.json").read_text())
    assert {k: record_a[k] for k in SCIENCE} == {k: record_b[k] for k in SCIENCE}


@pytest.mark.slow  # heavy end-to-end: python -m pytest -m slow
def test_same_config_and_seed_give_identical_records(tmp_path):
    records = []
    for name in ("first", "second"):
        done = subprocess.run(_cli(tmp_path / "unused", tmp_path / name, *SHRINK, "use_cache=false"), capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-1500:]
        records.append(json.loads((tmp_path / name / "result.json").read_text()))
    assert {k: records[0][k] for k in SCIENCE} == {k: records[1][k] for k in SCIENCE}
    assert not (tmp_path / "unused").exists(), "use_cache=false writes no cache"
