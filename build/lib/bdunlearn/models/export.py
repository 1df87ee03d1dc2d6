"""Taking a (defended) model away: a folder in open_clip's Hugging Face hub layout, which plain open_clip loads.

The folder holds ``open_clip_model.safetensors`` (the state dict), ``open_clip_config.json`` (``model_cfg``:
the whole architecture, so the project's own architectures load where bdunlearn is not installed;
``preprocess_cfg``: mean, std, interpolation, resize mode) and a model card ``README.md`` (what was attacked,
how it was defended, the numbers before and after, the command). Both of these load it::

    open_clip.create_model_and_transforms("local-dir:/path/to/folder")
    open_clip.create_model_and_transforms("hf-hub:org/name")  # after push_to_hub(folder, "org/name")

``open_clip_config.json`` also carries a ``bdunlearn`` block (open_clip reads only ``model_cfg`` and
``preprocess_cfg``), by which :func:`read_exported` recognises the folder, so a defended model can be handed
back to bdunlearn (``backdoored_checkpoint=FOLDER``, ``model.pretrained=FOLDER``) and defended again.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from torch import nn

from bdunlearn.atomic import write_json_atomic, write_text_atomic
from bdunlearn.errors import UserError
from bdunlearn.models.architectures import architecture as architecture_cfg
from bdunlearn.models.card import model_card
from bdunlearn.models.checkpoint import StateDict, save_state_dict
from bdunlearn.models.layout import (
    CARD_FILE,
    CONFIG_FILE,
    MARKER,
    WEIGHTS_FILE,
    Exported,
    is_exported,
    read_exported,
)

__all__ = [
    "CARD_FILE", "CONFIG_FILE", "MARKER", "WEIGHTS_FILE", "Exported", "check_destination", "export_cost", "export_model",
    "is_exported", "open_clip_config", "preprocess_cfg", "push_to_hub", "read_exported",
]  # fmt: skip

FORMAT_VERSION = 1
PREPROCESS_KEYS = ("mean", "std", "interpolation", "resize_mode")  # open_clip takes the size from the model


# save_model_dtype -> the dtype weights are written in (None: as they are, fp32)
DTYPES = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}


def _uses_quick_gelu(model: nn.Module) -> bool:
    from open_clip.transformer import QuickGELU

    return any(isinstance(module, QuickGELU) for module in model.modules())


def preprocess_cfg(model: nn.Module | None, architecture: str, pretrained: str | None) -> dict:
    """The model's image preprocessing: what open_clip attached to it, else its pretrained tag's, else the
    library's defaults (CLIP's OpenAI mean and std)."""
    from dataclasses import asdict

    import open_clip
    from open_clip.transform import PreprocessCfg

    found = dict(getattr(getattr(model, "visual", None), "preprocess_cfg", None) or {})
    if not found:
        found = asdict(PreprocessCfg())
        if pretrained:  # {} for anything but an open_clip tag
            found.update({k: v for k, v in open_clip.get_pretrained_cfg(architecture, pretrained).items() if k in PREPROCESS_KEYS})
    return {key: list(found[key]) if isinstance(found[key], tuple) else found[key] for key in PREPROCESS_KEYS}


def open_clip_config(
    architecture: str, model: nn.Module | None = None, pretrained: str | None = None, record: dict | None = None,
    command: str | None = None,
) -> dict:
    """The contents of ``open_clip_config.json`` for a model of ``architecture``."""
    model_cfg = architecture_cfg(architecture)
    if model is not None and _uses_quick_gelu(model) and not model_cfg.get("quick_gelu"):
        model_cfg["quick_gelu"] = True  # built with QuickGELU forced: the folder must rebuild the same activation
    return {
        "model_cfg": model_cfg,
        "preprocess_cfg": preprocess_cfg(model, architecture, pretrained),
        MARKER: {"format": FORMAT_VERSION, "architecture": architecture, "command": command, "record": record or {}},
    }


def _cast(state: StateDict, dtype: torch.dtype | None) -> StateDict:
    return {k: v.to(dtype) if dtype is not None and v.is_floating_point() else v for k, v in state.items()}


def check_destination(folder: str | Path, architecture: str, dtype: torch.dtype | None = None, overwrite: bool = False) -> None:
    """Preflight for an export: the folder is new (or ``overwrite``) and its disk has room for the weights."""
    folder = Path(folder).expanduser()
    if folder.exists() and (not folder.is_dir() or (any(folder.iterdir()) and not overwrite)):
        raise UserError(f"export folder {folder} already exists and is not empty; choose a new folder or allow overwriting it")
    needed = export_cost(architecture)["fp16_bytes" if dtype in (torch.float16, torch.bfloat16) else "fp32_bytes"]
    probe = next(p for p in (folder, *folder.parents) if p.exists())
    free = shutil.disk_usage(probe).free
    if free < needed:
        raise UserError(f"export of {architecture} needs {needed / 1e9:.2f} GB but {probe} has {free / 1e9:.2f} GB free; "
                        "free space, export in fp16, or choose another folder")  # fmt: skip


def export_model(
    folder: str | Path,
    model: nn.Module | StateDict,
    architecture: str,
    *,
    record: dict | None = None,
    command: str | None = None,
    pretrained: str | None = None,
    dtype: torch.dtype | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``model`` (an open_clip CLIP module, or its state dict) of ``architecture`` into ``folder``.

    ``record``: the run record (CONTRACT.md) for the model card and the ``bdunlearn`` block; ``command``: the
    command that made the model; ``pretrained``: the tag its weights started from (for the preprocessing of a
    bare state dict); ``dtype``: e.g. ``torch.float16`` halves the file (open_clip casts back on loading).
    """
    folder = Path(folder).expanduser()
    check_destination(folder, architecture, dtype, overwrite)
    module = model if isinstance(model, nn.Module) else None
    state = model.state_dict() if module is not None else model
    config = open_clip_config(architecture, module, pretrained, record, command)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CONFIG_FILE).unlink(missing_ok=True)  # the marker goes last: a half-written folder is not an export
    save_state_dict(folder / WEIGHTS_FILE, _cast(state, dtype))
    precision = str(dtype or next((v.dtype for v in state.values() if v.is_floating_point()), torch.float32))
    write_text_atomic(folder / CARD_FILE, model_card(architecture, record or {}, command, precision.removeprefix("torch.")))
    write_json_atomic(folder / CONFIG_FILE, config)
    return folder


