"""Each attack at its default settings plants a backdoor in the default model (full-length runs: slow)."""

from __future__ import annotations

import json

import pytest


@pytest.mark.slow
@pytest.mark.parametrize("attack", ["badnets", "blended", "wanet", "sig", "badclip"])
def test_default_attack_reaches_the_asr_goal(run_cli, attack):
    done, run_dir = run_cli(f"attack={attack}", "defense=none", "logger.wandb.mode=disabled", timeout=1800)
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads((run_dir / "result.json").read_text())
    assert record["asr_backdoored"] >= 0.9
    assert record["clean_acc_backdoored"] > record["clean_acc_pretrained"]
