"""Run records: find them, read them (the one reader), and aggregate them over seeds.

A record is one ``result.json`` (CONTRACT.md). Its run's config, ``.hydra/config.yaml`` beside it, is read on
demand (``Run.config``) or joined to a frame as ``cfg.<dotted key>`` columns, so tables can group by any setting
(e.g. ``cfg.defense.num_samples``).
"""

from __future__ import annotations

import glob
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

from bdunlearn.errors import UserError

RECORD = "result.json"


@dataclass(frozen=True)
class Run:
    """One run directory: its record and where it lies."""

    record: dict
    run_dir: Path

    @property
    def ok(self) -> bool:
        return self.record.get("status") == "ok"

    @property
    def config_path(self) -> Path:
        return self.run_dir / ".hydra" / "config.yaml"

    def config(self, section: str | None = None, *, resolve: bool = False):
        """The run's config as Hydra saved it (or one section of it), as plain dicts and lists."""
        config = OmegaConf.load(self.config_path)
        return OmegaConf.to_container(config if section is None else config[section], resolve=resolve)


def read_run(path: Path) -> Run:
    """The run whose record is ``path``."""
    return Run(json.loads(Path(path).read_text()), Path(path).parent)


def record_paths(sources: Iterable[str]) -> list[Path]:
    """Every ``result.json`` under each source: a run dir, a sweep dir, a glob of either, or a record file."""
    found: list[Path] = []
    for source in sources:
        matches = [Path(m) for m in sorted(glob.glob(source))] or [Path(source)]
        for match in matches:
            if match.is_file() and match.name == RECORD:
                found.append(match)
            elif match.is_dir():
                found.extend(sorted(match.rglob(RECORD)))
    unique = list(dict.fromkeys(p.resolve() for p in found))
    if not unique:
        raise UserError(f"no result.json under {', '.join(sources)}; give run or sweep directories")
    return unique


def sweep_runs(sweep_dir: Path) -> list[Run]:
    """Every run of one Hydra sweep, finished or failed, in job order (0, 1, ..., 10: not as strings sort)."""
    paths = sorted(Path(sweep_dir).glob(f"*/{RECORD}"), key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    return [read_run(path) for path in paths]


def _flatten(node, prefix: str) -> dict:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            out.update(_flatten(value, f"{prefix}.{key}"))
        return out
    return {prefix: node if not isinstance(node, list) else json.dumps(node)}


def load_records(sources: Iterable[str], *, only_ok: bool = True) -> pd.DataFrame:
    """One row per run record (``status`` ok only, unless told otherwise), with ``run_dir`` and ``cfg.*``.

    Lists and dicts in a record (``alpha_curve``) are kept as JSON text, so that every cell is hashable.
    """
    rows = []
    for path in record_paths(sources):
        run = read_run(path)
        if only_ok and not run.ok:
            continue
        row = {k: (json.dumps(v) if isinstance(v, (list, dict)) else v) for k, v in run.record.items()}
        row["run_dir"] = str(run.run_dir)
        if run.config_path.is_file():
            row.update(_flatten(run.config(), "cfg"))
        rows.append(row)
    return pd.DataFrame(rows)


def count_not_ok(sources: Iterable[str]) -> int:
    """How many records under ``sources`` have a status other than ok (failed, or still running)."""
    return sum(not read_run(path).ok for path in record_paths(sources))


def aggregate(frame: pd.DataFrame, by: Sequence[str], metrics: Sequence[str]) -> pd.DataFrame:
    """Mean, std (sample, ddof=1; NaN for one seed) and count of each metric per group, in long form."""
    missing = [c for c in [*by, *metrics] if c not in frame.columns]
    if missing:
        raise UserError(f"no column {missing[0]!r} in the records; columns: {', '.join(sorted(map(str, frame.columns)))}")
    parts = []
    for metric in metrics:
        values = pd.to_numeric(frame[metric], errors="coerce")
        stats = values.groupby([frame[c] for c in by], sort=True, dropna=False).agg(["mean", "std", "count"])
        stats["metric"] = metric
        parts.append(stats.reset_index())
    return pd.concat(parts, ignore_index=True)

