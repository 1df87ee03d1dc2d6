"""The trigger preview: a picture of clean / triggered / difference, written as PNG and logged to W&B."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from bdunlearn.attacks import BadNets, WaNet
from bdunlearn.attacks.preview import save_png, trigger_grid


def _digits(n=8):
    return torch.randint(0, 256, (n, 1, 8, 8), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)


def test_grid_rows_are_clean_triggered_and_difference(tmp_path):
    attack = BadNets(target_class=0, poison_rate=0.1, patch_size=3)
    grid = trigger_grid(attack, _digits(), image_size=16, scale=2)
    cell = 16 * 2 + 2  # an enlarged image and its one-pixel white frame
    assert grid.dtype == torch.uint8 and grid.shape == (3, 3 * cell, 8 * cell)
    triggered_row, difference_row = grid[:, cell : 2 * cell], grid[:, 2 * cell :]
    patch_area = (slice(None), slice(1 + 26, 1 + 32), slice(1 + 26, 1 + 32))  # bottom-right 3x3 px, enlarged
    assert torch.all(triggered_row[:, :, :cell][patch_area] == 255)
    inside = difference_row[:, 1:-1, 1 : cell - 1]
    assert inside[:, :26, :].max() == 0  # nothing changed outside the patch
    path = save_png(grid, tmp_path / "triggers.png")
    from PIL import Image

    with Image.open(path) as image:
        assert image.size == (8 * cell, 3 * cell) and image.mode == "RGB"


def test_subtle_triggers_are_stretched_to_be_visible():
    grid = trigger_grid(WaNet(target_class=0, poison_rate=0.1, strength=0.5), _digits(), image_size=16)
    assert grid[:, 2 * grid.shape[1] // 3 :].max() == 255


def test_log_image_reaches_an_offline_wandb_run_and_failures_only_warn(tmp_path, monkeypatch, caplog):
    pytest.importorskip("wandb")
    from bdunlearn.tracking import Tracker

    monkeypatch.setenv("WANDB_MODE", "offline")
    path = save_png(trigger_grid(BadNets(target_class=0, poison_rate=0.1), _digits(2), image_size=16), tmp_path / "t.png")
    tracker = Tracker(SimpleNamespace(mode="offline", project="test", entity=None, group=None, tags=[]), tmp_path, config={})
    assert tracker.active
    tracker.log_image("attack/triggers", path, caption="clean / triggered / difference")
    assert tracker.active
    with caplog.at_level("WARNING", logger="bdunlearn.tracking"):
        tracker.log_image("attack/triggers", tmp_path / "missing.png")  # W&B cannot read it: warn, never raise
        tracker.log({"more": 1})  # after a failure logging stops, without a second warning
    assert not tracker.active
    ours = [r.getMessage() for r in caplog.records if r.name == "bdunlearn.tracking"]
    assert len(ours) == 1 and "W&B could not log an image" in ours[0]
    tracker.finish()  # closes the run although logging failed
    assert list((tmp_path / "wandb").glob("offline-run-*/files/media/images/attack/triggers*.png"))