def export_cost(architecture: str) -> dict:
    """Parameters of ``architecture`` and the bytes of its weights file in fp32 and fp16 (tensor data; the
    safetensors header adds a few kB), counted on the meta device without allocating the weights."""
    from bdunlearn.models.clip import state_shapes

    numel = sum(int(torch.Size(shape).numel()) for shape in state_shapes(architecture).values())
    return {"parameters": numel, "fp32_bytes": 4 * numel, "fp16_bytes": 2 * numel}



def push_to_hub(folder: str | Path, repo_id: str, *, token: str | None = None, private: bool = True,
                commit_message: str | None = None, revision: str | None = None) -> str:  # fmt: skip
    """Upload an exported folder to the Hugging Face hub as ``repo_id`` (created private unless told otherwise);
    returns the commit's URL. Never called by a run: the user decides what leaves the machine."""
    import huggingface_hub
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    exported = read_exported(folder)
    if exported is None:
        raise UserError(f"{folder} is not a folder bdunlearn exported (no {CONFIG_FILE} with a {MARKER} block); export the model first")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        reason = str(exc).strip().splitlines()[0][:160]
        raise UserError(f"repo_id={repo_id!r} is not a Hugging Face repository id ({reason}); use org/name") from exc
    if "/" not in repo_id:
        raise UserError(f"repo_id={repo_id!r}: name the owner too (org/name or user/name)")
    if huggingface_hub.constants.HF_HUB_OFFLINE:
        raise UserError(f"cannot push {exported.folder} to {repo_id}: HF_HUB_OFFLINE is set; unset it where there is internet")
    record = exported.record
    defense, config_hash = record.get("defense", "defended"), record.get("config_hash", "")
    message = commit_message or f"bdunlearn: {defense} {exported.architecture} ({config_hash})"
    try:
        huggingface_hub.create_repo(repo_id, token=token, private=private, exist_ok=True)
        commit = huggingface_hub.upload_folder(
            repo_id=repo_id, folder_path=str(exported.folder), commit_message=message, token=token, revision=revision
        )
    except Exception as exc:  # network, authentication and permission errors all end the push
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(
            f"pushing {exported.folder} to {repo_id} failed ({first[:200]}); log in with `hf auth login` or pass token="
        ) from exc
    return getattr(commit, "commit_url", str(commit))
