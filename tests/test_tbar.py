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


def test_the_asr_target_rule_takes_the_smallest_alpha_reaching_the_target_else_the_lowest_asr():
    from bdunlearn.defenses.tbar import AlphaPoint, select_by_asr_target

    curve = [AlphaPoint(0.0, 0.9, 0.99), AlphaPoint(1.0, 0.8, 0.04), AlphaPoint(2.0, 0.5, 0.01), AlphaPoint(0.5, 0.85, 0.2)]
    assert select_by_asr_target(curve, 0.05).alpha == 1.0  # the first alpha at or under the target
    assert select_by_asr_target(curve, 0.03).alpha == 2.0
    assert select_by_asr_target(curve, 0.001).alpha == 2.0  # none reaches it: the lowest validation ASR


def test_the_operating_point_rule_is_part_of_the_hash_only_when_changed(compose):
    from bdunlearn.config import config_hash
    from bdunlearn.preflight import validated

    default = config_hash(validated(compose()))
    assert config_hash(validated(compose("defense.alpha_rule=kappa", "defense.asr_target=0.05"))) == default
    assert config_hash(validated(compose("defense.alpha_rule=asr_target"))) != default
