"""bdunlearn from Python: compose a run from overrides as the command line would, and run it.

    >>> import bdunlearn
    >>> record = bdunlearn.run(["attack=blended", "defense=tbar", "seed=1"], run_dir="outputs/blended-s1")
    >>> record["asr_backdoored"], record["asr"], record["alpha"]

``config(overrides)`` gives the checked, resolved :class:`~bdunlearn.config.RunConfig` alone (research scripts
set their runs up from it with :func:`bdunlearn.pipeline.prepare`).
"""

from __future__ import annotations

from pathlib import Path

from bdunlearn.config import CONFIG_DIR, RunConfig


def compose(overrides: list[str] | tuple[str, ...] = ()):
    """The composed (unchecked) config of ``conf/config.yaml`` with ``overrides``; a mistake is a one-line UserError."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from bdunlearn.cli import composition_error
    from bdunlearn.plugins import register_configs

    register_configs()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR), job_name="bdunlearn"):
        try:
            return hydra_compose(config_name="config", overrides=list(overrides))
        except (HydraException, OmegaConfBaseException) as exc:
            raise composition_error(exc) from exc


def config(overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """The checked and resolved run config for ``overrides`` (UserError, one line, on a mistake)."""
    from bdunlearn.preflight import validated

    return validated(compose(overrides))


def run(overrides: list[str] | tuple[str, ...] = (), run_dir: str | Path = "outputs/api") -> dict:
    """Run one configuration end to end, as ``bdunlearn OVERRIDES`` does; returns its record (also written to
    ``run_dir/result.json``). A run dir that already holds this config's ok record is returned as it is unless
    the overrides include ``skip_completed=false``."""
    from bdunlearn.cli import completed_record, execute

    cfg = config(overrides)
    run_dir = Path(run_dir)
    done = completed_record(cfg, run_dir) if cfg.skip_completed else None
    return done if done is not None else execute(cfg, run_dir)
