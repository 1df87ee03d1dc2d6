"""bdunlearn.reports.records (the one reader of run records) and the cells of bdunlearn.reports.tables."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from bdunlearn.errors import UserError
from bdunlearn.reports.records import (
    aggregate,
    count_not_ok,
    load_records,
    read_run,
    record_paths,
    sweep_runs,
)
from bdunlearn.reports.tables import cell, mean_std, ordered, values_cell


def _run(root: Path, name: str, record: dict, config: str | None = "defense:\n  name: tbar\n  num_samples: 100\n") -> Path:
    run_dir = root / name
    run_dir.mkdir(parents=True)
    (run_dir / "result.json").write_text(json.dumps(record))
    if config is not None:
        (run_dir / ".hydra").mkdir()
        (run_dir / ".hydra" / "config.yaml").write_text(config)
    return run_dir


@pytest.fixture
def sweep(tmp_path) -> Path:
    root = tmp_path / "sweep"
    curve = [{"alpha": 0.0, "val_clean_acc": 0.9, "val_asr": 1.0}]
    for job, (seed, asr) in enumerate([(0, 0.1), (1, 0.3), (2, 0.2)]):
        _run(root, str(job), {"status": "ok", "defense": "tbar", "seed": seed, "asr": asr, "alpha_curve": curve})
    _run(root, "10", {"status": "ok", "defense": "none", "seed": 0, "asr": 0.9}, config="defense:\n  name: none\n  num_samples: 0\n")
    _run(root, "11", {"status": "failed", "defense": "tbar", "seed": 3, "error": "boom"}, config=None)
    return root


def test_load_records_keeps_ok_runs_and_joins_their_config(sweep):
    frame = load_records([str(sweep)])
    assert len(frame) == 4 and set(frame["status"]) == {"ok"}
    tbar = frame[frame["defense"] == "tbar"].sort_values("seed")
    assert tbar["cfg.defense.num_samples"].tolist() == [100, 100, 100]
    assert frame.loc[frame["defense"] == "none", "cfg.defense.num_samples"].item() == 0
    assert json.loads(tbar["alpha_curve"].iloc[0]) == [{"alpha": 0.0, "val_clean_acc": 0.9, "val_asr": 1.0}]  # lists kept as JSON
    assert Path(tbar["run_dir"].iloc[0]).parent == sweep.resolve()
    assert len(load_records([str(sweep)], only_ok=False)) == 5 and count_not_ok([str(sweep)]) == 1


def test_sweep_runs_come_in_job_order_with_the_failed_ones(sweep):
    runs = sweep_runs(sweep)
    assert [run.run_dir.name for run in runs] == ["0", "1", "2", "10", "11"]  # 10 after 2, not as strings sort
    assert [run.ok for run in runs] == [True, True, True, True, False]
    assert runs[0].config("defense") == {"name": "tbar", "num_samples": 100}
    assert read_run(sweep / "11" / "result.json").record["error"] == "boom"


def test_record_paths_take_globs_files_and_dirs_once_each(sweep):
    every = record_paths([str(sweep), str(sweep / "0" / "result.json"), str(sweep / "1*")])
    assert len(every) == 5  # the file and the glob's matches are already under the sweep
    assert record_paths([str(sweep / "1*")]) == [(sweep / n / "result.json").resolve() for n in ("1", "10", "11")]
    with pytest.raises(UserError, match="no result.json"):
        record_paths([str(sweep / "nothing-here")])


def test_aggregate_gives_mean_sample_std_and_count_per_group(sweep):
    long = aggregate(load_records([str(sweep)]), ["defense"], ["asr"]).set_index("defense")
    assert long.loc["tbar", "mean"] == pytest.approx(0.2) and long.loc["tbar", "std"] == pytest.approx(0.1)
    assert long.loc["tbar", "count"] == 3 and long.loc["none", "count"] == 1 and pd.isna(long.loc["none", "std"])
    with pytest.raises(UserError, match="'nope'"):
        aggregate(load_records([str(sweep)]), ["nope"], ["asr"])


def test_cells_show_mean_and_std_or_one_value_or_a_dash():
    assert mean_std(0.2, 0.1, 3) == "0.200 ± 0.100" and mean_std(0.25, float("nan"), 1) == "0.250" and mean_std(0.1, 0.0, 0) == "–"
    assert cell(pd.Series([0.1, 0.3, None, "x"])) == "0.200 ± 0.141"  # what is not a number is left out
    assert cell(pd.Series([], dtype=float)) == "–" and cell(pd.Series([7.0]), 0) == "7"
    assert values_cell([0.1, None, 0.3]) == "0.200 ± 0.141" and values_cell([0.5]) == "0.500" and values_cell([None]) == "–"


def test_ordered_puts_known_names_first_in_the_readers_order():
    assert ordered(["par", "zeta", "none", "tbar", "alpha", "tbar"], "defense") == ["none", "tbar", "par", "alpha", "zeta"]
