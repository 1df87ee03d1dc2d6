"""Attacks through the real command (shrunken): the run dir gets the trigger preview and the poisoned indices."""

from __future__ import annotations

import json

from conftest import SHRINK

from bdunlearn.attacks.wanet import WaNetConfig

NO_DEFENSE = [o for o in SHRINK if not o.startswith("defense.")] + ["defense=none"]


def test_wanet_run_writes_preview_and_poisoned_and_cross_indices(run_cli):
    done, run_dir = run_cli(*NO_DEFENSE, "attack=wanet")
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads((run_dir / "result.json").read_text())
    assert record["status"] == "ok" and record["attack"] == "wanet" and record["asr_backdoored"] is not None
    from PIL import Image

    with Image.open(run_dir / "triggers.png") as preview:
        assert preview.width > preview.height > 0  # three rows of eight images
    indices = json.loads((run_dir / "poisoned_indices.json").read_text())
    defaults = WaNetConfig()
    train_size = 898  # the digits training split (dataset.splits defaults)
    assert len(indices["poisoned"]) == round(defaults.poison_rate * train_size)
    assert len(indices["cross"]) == round(defaults.cross_ratio * len(indices["poisoned"])) > 0
    assert not set(indices["poisoned"]) & set(indices["cross"])


def test_attack_none_is_the_clean_reference_without_asr(run_cli):
    done, run_dir = run_cli(*NO_DEFENSE, "attack=none")
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads((run_dir / "result.json").read_text())
    assert record["status"] == "ok" and record["poison_rate"] == 0
    assert record["asr_backdoored"] is None and record["robust_acc_backdoored"] is None and record["asr"] is None
    assert record["clean_acc_backdoored"] > record["clean_acc_pretrained"]  # the clean fine-tune adds accuracy
    assert json.loads((run_dir / "poisoned_indices.json").read_text()) == {"poisoned": [], "cross": []}
    assert not (run_dir / "triggers.png").exists()


def test_attack_none_with_tbar_is_refused_in_one_line(run_cli):
    done, run_dir = run_cli("attack=none", "defense=tbar", timeout=60)
    assert done.returncode == 2 and not run_dir.exists()
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "defense=tbar needs a trigger" in lines[0]
