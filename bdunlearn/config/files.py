"""The config tree on disk (``bdunlearn/conf/``, shipped inside the package) and loading one dataset config from it."""

from __future__ import annotations

import copy
import functools
import json
from dataclasses import asdict
from pathlib import Path

from omegaconf import OmegaConf

from bdunlearn.config.schema import DatasetConfig, PathsConfig
from bdunlearn.errors import UserError

# Inside the package, so that an installed wheel has it; the repository shows it at the top as conf/ (a link).
CONFIG_DIR = Path(__file__).resolve().parent.parent / "conf"


def options(group: str) -> list[str]:
    """The YAML options of a config group in ``conf/``."""
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))


@functools.lru_cache(maxsize=64)
def _dataset_config(name: str, paths: str) -> DatasetConfig:
    """Typed ``conf/dataset/<name>.yaml`` resolved against ``paths`` (JSON); cached, as OmegaConf takes seconds
    over the long class lists (ImageNet's) and a sweep's preflight reads the same few configs for every point."""
    from bdunlearn.config.validate import check_dataset_values, typed

    path = CONFIG_DIR / "dataset" / f"{name}.yaml"
    if not path.is_file():
        raise UserError(f"unknown dataset {name!r}; choose one of: {', '.join(options('dataset'))}")
    node = OmegaConf.merge({"paths": json.loads(paths)}, {"dataset": OmegaConf.merge(OmegaConf.structured(DatasetConfig), OmegaConf.load(path))})
    dataset = typed(OmegaConf.to_container(node, resolve=True)["dataset"], DatasetConfig, "dataset")
    check_dataset_values(dataset, where=name)
    return dataset


def dataset_config(name: str, paths: PathsConfig) -> DatasetConfig:
    """The dataset config ``conf/dataset/<name>.yaml`` on its own (a pretraining corpus, a control dataset)."""
    return copy.deepcopy(_dataset_config(name, json.dumps(asdict(paths), sort_keys=True)))
