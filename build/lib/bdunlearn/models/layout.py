"""open_clip's folder layout (the Hugging Face hub's and ``local-dir:``'s) and the mark bdunlearn's exports carry.

Kept free of torch and open_clip imports, so that resolving where weights come from (``sources.py``) fails
within a fraction of a second when they are missing. The names are open_clip's (``open_clip.constants``;
tests/test_sources.py checks that they still agree).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from bdunlearn.errors import UserError

CONFIG_FILE = "open_clip_config.json"  # open_clip.constants.HF_CONFIG_NAME
WEIGHTS_FILE = "open_clip_model.safetensors"  # open_clip.constants.HF_SAFE_WEIGHTS_NAME
PICKLED_WEIGHTS_FILE = "open_clip_pytorch_model.bin"  # open_clip.constants.HF_WEIGHTS_NAME
HUB_WEIGHTS = (WEIGHTS_FILE, PICKLED_WEIGHTS_FILE)  # what create_model("hf-hub:...") fetches, in its order
# What create_model("local-dir:...") takes from a folder, most preferred first (open_clip's factory).
FOLDER_WEIGHTS = (
    WEIGHTS_FILE, "open_clip_pytorch_model.safetensors", PICKLED_WEIGHTS_FILE, "open_clip_pytorch_model.pth",
    "model.safetensors", "pytorch_model.bin", "pytorch_model.pth", "model.pth",
)  # fmt: skip
CARD_FILE = "README.md"
MARKER = "bdunlearn"  # the block in CONFIG_FILE that says bdunlearn wrote the folder (open_clip ignores it)


@dataclass(frozen=True)
class Exported:
    """A folder bdunlearn exported, as read back."""

    folder: Path
    architecture: str
    model_cfg: dict
    preprocess_cfg: dict
    weights: Path
    record: dict


def read_exported(folder: str | Path) -> Exported | None:
    """The export in ``folder`` if bdunlearn wrote it (its config carries the ``bdunlearn`` block), else None."""
    folder = Path(folder).expanduser()
    config_path, weights = folder / CONFIG_FILE, folder / WEIGHTS_FILE
    if not (config_path.is_file() and weights.is_file()):
        return None
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"{config_path} is not readable JSON ({exc}); export the model again") from exc
    block = config.get(MARKER) if isinstance(config, dict) else None
    if not isinstance(block, dict) or "architecture" not in block or "model_cfg" not in config:
        return None
    preprocess, record = config.get("preprocess_cfg", {}), block.get("record") or {}
    return Exported(folder, block["architecture"], config["model_cfg"], preprocess, weights, record)


def is_exported(folder: str | Path) -> bool:
    return read_exported(folder) is not None
