"""Control datasets: zero-shot CA on other datasets before and after the defense (control_acc_* in the record)."""

from __future__ import annotations

import json

import paper_fixtures as fx
import pytest
import torch
from conftest import SHRINK

from bdunlearn.config import PathsConfig, dataset_config
from bdunlearn.control import control_split
from bdunlearn.data import datasets
from bdunlearn.data.splits import make_splits
from bdunlearn.preflight import validated
from bdunlearn.records import base_record


def test_the_record_has_a_key_per_control_dataset(compose, tmp_path):
    fx.write_mnist(tmp_path)
    fx.write_cifar10(tmp_path)
    run = validated(compose(f"paths.data_dir={tmp_path}", "control_datasets=[mnist,cifar10]"))
    record = base_record(run)
    for key in ("control_acc_pretrained", "control_acc_backdoored", "control_acc",
                "control_acc_mnist_pretrained", "control_acc_mnist_backdoored", "control_acc_mnist", "control_acc_cifar10"):  # fmt: skip
        assert key in record and record[key] is None
    assert "control_acc_mnist" not in base_record(validated(compose()))
    assert base_record(validated(compose()))["control_acc"] is None  # the contract's keys are there, null, without controls


def test_a_control_without_an_official_test_split_uses_its_own_carved_test(tmp_path):
    fx.write_eurosat(tmp_path, per_class=10)
    cfg = datasets.at_model_size(dataset_config("eurosat", PathsConfig(data_dir=str(tmp_path))), 16)
    cfg.num_workers = 0
    test = control_split(cfg, None, lambda dataset: make_splits(datasets.load(dataset, None), dataset.splits))
    assert torch.equal(test.images, make_splits(datasets.load(cfg), cfg.splits).test.images) and len(test) == 3


def test_control_accuracy_is_measured_on_the_pretrained_backdoored_and_defended_models(run_cli, tmp_path):
    fx.write_mnist(tmp_path)
    fx.write_gtsrb(tmp_path)  # decoded at the tiny model's 16 px
    shrink = [o for o in SHRINK if not o.startswith("defense.")]
    done, run_dir = run_cli(*shrink, "defense=none", "control_datasets=[mnist,gtsrb]", f"paths.data_dir={tmp_path}")
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads((run_dir / "result.json").read_text())
    assert record["status"] == "ok"
    for suffix in ("_pretrained", "_backdoored", ""):
        per_dataset = [record[f"control_acc_{name}{suffix}"] for name in ("mnist", "gtsrb")]
        assert all(0.0 <= value <= 1.0 for value in per_dataset)
        assert record[f"control_acc{suffix}"] == pytest.approx(sum(per_dataset) / 2)
    assert record["control_acc"] == record["control_acc_backdoored"]  # defense=none returns theta_b
