"""Model architectures as data: this project's open_clip configs (``*.json`` here) and open_clip's own.

Looked up without importing open_clip, so that configs are validated in well under a second.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from bdunlearn.errors import UserError

ARCHITECTURE_DIR = Path(__file__).parent


def open_clip_config_dir() -> Path | None:
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "model_configs"


def architecture(name: str) -> dict:
    """The open_clip architecture dict for ``name`` (UserError if neither this project nor open_clip has it)."""
    for folder in (ARCHITECTURE_DIR, open_clip_config_dir()):
        if folder is not None and (folder / f"{name}.json").is_file():
            return json.loads((folder / f"{name}.json").read_text())
    project = sorted(p.stem for p in ARCHITECTURE_DIR.glob("*.json"))
    raise UserError(
        f"unknown open_clip architecture {name!r}: use one of open_clip.list_models() (e.g. ViT-B-32) "
        f"or this project's {', '.join(project)}"
    )
