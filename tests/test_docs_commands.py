"""Every command README.md and the quickstart page show runs as shown.

Shell commands (``bash`` blocks) are composed and validated exactly as written, every point of a sweep, as
``bdunlearn`` does before any compute; the cheap ones also run end to end with fewer training steps
(``-m slow``). A command whose comment starts with ``needs:`` needs more than a fresh install and is skipped
with that reason; installation lines are what ``.ci/run`` runs. Error examples (``text`` blocks: ``$ bdunlearn
...`` then ``bdunlearn: error: ...``) must print exactly the line shown.
"""

from __future__ import annotations

import itertools
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from bdunlearn.cli import _one_line, preflight, with_sweep_dir
from bdunlearn.errors import UserError

REPO = Path(__file__).resolve().parent.parent
DOCS = [REPO / "README.md", REPO / "docs" / "quickstart.md"]
INSTALL = ("python3 -m venv", "pip install", "sudo ")
SHRINK = ["model.pretrain.steps=80", "finetune.steps=120", "logger.wandb.mode=disabled", "save_model=false"]
SHRINK_IF = {"inversion=decree": "inversion.steps=50", "inversion=bti_dbf": "inversion.generator_steps=40"}


def blocks(path: Path, language: str) -> list[list[str]]:
    return [b.splitlines() for b in re.findall(rf"^```{language}\n(.*?)^```", path.read_text(), re.DOTALL | re.MULTILINE)]


def shell_commands() -> list[tuple[str, str, str]]:
    """(file, command, its comment) for every line of every ``bash`` block."""
    found = []
    for path in DOCS:
        for block in blocks(path, "bash"):
            for line in block:
                command, _, comment = line.partition(" # ")
                if command.strip():
                    found.append((path.name, command.strip(), comment.strip()))
    return found


def error_examples() -> list[tuple[str, str]]:
    """(command, the error line shown under it) from ``text`` blocks."""
    found = []
    for path in DOCS:
        for block in blocks(path, "text"):
            found += [(a[2:], b) for a, b in itertools.pairwise(block) if a.startswith("$ bdunlearn ") and b.startswith("bdunlearn: error:")]
    return found


COMMANDS = shell_commands()
IDS = [f"{name}:{command[:60]}" for name, command, _ in COMMANDS]


def test_the_pages_show_commands():
    names = {name for name, _, _ in COMMANDS}
    assert names == {"README.md", "quickstart.md"} and len(COMMANDS) >= 15
    assert any(c == "bdunlearn" for _, c, _ in COMMANDS)  # the default run is shown as it is


def _skip_reason(command: str, comment: str) -> str | None:
    if comment.startswith("needs:"):
        return f"the page says this {comment}"
    if command.startswith(INSTALL):
        return "installation: .ci/run runs it from scratch"
    if command.startswith("python -m pytest"):
        return "the test suite itself (.ci/run runs python -m pytest)"
    if not command.startswith("bdunlearn"):
        return f"not a bdunlearn command: {command}"
    return None


@pytest.mark.parametrize(("page", "command", "comment"), COMMANDS, ids=IDS)
def test_each_command_composes_and_validates_as_written(page, command, comment, tmp_path, monkeypatch):
    reason = _skip_reason(command, comment)
    if reason:
        pytest.skip(reason)
    monkeypatch.chdir(tmp_path)
    argv = shlex.split(command)[1:]
    if "--cfg" in argv or "--help" in argv:
        done = subprocess.run([sys.executable, "-m", "bdunlearn", *argv], capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode == 0 and done.stdout.strip(), done.stderr[-2000:]
        return
    preflight(with_sweep_dir(argv))  # raises UserError (the one-line message the command would print)


@pytest.mark.parametrize(("command", "shown"), error_examples())
def test_each_error_example_prints_the_line_shown(command, shown, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError) as caught:
        preflight(with_sweep_dir(shlex.split(command)[1:]))
    assert f"bdunlearn: error: {_one_line(caught.value)}" == shown


@pytest.mark.slow  # heavy end-to-end: python -m pytest -m slow
@pytest.mark.parametrize(("page", "command", "comment"), COMMANDS, ids=IDS)
def test_each_cheap_command_runs_end_to_end_shrunk(page, command, comment, tmp_path):
    reason = _skip_reason(command, comment) or ("prints, does not run" if "--cfg" in command else None)
    if reason:
        pytest.skip(reason)
    argv = shlex.split(command)[1:]
    shrink = SHRINK + [extra for key, extra in SHRINK_IF.items() if key in argv]
    where = f"hydra.sweep.dir={tmp_path / 'sweep'}" if "-m" in argv else f"hydra.run.dir={tmp_path / 'run'}"
    done = subprocess.run([sys.executable, "-m", "bdunlearn", *argv, *shrink, where], capture_output=True, text=True, timeout=900,
                          cwd=tmp_path, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert list(tmp_path.rglob("result.json")), "the command left no run record"
