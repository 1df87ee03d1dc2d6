"""The ``bdunlearn`` command line as Hydra reads it, and the overrides the command adds before Hydra runs: a
sweep's directory named after its overrides, and under torchrun one run dir for every rank."""

from __future__ import annotations

import argparse

from bdunlearn import distributed
from bdunlearn.config import stable_hash

MAX_SWEEP_NAME = 80


def sweep_name(task_overrides: list[str]) -> str:
    """A sweep's directory name made from its command-line overrides, so that the same command finds the same
    directory again (and skips the runs already done there)."""
    name = "_".join(task_overrides) or "default"
    name = "".join(c if c.isalnum() or c in "=,.+-_" else "-" for c in name)
    if len(name) > MAX_SWEEP_NAME:
        name = f"{name[: MAX_SWEEP_NAME - 9]}-{stable_hash(name, 8)}"
    return name


def hydra_arguments(argv: list[str]) -> argparse.Namespace:
    """The command line as Hydra reads it (its flags, and the overrides), for the checks made before Hydra runs."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("overrides", nargs="*")
    for flag in ("--help", "--hydra-help", "--resolve"):
        parser.add_argument(flag, action="store_true")
    parser.add_argument("-h", dest="help", action="store_true")
    parser.add_argument("--info", "-i", nargs="?", const="all")
    parser.add_argument("--experimental-rerun")
    parser.add_argument("--multirun", "-m", action="store_true")
    parser.add_argument("--cfg", "-c")
    parser.add_argument("--package", "-p")
    parser.add_argument("--shell-completion", "-sc", action="store_true")
    parser.add_argument("--config-path", "-cp")
    parser.add_argument("--config-name", "-cn")
    parser.add_argument("--config-dir", "-cd")
    args, _ = parser.parse_known_args(argv)
    return args


def with_sweep_dir(argv: list[str]) -> list[str]:
    """``argv`` plus ``hydra.sweep.dir=multirun/<sweep name>`` for a sweep that does not set its directory."""
    args = hydra_arguments(argv)
    if not args.multirun or any(o.startswith("hydra.sweep.dir=") for o in args.overrides):
        return argv
    task = [o for o in args.overrides if not o.startswith(("hydra.", "hydra/", "+hydra", "~hydra"))]
    return [*argv, f"hydra.sweep.dir='multirun/{sweep_name(task)}'"]


def one_run_dir(argv: list[str], output_dirs: set[str]) -> list[str]:
    """Under torchrun, ``argv`` with every rank's Hydra output in rank 0's run dir (a dir named after the time
    would differ between ranks started a second apart); ranks other than 0 write no Hydra files or log there."""
    if not distributed.active():
        return argv
    if not distributed.is_main():
        argv = [*argv, "hydra.output_subdir=null", "hydra/job_logging=disabled"]
    args = hydra_arguments(argv)
    key = "hydra.sweep.dir" if args.multirun else "hydra.run.dir"
    if not output_dirs or any(o.startswith(f"{key}=") for o in args.overrides):
        return argv
    return [*argv, f"{key}='{distributed.broadcast_object(min(output_dirs))}'"]
