"""The run configuration: its schema (every key and default, once), pure validation and the identities computed
from it (config hash, cache keys). A leaf: it imports no stage of the pipeline."""

from bdunlearn.config.files import CONFIG_DIR, dataset_config, options
from bdunlearn.config.keys import config_hash, scientific_view, stable_hash, to_dict
from bdunlearn.config.schema import (
    AnalysisConfig,
    ContrastiveConfig,
    DatasetConfig,
    FinetuneConfig,
    LoggerConfig,
    ModelConfig,
    PathsConfig,
    PretrainConfig,
    RunConfig,
    SplitsConfig,
    WandbConfig,
)  # fmt: skip
from bdunlearn.config.validate import input_size, validate

__all__ = [
    "CONFIG_DIR", "AnalysisConfig", "ContrastiveConfig", "DatasetConfig", "FinetuneConfig", "LoggerConfig", "ModelConfig",
    "PathsConfig", "PretrainConfig", "RunConfig", "SplitsConfig", "WandbConfig", "config_hash", "dataset_config",
    "input_size", "options", "scientific_view", "stable_hash", "to_dict", "validate",
]  # fmt: skip
