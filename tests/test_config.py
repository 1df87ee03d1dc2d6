"""Every config composes and validates; bad values are refused with one line naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from bdunlearn.config import CONFIG_DIR, validate
from bdunlearn.errors import UserError

GROUPS = ("model", "dataset", "attack", "defense")


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))


@pytest.mark.parametrize("group,name", [(g, n) for g in GROUPS for n in options(g)])
def test_every_group_option_composes(compose, group, name):
    from bdunlearn.attacks import REGISTRY

    plants_no_trigger = group == "attack" and not REGISTRY[name].has_trigger
    cfg = compose(f"{group}={name}", *(["defense=none"] if plants_no_trigger else []))  # tbar needs a trigger
    assert cfg[group].name is not None
    if group == "dataset" and name == "fashion_mnist" and not Path(cfg.dataset.source_dir).is_dir():
        pytest.skip("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
    run = validate(cfg)
    assert getattr(run, group).__class__.__name__.endswith("Config")


def test_default_is_the_documented_recipe(compose):
    run = validate(compose())
    assert (run.model.name, run.dataset.name, run.attack.name, run.defense.name) == (
        "bdunlearn-tiny", "digits", "badnets", "tbar",
    )  # fmt: skip
    assert run.logger.wandb.mode == "offline" and run.logger.wandb.entity is None
    assert run.defense.kappa == 0.95 and run.defense.start == "backdoored"


def test_vit_b32_composes_with_openai_tag(compose):
    run = validate(compose("model=vit_b32"))
    assert run.model.name == "ViT-B-32" and run.model.pretrained == "openai" and run.model.pretrain is None


@pytest.mark.parametrize(
    "override,fragment",
    [
        ("attack.poison_rate=2", "attack.poison_rate"),
        ("attack.poison_rate=0", "attack.poison_rate"),
        ("attack.target_class=10", "attack.target_class"),
        ("attack.target_class=-1", "attack.target_class"),
        ("attack.patch_size=17", "attack.patch_size"),
        ("attack.location=middle", "attack.location"),
        ("attack.pattern=stripes", "attack.pattern"),
        ("defense.kappa=1.5", "defense.kappa"),
        ("defense.alpha_grid=[]", "defense.alpha_grid"),
        ("defense.alpha_grid=[0.5,-1]", "defense.alpha_grid"),
        ("defense.num_samples=0", "defense.num_samples"),
        ("defense.start=middle", "defense.start"),
        ("defense.lr=0", "defense.lr"),
        ("finetune.steps=0", "finetune.steps"),
        ("seed=abc", "seed"),
        ("device=tpu", "device"),
        ("logger.wandb.mode=sometimes", "logger.wandb.mode"),
        ("dataset.splits.val_fraction=0.9", "dataset.splits"),
        ("dataset.templates=[a photo]", "dataset.templates"),
        ("backdoored_checkpoint=/nonexistent/model.safetensors", "backdoored_checkpoint"),
        ("attack_knowledge=unknown", "attack_knowledge"),
        ("model.name=ViT-Z-99", "ViT-Z-99"),
    ],
)
def test_bad_values_are_refused_with_the_key(compose, override, fragment):
    with pytest.raises(UserError) as excinfo:
        validate(compose(override))
    message = str(excinfo.value)
    assert fragment in message
    assert "\n" not in message


def test_missing_fashion_mnist_names_the_fix(compose, tmp_path):
    cfg = compose("dataset=fashion_mnist", f"dataset.root={tmp_path}", f"dataset.source_dir={tmp_path / 'none'}")
    with pytest.raises(UserError, match="apt-get install dataset-fashion-mnist"):
        validate(cfg)
