"""Where a report's numbers come from: the sweeps' own commands, the code's commit, when the runs finished."""

from __future__ import annotations

import datetime as dt
import glob
import subprocess
from collections.abc import Iterable
from pathlib import Path

from omegaconf import OmegaConf


def sweep_command(sweep_dir: str | Path) -> str:
    """The command line that produced a sweep, rebuilt from Hydra's ``multirun.yaml``."""
    overrides = OmegaConf.load(Path(sweep_dir) / "multirun.yaml").hydra.overrides
    hydra = [o for o in overrides.hydra if not o.startswith("hydra.mode=")]
    return " ".join(["bdunlearn", "-m", *overrides.task, *hydra])


def sweeps_among(sources: Iterable[str]) -> list[str]:
    """The sources (or what their globs match) that are sweep dirs, i.e. hold a ``multirun.yaml``."""
    return sorted({m for s in sources for m in (glob.glob(s) or [s]) if (Path(m) / "multirun.yaml").is_file()})


def sweeps_above(run_dirs: Iterable[str | Path]) -> list[Path]:
    """The sweep dirs the run dirs belong to (their parents holding a ``multirun.yaml``), sorted."""
    return [sweep for sweep in sorted({Path(d).parent for d in run_dirs}) if (sweep / "multirun.yaml").is_file()]


def finished_at(run_dirs: Iterable[Path]) -> dt.datetime | None:
    """When the last of the runs wrote its record (UTC), or None for no runs."""
    stamps = [(Path(d) / "result.json").stat().st_mtime for d in run_dirs]
    return dt.datetime.fromtimestamp(max(stamps), dt.timezone.utc) if stamps else None


def git_commit(inside: str | Path) -> str:
    """The short commit of the checkout ``inside`` lies in ("unknown" outside one, or without git)."""
    try:
        done = subprocess.run(["git", "-C", str(inside), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return done.stdout.strip()
