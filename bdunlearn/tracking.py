"""Weights & Biases logging that can never break a run: any W&B failure warns once and logging stops."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

log = logging.getLogger(__name__)


class Tracker:
    def __init__(self, cfg, run_dir: str | Path, config: dict, name: str | None = None):
        self._run = None
        self._warned = False
        if cfg.mode == "disabled":
            return
        try:
            import wandb

            self._wandb = wandb
            self._run = wandb.init(
                mode=cfg.mode,
                project=cfg.project,
                entity=cfg.entity,
                group=cfg.group,
                tags=list(cfg.tags) or None,
                name=name,
                dir=str(run_dir),
                config=config,
                settings=wandb.Settings(console="off", silent=True),
            )
        except Exception as exc:  # W&B trouble must never cost a result
            self._fail("start", exc)

    def _fail(self, what: str, exc: Exception) -> None:
        self._run = None
        if not self._warned:
            self._warned = True
            message = f"W&B could not {what} ({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}); continuing without it"
            log.warning(message)
            warnings.warn(message, RuntimeWarning, stacklevel=2)

    @property
    def active(self) -> bool:
        return self._run is not None

    def log(self, metrics: dict) -> None:
        if self._run is None:
            return
        try:
            self._run.log(metrics)
        except Exception as exc:
            self._fail("log", exc)

    def log_table(self, key: str, rows: list[dict]) -> None:
        if self._run is None or not rows:
            return
        try:
            columns = list(rows[0])
            table = self._wandb.Table(columns=columns, data=[[row[c] for c in columns] for row in rows])
            self._run.log({key: table})
        except Exception as exc:
            self._fail("log a table", exc)

    def log_image(self, key: str, path: str | Path, caption: str | None = None) -> None:
        if self._run is None:
            return
        try:
            self._run.log({key: self._wandb.Image(str(path), caption=caption)})
        except Exception as exc:
            self._fail("log an image", exc)

    def summary(self, values: dict) -> None:
        if self._run is None:
            return
        try:
            for key, value in values.items():
                if value is None or isinstance(value, (int, float, str, bool)):
                    self._run.summary[key] = value
        except Exception as exc:
            self._fail("write the summary", exc)

    def finish(self, failed: bool = False) -> None:
        if self._run is None:
            return
        try:
            self._run.finish(exit_code=1 if failed else 0)
        except Exception as exc:
            self._fail("finish", exc)
        self._run = None
