"""Pure pieces of the studies in bdunlearn.reports.studies: the verdicts and sentences they compute from numbers."""

from __future__ import annotations

import pandas as pd

from bdunlearn.reports.studies import (
    attacks,
    benchmarks,
    contrastive,
    default_run,
    defense_budget,
)


def test_the_attack_verdict_uses_the_planted_and_removed_bars():
    assert attacks.verdict([0.95, 0.99], [0.05, 0.12]) == "TBAR **removed** it (mean ASR < 0.1)"
    assert attacks.verdict([0.95, 0.99], [0.1, 0.1]) == "TBAR **did not remove** it (mean ASR ≥ 0.1)"
    assert attacks.verdict([0.5, 0.99], [0.0, 0.0]) == "backdoor **not planted** (mean ASR θ_b < 0.9)"


def test_the_benchmarks_read_each_figure_once_per_command_and_name_the_missed_goals():
    printed = {"scripts/bench_train.py": "ratio=0.5\nratio=0.97\n", "scripts/bench_triggers.py": "ratio=60\npipeline_ratio=3\n",
               "scripts/bench_alpha.py": "alpha_scan_over_trigger_finetune=0.4\nalpha_scan_over_clean_finetune=1.5\n",
               "scripts/bench_stream.py": "ratio=1.02\n", "scripts/bench_stream_run.py": "run_pss_over_cap=0.6\n"}  # fmt: skip
    calls = []
    rows, logs, measured = benchmarks.measure(lambda command: calls.append(command) or printed[command[0]])
    assert len(calls) == 6 and len(rows) == len(measured) == len(benchmarks.BENCHES) and len(logs) == 6
    assert measured[0][1] == 0.97  # the last value printed
    assert benchmarks.goals_sentence(measured) == (
        "Goals missed in this run: TBAR alpha scan / full clean fine-tune, seconds (default run) (1.5, goal < 1)."
    )


def test_the_default_run_block_replaces_what_is_between_the_markers():
    mark, end = default_run.MARK, default_run.END_MARK
    readme = f"intro\n{mark}\nold\n{end}\noutro\n"
    assert default_run.with_block(readme, "new") == f"intro\n{mark}\nnew\n{end}\noutro\n"
    assert default_run.with_block(f"intro\n{mark}\n", "new") == f"intro\n{mark}\nnew\n{end}\n"


def test_contrastive_findings_name_who_meets_the_claim_and_never_the_undefended_model():
    table = pd.DataFrame({"defense": ["none", "tbar", "finetune"], "_asr": [0.01, 0.04, 0.02], "_kept": [1.0, 0.96, 0.9]})
    assert contrastive.findings(table) == (
        "ASR ≤ 0.05 with CA kept ≥ 0.95 (the paper's bar): tbar. Lowest mean ASR among defenses keeping ≥ 0.95 of CA: `tbar` (0.040)."
    )


def test_defense_budget_findings_per_budget():
    table = pd.DataFrame({
        "budget": [100, 100, 1000, 1000], "defense": ["tbar", "finetune", "tbar", "finetune"],
        "asr": [0.3, 0.05, 0.01, 0.2], "retained": [0.97, 0.95, 0.99, 0.9],
    })  # fmt: skip
    first, second = defense_budget.findings(table, train_size=10000)
    assert first.startswith("- 100 samples (1 %): ASR ≤ 0.05 with CA kept ≥ 0.95: finetune; ")
    assert "lowest ASR among defenses keeping ≥ 0.95 of CA: `finetune` (0.050); TBAR: ASR 0.300, CA kept 0.970." in first
    assert second.startswith("- 1000 samples (10 %): ASR ≤ 0.05 with CA kept ≥ 0.95: tbar; ")
