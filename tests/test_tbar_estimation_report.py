"""The per-suspect report (scripts/tbar_estimation.py): tables from run records, the paired comparison behind
"reliably better", and a closing paragraph whose numbers are the records'."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


def write_run(folder: Path, *, attack: str, seed: int, loss: str, kept: float, cosine: float, defense: str = "tbar") -> None:
    (folder / ".hydra").mkdir(parents=True)
    config = {"defense": {"name": defense, "loss": loss, "optimizer": "adamw"}, "finetune": {"lr": 0.001}}
    (folder / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    record = {
        "status": "ok", "attack": attack, "seed": seed, "label": defense, "defense": defense, "asr": 0.5,
        "clean_acc_retained": 0.97, "cosine_trigger_poison": cosine, "cosine_trigger_attack": cosine / 2,
        "asr_kappa": 0.6, "clean_acc_retained_kappa": 0.96, "asr_asr_target": 0.04, "clean_acc_retained_asr_target": kept,
    }  # fmt: skip
    (folder / "result.json").write_text(json.dumps(record))


@pytest.fixture
def sweep(tmp_path):
    """The paper's recipe (ce) and a variant (margin) that keeps more CA on three of four attack x seed pairs."""
    runs = [
        ("badnets", 0, "ce", 0.80, 0.10), ("badnets", 1, "ce", 0.76, 0.12), ("blended", 0, "ce", 0.70, 0.14), ("blended", 1, "ce", 0.74, 0.16),
        ("badnets", 0, "margin", 0.88, 0.20), ("badnets", 1, "margin", 0.86, 0.22), ("blended", 0, "margin", 0.78, 0.24), ("blended", 1, "margin", 0.70, 0.26),
    ]  # fmt: skip
    for number, (attack, seed, loss, kept, cosine) in enumerate(runs):
        write_run(tmp_path / "sweep" / str(number), attack=attack, seed=seed, loss=loss, kept=kept, cosine=cosine)
    return tmp_path / "sweep"


def test_the_report_pairs_variants_with_the_paper_recipe_and_names_what_explains_the_gap(sweep, tmp_path):
    from bdunlearn.reports.studies import tbar_estimation_report as report

    path = report.write({"operating_point": [str(sweep)], "estimate": [str(sweep)]}, tmp_path / "out", "est", "cmd", "this machine")
    text = path.read_text()
    baseline_gap = 0.95 - (0.80 + 0.76 + 0.70 + 0.74) / 4  # 0.2
    variant_gap = 0.95 - (0.88 + 0.86 + 0.78 + 0.70) / 4  # 0.145
    assert "`loss=margin`: +0.055 CA kept at the ASR target (3 of 4 attack × seed pairs better)" in text
    assert "No variant is reliably better" in text  # one pair (blended, seed 1) is worse
    assert f"a gap of {baseline_gap:.3f}" in text and f"by {baseline_gap - variant_gap:.3f} to {variant_gap:.3f}." in text
    assert f"explains the most of it: {baseline_gap - variant_gap:.3f} of the {baseline_gap:.3f} (28%)**. No suspect" in text
    assert "| `badnets` | baseline: loss=ce | `tbar` | 2 | 0.110 ± 0.014 |" in text
    assert "## 3. The attacker's regime\n\nNot measured" in text
    assert "No suspect closes the gap." in text


def test_a_variant_better_on_every_pair_is_reliably_better(sweep, tmp_path):
    from bdunlearn.reports.studies import tbar_estimation as te

    frame = te.rows_of(te.load([str(sweep)]), te.ESTIMATE_KNOBS)
    gain, wins, pairs = te.paired_gain(frame, "baseline: loss=ce", "loss=margin")
    assert (wins, pairs) == (3, 4) and gain == pytest.approx(0.055)
    assert te.reliably_better(4, 4, frame) and not te.reliably_better(3, 4, frame)
    assert not te.reliably_better(2, 2, frame[frame["attack"] == "badnets"])  # one attack is not enough


def test_the_script_says_in_one_line_when_there_is_nothing_to_read(tmp_path):
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "tbar_estimation.py"), "--estimate", str(tmp_path), "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode != 0 and len(done.stderr.strip().splitlines()) == 1 and "result.json" in done.stderr


def test_the_maps_section_draws_both_maps_per_attack_with_the_records_numbers(sweep, tmp_path):
    from bdunlearn.reports.studies import tbar_estimation_report as report

    run = sweep / "0"  # badnets, seed 0
    for name, xi in (("disentanglement.csv", 0.2), ("disentanglement_trigger_vector.csv", 0.9)):
        rows = ["alpha_c,alpha_t,xi,disagreement_clean,disagreement_triggered,clean_acc,asr"]
        rows += [f"{c},{t},{xi * c * t},0,0,0.9,0.5" for t in (0.0, 1.0) for c in (0.0, 1.0)]
        (run / name).write_text("\n".join(rows) + "\n")
    record = json.loads((run / "result.json").read_text())
    record.update(xi_at_one=0.2, xi_disentangled_area=0.75, asr_backdoored=0.99, xi_trigger_vector_at_one=0.9,
                  xi_trigger_vector_disentangled_area=0.75, xi_trigger_vector_asr_at_one=0.3)  # fmt: skip
    (run / "result.json").write_text(json.dumps(record))
    text = report.write({"estimate": [str(sweep)]}, tmp_path / "out", "est", "cmd", "here", maps=[str(sweep)]).read_text()
    assert "| `badnets` | 1 | 0.200 | 0.750 | 0.990 | 0.900 | 0.750 | 0.300 | [png](est_xi_badnets.png) |" in text
    assert (tmp_path / "out" / "est_xi_badnets.png").stat().st_size > 0
    assert "blended` | 1 |" not in text  # only runs that wrote both maps
