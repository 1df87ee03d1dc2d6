"""bdunlearn.reports.criteria: each threshold is applied with its own operator, on numbers and on Series."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from bdunlearn.reports import criteria


def test_the_paper_claim_needs_both_bars_and_includes_them():
    assert criteria.meets_claim(0.05, 0.95)  # both bars are inclusive
    assert not criteria.meets_claim(0.0501, 0.99)
    assert not criteria.meets_claim(0.0, 0.9499)
    met = criteria.meets_claim(pd.Series([0.01, 0.2, 0.05]), pd.Series([0.97, 0.99, 0.94]))
    assert met.tolist() == [True, False, False]


def test_removed_is_strictly_below_its_own_looser_bar():
    assert criteria.REMOVED_BELOW > criteria.PAPER_ASR  # two concepts, two values
    assert criteria.removed(0.099) and not criteria.removed(0.1)
    assert criteria.removed(0.07) and not criteria.removed_per_paper(0.07)


def test_planted_includes_its_bar():
    assert criteria.planted(0.9) and not criteria.planted(0.8999)


def test_right_target_compares_the_estimate_with_the_real_target():
    assert criteria.right_target({"target_class": 3, "target_class_estimated": 3})
    assert not criteria.right_target({"target_class": 3, "target_class_estimated": 0})
    assert not criteria.right_target({"target_class": 3})  # nothing estimated


CURVE = [
    {"alpha": 0.0, "val_clean_acc": 0.80, "val_asr": 0.90},
    {"alpha": 0.5, "val_clean_acc": 0.78, "val_asr": 0.30},  # keeps 0.975 of CA
    {"alpha": 1.0, "val_clean_acc": 0.72, "val_asr": 0.05},  # keeps 0.9: removed, but too much CA lost
    {"alpha": 1.5, "val_clean_acc": 0.60, "val_asr": 0.00},
]


def test_claim_distance_reads_the_best_point_on_each_side_of_the_claim():
    kept, asr = criteria.claim_distance(json.dumps(CURVE))
    assert kept == pytest.approx(0.72 / 0.80)  # best CA kept among the points with ASR <= 0.05
    assert asr == pytest.approx(0.30)  # lowest ASR among the points keeping >= 95 %
    assert criteria.claim_distance(float("nan")) == (None, None)  # a run without a curve
    never = [{"alpha": 0.0, "val_clean_acc": 0.8, "val_asr": 0.9}, {"alpha": 1.0, "val_clean_acc": 0.5, "val_asr": 0.5}]
    assert criteria.claim_distance(json.dumps(never)) == (None, 0.9)


def test_the_first_point_removed_per_paper_is_the_smallest_alpha():
    assert criteria.first_removed_per_paper(CURVE)["alpha"] == 1.0
    assert criteria.first_removed_per_paper(CURVE[:2]) is None


@pytest.mark.parametrize(("value", "goal", "met"), [(0.95, ">= 0.95", True), (0.94, ">= 0.95", False), (0.99, "< 1", True),
                                                     (1.0, "< 1", False), (3.0, "-", None)])  # fmt: skip
def test_benchmark_goals(value, goal, met):
    assert criteria.meets_goal(value, goal) is met
