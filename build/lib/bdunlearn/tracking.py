"""Weights & Biases logging that can never break a run: the first W&B failure warns once and logging stops."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)


class Tracker:
    def __init__(self, cfg, run_dir: str | Path, config: dict, name: str | None = None):
        self._run = None
        self._failed = False
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
        if not self._failed:
            detail = str(exc).splitlines()[0][:200] if str(exc) else ""
            log.warning("W&B could not %s (%s: %s); continuing without it", what, type(exc).__name__, detail)
        self._failed = True

    @property
    def active(self) -> bool:
        return self._run is not None and not self._failed

    def _attempt(self, what: str, action: Callable[[], None]) -> None:
        if not self.active:
            return
        try:
            action()
        except Exception as exc:
            self._fail(what, exc)

    def log(self, metrics: dict) -> None:
        self._attempt("log", lambda: self._run.log(metrics))

    def log_table(self, key: str, rows: list[dict]) -> None:
        if not rows:
            return

        def action():
            columns = list(rows[0])
            self._run.log({key: self._wandb.Table(columns=columns, data=[[row[c] for c in columns] for row in rows])})

        self._attempt("log a table", action)

    def log_image(self, key: str, path: str | Path, caption: str | None = None) -> None:
        self._attempt("log an image", lambda: self._run.log({key: self._wandb.Image(str(path), caption=caption)}))

    def summary(self, values: dict) -> None:
        def action():
            for key, value in values.items():
                if value is None or isinstance(value, (int, float, str, bool)):
                    self._run.summary[key] = value

        self._attempt("write the summary", action)

    def finish(self, failed: bool = False) -> None:
        """Close the W&B run (also after a failure, so no run is left open)."""
        if self._run is None:
            return
        run, self._run = self._run, None
        try:
            run.finish(exit_code=1 if failed else 0)
        except Exception as exc:
            self._fail("finish", exc)
