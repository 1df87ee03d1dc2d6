"""Building open_clip models: the library's architectures and the project's own (``architectures/*.json``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import open_clip
import torch
from torch import nn

from bdunlearn.errors import UserError
from bdunlearn.models.architectures import ARCHITECTURE_DIR, architecture

open_clip.add_model_config(ARCHITECTURE_DIR)


@dataclass(frozen=True)
class Preprocess:
    """What the image tower expects: square side in pixels and per-channel normalisation."""

    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]


def architecture_fingerprint(name: str) -> dict:
    """Everything about the architecture that determines trained weights (for cache keys)."""
    return {"name": name, "architecture": architecture(name)}


class _IntendedRandomInit(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "initialized randomly" not in record.getMessage()


def create(name: str, device: torch.device | str = "cpu") -> nn.Module:
    """A randomly initialised open_clip CLIP model of architecture ``name``."""
    architecture(name)
    quiet = _IntendedRandomInit()  # open_clip warns about random weights, which is what we asked for
    logging.getLogger().addFilter(quiet)
    try:
        return open_clip.create_model(name, pretrained=None, device=device)
    finally:
        logging.getLogger().removeFilter(quiet)


def state_shapes(name: str) -> dict[str, tuple[int, ...]]:
    """Names and shapes of the state dict of architecture ``name``, without allocating its weights."""
    with torch.device("meta"):
        model = create(name, device="meta")
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def create_pretrained(name: str, tag: str, cache_dir: str | None, device: torch.device | str = "cpu") -> nn.Module:
    """An open_clip model with published weights ``tag`` (downloads them on first use)."""
    architecture(name)
    try:
        return open_clip.create_model(name, pretrained=tag, device=device, cache_dir=cache_dir)
    except Exception as exc:  # network, hub or file errors all mean "the weights are not here"
        raise UserError(
            f"could not obtain open_clip weights {name}/{tag} ({type(exc).__name__}; no internet?): download them "
            f"once where there is internet (python -c \"import open_clip; open_clip.create_model('{name}', "
            f"pretrained='{tag}')\") and copy the Hugging Face cache here, or point model.cache_dir at a copy"
        ) from exc


def tokenizer(name: str):
    return open_clip.get_tokenizer(name)


def preprocess_of(model: nn.Module) -> Preprocess:
    size = model.visual.image_size
    size = size[0] if isinstance(size, (tuple, list)) else int(size)
    cfg = getattr(model.visual, "preprocess_cfg", None) or {}
    mean = tuple(cfg.get("mean", open_clip.OPENAI_DATASET_MEAN))
    std = tuple(cfg.get("std", open_clip.OPENAI_DATASET_STD))
    return Preprocess(image_size=size, mean=mean, std=std)
