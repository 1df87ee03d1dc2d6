"""A sweep leaves its tables and plots in its directory (the Hydra callback) and groups its W&B runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from bdunlearn.reports.sweep_callback import SweepReport
from bdunlearn.reports.sweep_report import TRADEOFF_COLUMNS, tradeoff_rows
from bdunlearn.tracking import sweep_group
from tests.conftest import SHRINK

CURVE = [{"alpha": a, "val_clean_acc": 0.9 - a / 4, "val_asr": 1 - a} for a in (0.0, 0.5, 1.0)]


def _record(defense: str, seed: int, asr: float, **extra) -> dict:
    return {"status": "ok", "attack": "badnets", "dataset": "digits", "defense": defense, "seed": seed, "clean_acc": 0.8,
            "asr": asr, "clean_acc_backdoored": 0.9, "asr_backdoored": 1.0, **extra}  # fmt: skip


def _sweep(root: Path, records: list[dict]) -> Path:
    for job, record in enumerate(records):
        (root / str(job)).mkdir(parents=True)
        (root / str(job) / "result.json").write_text(json.dumps(record))
    return root


def _multirun_config(sweep: Path):
    return OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}, "logger": {"wandb": {"mode": "disabled", "group": None}}})


def test_the_callback_writes_tables_and_plots_from_the_ok_records_of_a_sweep_with_a_failed_job(tmp_path):
    sweep = _sweep(tmp_path / "sweep", [
        _record("tbar", 0, 0.2, alpha=0.5, alpha_curve=CURVE), _record("tbar", 1, 0.4, alpha=1.0, alpha_curve=CURVE),
        _record("finetune", 0, 0.6), {"status": "failed", "defense": "par", "seed": 0, "error": "boom"},
    ])  # fmt: skip
    SweepReport().on_multirun_end(_multirun_config(sweep))
    for name in ("table.md", "table.csv", "table.tex", "tradeoff.png", "alpha_curves.png"):
        assert (sweep / name).is_file() and (sweep / name).stat().st_size > 0, name
    table = (sweep / "table.md").read_text()
    assert "0.300 ± 0.141" in table and "| badnets | finetune |" in table and "par" not in table.split("\n\n", 1)[1]


def test_the_callback_never_fails_the_sweep(tmp_path, caplog):
    empty = _sweep(tmp_path / "empty", [{"status": "failed", "defense": "tbar", "seed": 0, "error": "boom"}])
    SweepReport().on_multirun_end(_multirun_config(empty))  # no ok record: a warning, no table
    assert not (empty / "table.md").exists() and "no ok run record" in caplog.text
    broken = _sweep(tmp_path / "broken", [_record("tbar", 0, 0.2)])
    SweepReport(pivot="no_such_key/dataset").on_multirun_end(_multirun_config(broken))  # a bad layout: a warning
    assert not (broken / "table.md").exists() and "could not write the tables" in caplog.text


def test_a_sweeps_wandb_group_is_its_directorys_name_unless_one_is_set(tmp_path):
    assert sweep_group(None, tmp_path / "multirun" / "defense=none,tbar_seed=0,1") == "defense=none,tbar_seed=0,1"
    assert sweep_group("mine", tmp_path / "multirun" / "x") == "mine"
    assert sweep_group(None, None) is None  # a single run has no group
    assert len(sweep_group(None, tmp_path / ("x" * 300))) == 128


def test_the_tradeoff_table_has_a_row_per_run_with_its_label():
    import pandas as pd

    frame = pd.DataFrame([{**_record("tbar", 0, 0.2), "alpha": 0.5, "run_dir": "s/0"}, {**_record("none", 0, 1.0), "run_dir": "s/1"}])
    rows = [dict(zip(TRADEOFF_COLUMNS, row)) for row in tradeoff_rows(frame)]
    assert [(r["label"], r["alpha"], r["asr"]) for r in rows] == [("tbar", 0.5, 0.2), ("none", None, 1.0)]


@pytest.mark.slow  # heavy end-to-end: python -m pytest -m slow
def test_one_command_reproduces_the_defense_budget_table(run_cli, tmp_path):
    sweep = tmp_path / "sweep"
    done, _ = run_cli("-m", "experiment=defense_budget", "dataset=digits", "defense=tbar,finetune", "defense.num_samples=50,100",
                      "seed=0", *SHRINK, f"hydra.sweep.dir={sweep}", timeout=900)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    for name in ("table.md", "table.csv", "table.tex", "tradeoff.png", "alpha_curves.png"):
        assert (sweep / name).is_file(), name
    assert "| defense | 50 CA | 50 ASR |" in (sweep / "table.md").read_text()
