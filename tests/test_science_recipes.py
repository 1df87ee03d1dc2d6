"""The recipes behind results/tbar_estimation.md compose as their comments say: the pretraining ladder's rungs
grow steps and corpus on one architecture, the paper-like regime lowers only the attacker's learning rate, and
the margin estimate is a named arm whose defense stays TBAR."""

from __future__ import annotations

import pytest

from bdunlearn.config import CONFIG_DIR

RUNGS = ("short", "long", "broad", "all_data")


def sweep_params(experiment: str) -> dict:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR), job_name="test"):
        return dict(hydra_compose(config_name="config", overrides=[f"experiment={experiment}"], return_hydra_config=True).hydra.sweeper.params)


def test_the_ladder_pretrains_longer_then_broader_on_one_architecture(compose):
    from bdunlearn.preflight import validated

    assert sweep_params("pretrain_ladder")["pretraining"].split(",") == list(RUNGS)
    rungs = {name: validated(compose("experiment=pretrain_ladder", f"pretraining={name}")) for name in RUNGS}
    assert len({cfg.model.name for cfg in rungs.values()}) == 1
    steps = [rungs[name].model.pretrain.steps for name in RUNGS]
    assert steps[0] < steps[1] == steps[2] == steps[3]
    corpora = [set(rungs[name].model.pretrain.corpus) for name in RUNGS]
    assert corpora[0] == corpora[1] == {"digits"} and corpora[2] == corpora[3] == {"digits", "fashion_mnist", "shapes"}
    assert rungs["all_data"].model.pretrain.corpus_fractions == {"digits": 1.0, "fashion_mnist": 1.0}
    assert all(cfg.analysis.clean_reference and cfg.analysis.disentanglement_grid for cfg in rungs.values())


def test_the_paper_like_regime_only_lowers_the_attackers_learning_rate(compose):
    regime, scale = compose("experiment=paper_regime"), compose("experiment=scale_study")
    assert regime.finetune.lr < scale.finetune.lr and regime.finetune.steps == scale.finetune.steps
    assert regime.dataset.name == scale.dataset.name and list(regime.control_datasets) == list(scale.control_datasets)
    arms = sweep_params("paper_regime")["arm"].split(",")
    assert {"tbar", "tbar_margin", "ft_sam", "par", "finetune_10x", "interpolate"} <= set(arms)


@pytest.mark.parametrize("arm", ["tbar_margin", "ft_sam", "par", "cleanclip"])
def test_each_arm_names_its_run(compose, arm):
    cfg = compose(f"arm={arm}")
    assert cfg.label == arm and cfg.defense.name == ("tbar" if arm == "tbar_margin" else arm)
    assert compose("arm=tbar_margin").defense.loss == "margin" and compose("defense=tbar").defense.loss == "ce"
