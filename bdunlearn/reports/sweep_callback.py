"""The Hydra callback that leaves a sweep's tables and plots in its directory when ``bdunlearn -m`` ends.

Registered in ``conf/config.yaml`` under ``hydra.callbacks.sweep_report``; an experiment may set its table's
layout there (``pivot``, ``metrics``, ``facet``). It reads the sweep's ok records (a failed job only drops out of
the tables), writes ``<sweep dir>/<name>.{csv,md,tex}``, ``tradeoff.png`` and ``alpha_curves.png``, and logs
the CA–ASR trade-off to W&B in the sweep's group. Nothing here may fail the sweep: its runs are already done,
so any problem is one warning.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback

log = logging.getLogger("bdunlearn")


def report(sweep_dir: Path, wandb_cfg: Any, *, pivot: str, metrics: str, facet: str | None, name: str) -> list[Path]:
    """Write the sweep's tables and plots into ``sweep_dir``; returns the files written (none: no ok record)."""
    from bdunlearn.reports.machine import describe
    from bdunlearn.reports.records import count_not_ok, load_records
    from bdunlearn.reports.sweep_report import tradeoff_rows, write_plots, write_tables
    from bdunlearn.tracking import log_sweep, sweep_group

    frame = load_records([str(sweep_dir)])
    if frame.empty:
        log.warning("sweep %s has no ok run record: no tables or plots", sweep_dir)
        return []
    failed = count_not_ok([str(sweep_dir)])
    if failed:
        log.warning("sweep %s: %d run(s) not ok, left out of its tables", sweep_dir, failed)
    command = f"python scripts/make_tables.py SWEEP_DIR --pivot {pivot} --metrics {metrics}"  # what the callback ran
    wrote = write_tables([str(sweep_dir)], sweep_dir, name, pivot, metrics.split(","), command=command, hardware=describe())
    wrote += write_plots(frame, sweep_dir, facet)
    if wandb_cfg is not None:
        group = sweep_group(wandb_cfg.get("group"), sweep_dir)
        log_sweep(wandb_cfg, group, sweep_dir, tradeoff_rows(frame), [p for p in wrote if p.suffix == ".png"])
    return wrote


class SweepReport(Callback):
    def __init__(self, pivot: str = "attack,defense/dataset", metrics: str = "clean_acc,asr", facet: str | None = None,
                 name: str = "table", enabled: bool = True) -> None:  # fmt: skip
        self.options = {"pivot": pivot, "metrics": metrics, "facet": facet, "name": name}
        self.enabled = enabled

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        from bdunlearn import distributed

        if not self.enabled or not distributed.is_main():
            return
        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            wrote = report(sweep_dir, config.get("logger", {}).get("wandb"), **self.options)
        except Exception as exc:  # noqa: BLE001 -- the runs are done and recorded; a report problem must not fail the sweep
            log.warning("could not write the tables of sweep %s (%s: %s); make them with scripts/make_tables.py",
                        sweep_dir, type(exc).__name__, str(exc).splitlines()[0][:200] if str(exc) else "")  # fmt: skip
            return
        if wrote:
            print(f"sweep tables and plots: {', '.join(str(p) for p in wrote)}")
