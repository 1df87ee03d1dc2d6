"""One source of truth: every default lives in the schema, YAML files only choose and override; keys a run never
reads are reported, and an input path that does not exist is an error."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from bdunlearn import api, overrides
from bdunlearn.config import CONFIG_DIR
from bdunlearn.config.schema import DatasetConfig, ModelConfig
from bdunlearn.errors import UserError
from bdunlearn.plugins import AttackPlugin, DefensePlugin, InversionPlugin, registry

SCHEMAS = {"model": ModelConfig, "dataset": DatasetConfig}


def repeated_defaults(node: dict, schema: type, where: str) -> list[str]:
    """Keys of a YAML node whose value is the schema's own default for them."""
    defaults = OmegaConf.to_container(OmegaConf.structured(schema), resolve=False)
    found = []
    for key, value in node.items():
        default = defaults.get(key, "<not in the schema>")
        if isinstance(value, dict) and isinstance(default, dict):
            found += [f"{where}.{key}.{k}" for k, v in value.items() if k in default and default[k] == v]
        elif value == default:
            found.append(f"{where}.{key}")
    return sorted(found)


@pytest.mark.parametrize("group", sorted(SCHEMAS))
def test_group_yaml_files_do_not_repeat_a_schema_default(group):
    repeated = []
    for path in sorted((CONFIG_DIR / group).glob("*.yaml")):
        node = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
        repeated += repeated_defaults(node, SCHEMAS[group], f"{group}/{path.stem}")
    assert not repeated, f"these YAML keys restate the schema's default (bdunlearn/config/schema.py): {repeated}"


def test_the_default_finder_finds_a_repeated_default():
    assert repeated_defaults({"name": "x", "num_workers": 4, "splits": {"seed": 0, "val_fraction": 0.3}}, DatasetConfig, "d") == [
        "d.num_workers", "d.splits.seed",
    ]  # fmt: skip


def test_plugin_groups_have_no_yaml_and_each_plugin_meets_its_protocol():
    plugins = registry()
    for group, protocol in (("attack", AttackPlugin), ("defense", DefensePlugin), ("inversion", InversionPlugin)):
        assert not list((CONFIG_DIR / group).glob("*.yaml")), f"conf/{group}/ repeats the plug-ins' Config defaults"
        for name, plugin in plugins.groups()[group].items():
            assert isinstance(plugin, protocol), f"{group}={name} does not meet {protocol.__name__}"
            assert plugin.Config().name == name, f"{group}={name}: its Config names itself {plugin.Config().name!r}"


def test_keys_a_run_never_reads_are_reported_and_others_are_not():
    run = api.config(["contrastive.max_pairs=5", "finetune.epochs=1"])
    notes = overrides.check(run, ["contrastive.max_pairs=5", "finetune.epochs=1", "finetune.steps=3", "seed=2"])
    assert len(notes) == 2
    assert notes[0].startswith("contrastive.max_pairs=5 is not read") and "setting=classification" in notes[0]
    assert notes[1].startswith("finetune.steps=3 is not read") and "finetune.epochs" in notes[1]


def test_an_input_path_that_does_not_exist_is_an_error_even_where_the_dataset_ignores_it(tmp_path):
    run = api.config([])  # digits is bundled: it never reads dataset.root
    with pytest.raises(UserError, match="dataset.root=.*no such file or folder"):
        overrides.check(run, [f"dataset.root={tmp_path / 'nope'}"])
    assert overrides.check(run, [f"dataset.root={tmp_path}"]) == []


def test_validation_does_not_change_the_composed_config():
    from bdunlearn.preflight import validated

    composed = api.compose(["finetune.epochs=2"])
    before = OmegaConf.to_container(composed)
    run = validated(composed)
    assert OmegaConf.to_container(composed) == before and before["finetune"]["steps"] == 300
    assert run.finetune.steps != 300  # the resolved config carries the steps the epochs come to
