"""The ``bdunlearn`` command: a Hydra app around :mod:`bdunlearn.pipeline`.

Every run the command line asks for (each point of a ``-m`` sweep) is composed and validated before Hydra
starts any of them, so a mistake costs one line on stderr and exit code 2, and nothing is written.
"""

from __future__ import annotations

import itertools
import logging
import os
import sys
import tempfile
import traceback
from dataclasses import replace
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, open_dict

from bdunlearn import distributed
from bdunlearn import overrides as overrides_module
from bdunlearn.atomic import write_text_atomic
from bdunlearn.command_line import hydra_arguments, one_run_dir, with_sweep_dir
from bdunlearn.config import CONFIG_DIR, RunConfig, config_hash, to_dict
from bdunlearn.errors import TrainingDiverged, UserError
from bdunlearn.plugins import register_configs
from bdunlearn.preflight import validated

log = logging.getLogger("bdunlearn")
MAX_PREFLIGHT_RUNS = 512


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def composition_error(exc: Exception) -> UserError:
    from hydra.errors import MissingConfigException

    if isinstance(exc, MissingConfigException) and exc.missing_cfg_file and exc.options:
        group, _, name = exc.missing_cfg_file.rpartition("/")
        return UserError(f"unknown {group} {name!r}; choose one of: {', '.join(sorted(exc.options))}")
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    cause = exc.__cause__
    if cause is not None and str(cause).strip():
        detail = str(cause).strip().splitlines()[0]
        first = f"{first} ({detail})" if first else detail
    first = first or type(exc).__name__
    if "Ambiguous value for argument" in first:
        first += "; add -m to sweep over the values, or write key=[a,b] for a list"
    if first.startswith("Could not override") and "not in" in first:  # a key the schema does not have
        first += "; `bdunlearn --cfg job` lists every key of the chosen config"
    return UserError(first)


def _expand(overrides: list[str], multirun: bool) -> list[list[str]]:
    """The override lists of every run the command line describes (sweeps expanded in multirun mode)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    if not multirun:
        return [overrides]
    choices = []
    for override in OverridesParser.create().parse_overrides(overrides):
        if override.is_sweep_override():
            if not override.is_discrete_sweep():
                continue  # interval sweeps (optimiser plugins) are validated per job
            key = override.get_key_element()
            choices.append([f"{key}={value}" for value in override.sweep_string_iterator()])
        else:
            choices.append([override.input_line])
    return [list(c) for c in itertools.islice(itertools.product(*choices), MAX_PREFLIGHT_RUNS)]


def preflight(argv: list[str]) -> set[str]:
    """Compose and validate every requested run; raise UserError on the first mistake; print a note for each
    override a run does not read. Returns the output directories of the runs (none for --help and the like)."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    args = hydra_arguments(argv)
    if args.help or args.hydra_help or args.info or args.cfg or args.shell_completion:
        return set()
    if args.config_dir or args.config_path or args.config_name or args.experimental_rerun:
        return set()  # a different config tree: each job validates itself
    try:
        runs = _expand(args.overrides, args.multirun)
    except (HydraException, OmegaConfBaseException) as exc:
        raise composition_error(exc) from exc
    output_dirs, notes = set(), {}
    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR), job_name="bdunlearn"):
        if args.multirun:
            try:
                runs = _expand(args.overrides + _config_sweeps(runs[0], args.overrides), multirun=True)
            except (HydraException, OmegaConfBaseException) as exc:
                raise composition_error(exc) from exc
        for overrides in runs:
            try:
                cfg = compose(config_name="config", overrides=overrides, return_hydra_config=True)
                output_dirs.add(str(cfg.hydra.sweep.dir if args.multirun else cfg.hydra.run.dir))
                with open_dict(cfg):
                    cfg.pop("hydra")
            except (HydraException, OmegaConfBaseException) as exc:
                raise composition_error(exc) from exc
            run = validated(cfg)
            notes.update(dict.fromkeys(overrides_module.check(run, overrides)))
    for note in notes if distributed.is_main() else ():
        print(f"bdunlearn: note: {note}", file=sys.stderr)
    for directory in output_dirs:
        _check_writable(directory, "hydra.sweep.dir" if args.multirun else "hydra.run.dir")
    return output_dirs


def _config_sweeps(first_run: list[str], command_line: list[str]) -> list[str]:
    """Sweeps a config defines in ``hydra.sweeper.params`` (an experiment's grid) for keys the command line
    leaves alone; as Hydra's sweeper does, the command line wins."""
    from hydra import compose
    from hydra.core.override_parser.overrides_parser import OverridesParser

    cfg = compose(config_name="config", overrides=first_run, return_hydra_config=True)
    params = cfg.hydra.sweeper.get("params") or {}
    given = {o.get_key_element() for o in OverridesParser.create().parse_overrides(command_line)}
    return [f"{key}={value}" for key, value in params.items() if key not in given]


def _check_writable(directory: str, key: str) -> None:
    """UserError unless the output directory can be created (probed in its nearest existing ancestor)."""
    path = Path(directory).expanduser().absolute()
    ancestor = path
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise UserError(f"cannot create the output directory {path}: {ancestor} is a file; set {key}=DIR")
    try:
        handle, probe = tempfile.mkstemp(prefix=".bdunlearn-probe-", dir=ancestor)
        os.close(handle)
        os.unlink(probe)
    except OSError as exc:
        raise UserError(
            f"cannot write the output directory {path} ({exc.strerror} in {ancestor}); set {key}=DIR to a writable place"
        ) from exc


