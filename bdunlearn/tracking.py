"""Weights & Biases logging that can never break a run: the first W&B failure warns once and logging stops."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)


GROUP_MAX = 128  # W&B's limit on a group name


def sweep_group(group: str | None, sweep_dir: str | Path | None) -> str | None:
    """The W&B group of a run: the configured one, else (a job of a ``-m`` sweep) the sweep directory's name."""
    if group or sweep_dir is None:
        return group
    return Path(sweep_dir).name[:GROUP_MAX] or None


class Tracker:
    def __init__(self, cfg, run_dir: str | Path, config: dict, name: str | None = None, group: str | None = None,
                 job_type: str | None = None):  # fmt: skip
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
                group=group if group is not None else cfg.group,
                job_type=job_type,
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


def log_sweep(cfg, group: str | None, sweep_dir: str | Path, rows: list[list], images: list[Path]) -> None:
    """A sweep's summary run in its group: the CA–ASR trade-off of every run as a table and a scatter chart."""
    from bdunlearn.reports.sweep_report import TRADEOFF_COLUMNS

    tracker = Tracker(cfg, sweep_dir, config={"sweep_dir": str(sweep_dir)}, name=f"{group or 'sweep'}-summary", group=group,
                      job_type="sweep-summary")  # fmt: skip

    def action():
        wandb = tracker._wandb
        table = wandb.Table(columns=list(TRADEOFF_COLUMNS), data=rows)
        chart = wandb.plot.scatter(table, "asr", "clean_acc", title="test CA against ASR (up and left is better)")
        tracker._run.log({"sweep/tradeoff_table": table, "sweep/tradeoff": chart, **{f"sweep/{p.stem}": wandb.Image(str(p)) for p in images}})

    tracker._attempt("log the sweep's trade-off", action)
    tracker.finish()
