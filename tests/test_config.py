"""Every config composes and validates; bad values are refused with one line naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from bdunlearn.config import CONFIG_DIR
from bdunlearn.errors import UserError
from bdunlearn.preflight import validated

GROUPS = ("model", "dataset", "attack", "defense")
OFFLINE = {("model", "tiny"), ("dataset", "digits"), ("dataset", "fashion_mnist")}  # options that need no download


def options(group: str) -> list[str]:
    from bdunlearn.plugins import registry

    plugins = registry().groups()
    return sorted(plugins[group]) if group in plugins else sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))


@pytest.mark.parametrize("group,name", [(g, n) for g in GROUPS for n in options(g)])
def test_every_group_option_composes(compose, group, name):
    from bdunlearn.attacks import REGISTRY

    plants_no_trigger = group == "attack" and not REGISTRY[name].has_trigger
    cfg = compose(f"{group}={name}", *(["defense=none"] if plants_no_trigger else []))  # tbar needs a trigger
    assert cfg[group].name is not None
    if group == "dataset" and name == "fashion_mnist" and not Path(cfg.dataset.source_dir).is_dir():
        pytest.skip("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
    try:
        run = validated(cfg)
    except UserError as exc:  # paper-scale data and weights cannot be had offline: the one line says how
        assert (group, name) not in OFFLINE, exc
        assert "dataset.root" in str(exc) or "cannot be downloaded offline" in str(exc), exc
        return
    assert getattr(run, group).__class__.__name__.endswith("Config")


def test_default_is_the_documented_recipe(compose):
    run = validated(compose())
    assert (run.model.name, run.dataset.name, run.attack.name, run.defense.name) == (
        "bdunlearn-tiny", "digits", "badnets", "tbar",
    )  # fmt: skip
    assert run.logger.wandb.mode == "offline" and run.logger.wandb.entity is None
    assert run.defense.kappa == 0.95 and run.defense.start == "backdoored"


def test_vit_b32_composes_with_openai_tag(compose):
    # validating it needs the weights (tests/test_paper_models.py checks that with a stand-in hub cache)
    cfg = compose("model=vit_b32")
    assert cfg.model.name == "ViT-B-32" and cfg.model.pretrained == "openai"


def test_a_bad_value_is_refused_in_process_with_the_key(compose):
    # the full catalogue of user mistakes runs through the real command in tests/test_reliability.py
    with pytest.raises(UserError) as excinfo:
        validated(compose("attack.poison_rate=2"))
    assert "attack.poison_rate" in str(excinfo.value) and "\n" not in str(excinfo.value)


def test_missing_fashion_mnist_names_the_fix(compose, tmp_path):
    cfg = compose("dataset=fashion_mnist", f"dataset.root={tmp_path}", f"dataset.source_dir={tmp_path / 'none'}")
    with pytest.raises(UserError, match="apt-get install dataset-fashion-mnist"):
        validated(cfg)


@pytest.mark.parametrize("name", options("experiment"))
def test_every_experiment_grid_point_validates_before_a_sweep(name, tmp_path, compose):
    from bdunlearn.cli import preflight

    if name.startswith("paper_"):
        pytest.skip("needs the paper's datasets and weights: tests/test_paper_recipes.py validates it on fixtures")
    if name == "contrastive_cc3m":
        pytest.skip("needs CC3M, ImageNet and ViT-B/32 weights: tests/test_contrastive.py checks that it composes")
    cfg = compose(f"experiment={name}")
    if cfg.dataset.source_dir and not Path(cfg.dataset.source_dir).is_dir():
        pytest.skip(f"{cfg.dataset.name} not installed")
    preflight(["-m", f"experiment={name}", f"hydra.sweep.dir={tmp_path / 'sweep'}"])  # raises UserError on any bad point
    with pytest.raises(UserError, match="defense.num_samples=99999"):
        preflight(["-m", f"experiment={name}", "defense.num_samples=99999", f"hydra.sweep.dir={tmp_path / 'sweep'}"])


def test_the_slurm_launcher_preset_composes_on_top_of_submitit():
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR), job_name="test"):
        cfg = hydra_compose(
            config_name="config", overrides=["hydra/launcher=slurm", "hydra.launcher.partition=gpu"], return_hydra_config=True
        )
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.partition, launcher.gpus_per_node, launcher.array_parallelism) == ("gpu", 1, 32)
