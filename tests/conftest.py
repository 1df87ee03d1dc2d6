"""Shared fixtures: offline, W&B off, a per-session cache; tiny random models and composed real configs."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ["WANDB_MODE"] = "disabled"

REPO = Path(__file__).resolve().parent.parent

# A shrunken version of the default run: same stages and configs, fewer steps.
SHRINK = [
    "model.pretrain.steps=80",
    "finetune.steps=120",
    "defense.steps=30",
    "logger.wandb.mode=disabled",
]


@pytest.fixture(scope="session", autouse=True)
def _config_store():
    """The schemas in Hydra's ConfigStore, as the command line registers them, for tests that compose in process."""
    from bdunlearn.plugins import register_configs

    register_configs()


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("bdunlearn-cache")


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, cache_dir, tmp_path_factory):
    monkeypatch.setenv("BDUNLEARN_CACHE_DIR", str(cache_dir))
    monkeypatch.setenv("BDUNLEARN_DATA_DIR", str(tmp_path_factory.getbasetemp() / "data"))
    monkeypatch.setenv("HF_HOME", str(tmp_path_factory.getbasetemp() / "huggingface"))  # no weights cached


@pytest.fixture
def compose():
    """Compose the real ``conf/`` tree with overrides, as the command line would."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from bdunlearn.config import CONFIG_DIR
    from bdunlearn.plugins import register_configs

    register_configs()

    def _compose(*overrides: str):
        from hydra.errors import HydraException
        from omegaconf.errors import OmegaConfBaseException

        from bdunlearn.cli import composition_error

        with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR), job_name="test"):
            try:  # as the command line reports it: a mistake Hydra finds while composing is a one-line UserError
                return hydra_compose(config_name="config", overrides=list(overrides))
            except (HydraException, OmegaConfBaseException) as exc:
                raise composition_error(exc) from exc

    return _compose


# Importing torch, torchvision and open_clip costs 5-13 CPU seconds here (the high end on a loaded machine); a
# fine-tune, even the tiny one, costs far more.
BEFORE_COMPUTE_CPU_SECONDS = 20


def child_cpu_seconds() -> float:
    """CPU seconds spent by this process's finished subprocesses. "Failed before any compute" is measured in CPU
    time, which other jobs on the machine inflate far less than wall-clock time."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@pytest.fixture
def run_cli(tmp_path):
    """Run the installed ``bdunlearn`` entry point in a subprocess; returns (completed process, run dir)."""

    def _run(*overrides: str, timeout: float = 600, run_dir: Path | None = None) -> tuple[subprocess.CompletedProcess, Path]:
        run_dir = run_dir or tmp_path / f"run{len(list(tmp_path.iterdir()))}"
        flags = [o for o in overrides if o.startswith("-")]  # Hydra's flags come before the overrides
        rest = [o for o in overrides if not o.startswith("-")]
        cmd = [sys.executable, "-m", "bdunlearn", *flags, f"hydra.run.dir={run_dir}", *rest]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=tmp_path, env=env)
        return done, run_dir

    return _run


@pytest.fixture(scope="session")
def tiny_clip():
    import torch

    from bdunlearn.models import clip

    torch.manual_seed(0)
    return clip.create("bdunlearn-tiny")
