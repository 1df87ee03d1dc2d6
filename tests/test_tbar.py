import pytest

from bdunlearn.defenses.tbar import AlphaPoint, select_alpha


def curve(*points):
    return [AlphaPoint(a, ca, asr) for a, ca, asr in points]


def test_lowest_asr_among_alphas_that_keep_clean_accuracy():
    points = curve((0.0, 0.90, 0.99), (0.5, 0.88, 0.40), (1.0, 0.86, 0.10), (2.0, 0.70, 0.00))
    # kappa * 0.90 = 0.855: alpha 2.0 is excluded although its ASR is lowest
    assert select_alpha(points, kappa=0.95).alpha == 1.0
    assert select_alpha(points, kappa=0.75).alpha == 2.0
    assert select_alpha(points, kappa=0.99).alpha == 0.0  # only alpha = 0 keeps 99%


def test_ties_go_to_the_smaller_alpha():
    points = curve((0.0, 0.9, 0.5), (1.5, 0.9, 0.0), (1.0, 0.9, 0.0), (3.0, 0.9, 0.0))
    assert select_alpha(points, kappa=0.95).alpha == 1.0


def test_reference_is_alpha_zero_and_must_exist():
    with pytest.raises(ValueError):
        select_alpha(curve((0.5, 0.9, 0.1)), kappa=0.95)
    # a rise in CA above the reference is fine; the threshold is relative to alpha = 0
    assert select_alpha(curve((0.0, 0.5, 1.0), (0.2, 0.6, 0.9)), kappa=0.95).alpha == 0.2
