"""Checkpoint I/O: safetensors state dicts plus the config that built them; never pickled modules."""

from __future__ import annotations

import json
import os
import pickle
import zipfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from bdunlearn.atomic import atomic_path
from bdunlearn.errors import UserError

StateDict = dict[str, torch.Tensor]


def save_state_dict(path: Path, state: StateDict, metadata: dict | None = None) -> None:
    """Write ``state`` as safetensors, atomically; ``metadata`` (JSON-able) goes into the header."""
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    header = {"bdunlearn": json.dumps(metadata, sort_keys=True, default=str)} if metadata else None
    tmp = atomic_path(path)
    try:
        save_file(tensors, str(tmp), metadata=header)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def tensor_shapes(path: str | Path) -> dict[str, tuple[int, ...]]:
    """Names and shapes of a checkpoint's tensors; reads only the header of a safetensors file."""
    path = Path(path)
    if path.suffix == ".safetensors" and path.is_file():
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as handle:
                return {k: tuple(handle.get_slice(k).get_shape()) for k in handle.keys()}
        except (SafetensorError, OSError, ValueError) as exc:
            raise UserError(f"checkpoint {path} is not a readable safetensors file ({exc})") from exc
    return {k: tuple(v.shape) for k, v in load_state_dict(path).items()}


def check_fits(path: str | Path, expected: dict[str, tuple[int, ...]], model_name: str) -> None:
    """UserError unless the checkpoint at ``path`` has exactly the tensors (names, shapes) of ``expected``."""
    shapes = tensor_shapes(path)
    missing = sorted(set(expected) - set(shapes))
    unexpected = sorted(set(shapes) - set(expected))
    if missing or unexpected:
        example = (missing or unexpected)[0]
        raise UserError(
            f"checkpoint {path} does not fit model {model_name}: {len(missing)} missing and {len(unexpected)} "
            f"unexpected tensors (e.g. {example!r}); pick the matching model= config"
        )
    for name, shape in expected.items():
        if shapes[name] != shape:
            raise UserError(
                f"checkpoint {path} does not fit model {model_name}: {name!r} has shape {shapes[name]}, "
                f"the model expects {shape}; pick the matching model= config"
            )


def load_state_dict(path: str | Path) -> StateDict:
    """Read a checkpoint that a user may have been handed.

    ``.safetensors`` files are parsed without executing anything; other files are opened only with
    ``torch.load(weights_only=True)``, which refuses pickled code. Anything else is a UserError.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise UserError(f"checkpoint {path} is not a readable safetensors file ({exc})") from exc
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(
            f"refusing checkpoint {path}: not a weights-only state dict ({first[:200]}); "
            "convert it to safetensors on a machine you trust"
        ) from exc
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise UserError(f"checkpoint {path} does not hold a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in obj.items()}