def completed_record(cfg: RunConfig, run_dir: Path) -> dict | None:
    """The run dir's record if it says ``ok`` for exactly this config (same ``config_hash``), else None."""
    import json

    try:
        record = json.loads((run_dir / "result.json").read_text())
    except (OSError, ValueError):
        return None
    same = record.get("config_hash") == config_hash(cfg)
    return record if record.get("status") == "ok" and same else None


class RunFailed(Exception):
    """A run that started and then failed; its record says ``failed`` and why."""


def model_folder(cfg: RunConfig, run_dir: Path, in_sweep: bool) -> Path | None:
    """Where the defended model is exported (``save_model``: auto exports in single runs, not in sweep jobs)."""
    choice = str(cfg.save_model).lower()
    return run_dir / "model" if choice == "true" or (choice == "auto" and not in_sweep) else None


def execute(cfg: RunConfig, run_dir: Path, in_sweep: bool = False) -> dict:
    """Run the pipeline, always leaving ``result.json`` (``ok``, or ``failed`` with the error)."""
    from bdunlearn import pipeline
    from bdunlearn.models import export
    from bdunlearn.records import base_record, summary_table, write_record
    from bdunlearn.tracking import Tracker, sweep_group

    main = distributed.is_main()  # under torchrun every rank runs the stages; rank 0 alone writes and reports
    save_to = model_folder(cfg, run_dir, in_sweep) if main else None
    if save_to is not None:  # a folder that cannot take the model stops the run here, before any compute
        export.check_destination(save_to, cfg.model.name, export.DTYPES[cfg.save_model_dtype], overwrite=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    record = base_record(cfg)
    wandb = cfg.logger.wandb if main else replace(cfg.logger.wandb, mode="disabled")
    name = f"{cfg.attack.name}-{cfg.defense.name}-s{cfg.seed}"
    group = sweep_group(cfg.logger.wandb.group, run_dir.parent if in_sweep else None)
    tracker = Tracker(wandb, run_dir, config=to_dict(cfg), name=name, group=group)
    try:
        record = pipeline.run(cfg, run_dir, tracker, record, save_to=save_to, command=" ".join(["bdunlearn", *sys.argv[1:]]))
    except BaseException as exc:
        record["status"] = "failed"
        record["error"] = _one_line(exc)
        if isinstance(exc, TrainingDiverged):
            record["failed_stage"], record["failed_step"] = exc.stage, exc.step
        if main:
            write_record(run_dir, record)
        tracker.finish(failed=True)
        if isinstance(exc, UserError):
            raise
        if isinstance(exc, TrainingDiverged):
            raise RunFailed(_one_line(exc)) from exc
        if isinstance(exc, Exception) and main:
            write_text_atomic(run_dir / "traceback.txt", "".join(traceback.format_exception(exc)))
            raise RunFailed(f"{_one_line(exc)} (traceback in {run_dir / 'traceback.txt'})") from exc
        if isinstance(exc, Exception):
            raise RunFailed(f"{_one_line(exc)} (rank {distributed.rank()})") from exc
        raise
    tracker.finish()
    if not main:
        return record
    path = write_record(run_dir, record)
    print(summary_table(record))
    print(f"run record: {path}")
    if record.get("exported_model"):
        print(f"defended model: {record['exported_model']} (open_clip: 'local-dir:{record['exported_model']}')")
    if save_to is not None and cfg.hf_hub.repo_id:
        try:
            print(f"pushed to the Hugging Face hub: {export.push_to_hub(save_to, cfg.hf_hub.repo_id, private=cfg.hf_hub.private)}")
        except UserError as exc:  # the run itself succeeded: its record and model stay
            print(f"bdunlearn: error: {_one_line(exc)}", file=sys.stderr)
            _FAILURES.append(2)
    return record


_FAILURES: list[int] = []  # exit codes of runs of this process that failed (the message is already printed)


@hydra.main(config_path=str(CONFIG_DIR), config_name="config", version_base="1.3")
def _app(cfg: DictConfig) -> dict | None:
    # Failures are reported here, one line each, rather than raised: a raised error would make Hydra print
    # its own lines and, in a sweep, stop the runs after it.
    joined = not distributed.active() and distributed.init_from_env()  # a SLURM task submitit started (slurm_multigpu)
    try:
        run = validated(cfg)
        run_dir = Path(HydraConfig.get().runtime.output_dir)
        done = completed_record(run, run_dir) if run.skip_completed else None
        if done is not None:
            log.info("skipped: %s already holds this run's ok record (skip_completed=false runs it again)", run_dir)
            return done
        return execute(run, run_dir, in_sweep=HydraConfig.get().mode == RunMode.MULTIRUN)
    except UserError as exc:
        print(f"bdunlearn: error: {_one_line(exc)}", file=sys.stderr)
        _FAILURES.append(2)
    except RunFailed as exc:
        print(f"bdunlearn: run failed: {exc}", file=sys.stderr)
        _FAILURES.append(1)
    finally:
        if joined:
            distributed.shutdown()
    return None


def main() -> None:
    os.environ["HYDRA_FULL_ERROR"] = "1"  # let errors reach main() so they are reported in one line
    sys.argv[1:] = with_sweep_dir(sys.argv[1:])
    register_configs()
    try:
        distributed.init_from_env()  # torchrun (or a SLURM job's tasks): every fine-tune of the run uses them all
        sys.argv[1:] = one_run_dir(sys.argv[1:], preflight(sys.argv[1:]))
        _app()
    except UserError as exc:
        print(f"bdunlearn: error: {_one_line(exc)}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("bdunlearn: interrupted", file=sys.stderr)
        sys.exit(130)
    finally:
        distributed.shutdown()
    if _FAILURES:
        sys.exit(max(_FAILURES) if len(set(_FAILURES)) == 1 else 1)
