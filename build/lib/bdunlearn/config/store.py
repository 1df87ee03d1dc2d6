"""The run schema in Hydra's ConfigStore: ``conf/config.yaml`` composes on top of it (``defaults: [run_schema]``)."""

from __future__ import annotations

from hydra.core.config_store import ConfigStore

from bdunlearn.config.schema import RunConfig

SCHEMA_NAME = "run_schema"


def register_run_schema() -> None:
    ConfigStore.instance().store(name=SCHEMA_NAME, node=RunConfig)
