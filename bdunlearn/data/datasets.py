"""Dataset registry: each loader returns uint8 image tensors for the official train (and test) split."""

from __future__ import annotations

import gzip
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bdunlearn.data.images import ImageSet
from bdunlearn.errors import UserError


@dataclass
class RawDataset:
    train: ImageSet
    test: ImageSet | None  # None: the dataset has no official test split; it is carved from train


def _digits(cfg) -> RawDataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None]  # 0..16 → 0..255
    return RawDataset(train=ImageSet(torch.from_numpy(images), torch.from_numpy(bunch.target).long()), test=None)


FASHION_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
FASHION_HINT = "sudo apt-get install dataset-fashion-mnist (Debian/Ubuntu), or set dataset.download=true"


def _fashion_raw_dir(cfg) -> Path:
    return Path(cfg.root).expanduser() / "FashionMNIST" / "raw"


def _fashion_missing(cfg) -> str | None:
    raw = _fashion_raw_dir(cfg)
    if all((raw / f).is_file() for f in FASHION_FILES) or cfg.download:
        return None
    source = Path(cfg.source_dir).expanduser() if cfg.source_dir else None
    if source and all((source / f"{f}.gz").is_file() for f in FASHION_FILES):
        return None
    where = f"{raw}" + (f" or {source}/*.gz" if source else "")
    return f"Fashion-MNIST not found at {where}; {FASHION_HINT}"


def _unpack_fashion(cfg) -> None:
    """Decompress the Debian package's files into the raw/ folder torchvision's loader reads."""
    raw = _fashion_raw_dir(cfg)
    if all((raw / f).is_file() for f in FASHION_FILES) or not cfg.source_dir:
        return
    raw.mkdir(parents=True, exist_ok=True)
    for name in FASHION_FILES:
        target = raw / name
        if target.is_file():
            continue
        tmp = raw / f".{name}.partial"
        with gzip.open(Path(cfg.source_dir).expanduser() / f"{name}.gz", "rb") as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst)
        tmp.replace(target)


def _fashion_mnist(cfg) -> RawDataset:
    from torchvision.datasets import FashionMNIST

    _unpack_fashion(cfg)
    root = str(Path(cfg.root).expanduser())
    splits = [FashionMNIST(root, train=train, download=bool(cfg.download)) for train in (True, False)]
    train, test = (ImageSet(s.data[:, None].contiguous(), s.targets.long()) for s in splits)
    return RawDataset(train=train, test=test)


@dataclass(frozen=True)
class DatasetSpec:
    load: Callable[[object], RawDataset]
    missing: Callable[[object], str | None] = lambda cfg: None  # why the data is unavailable, or None


REGISTRY: dict[str, DatasetSpec] = {
    "digits": DatasetSpec(load=_digits),
    "fashion_mnist": DatasetSpec(load=_fashion_mnist, missing=_fashion_missing),
}


def check_available(cfg) -> None:
    """Fail before any compute if the data for ``cfg`` cannot be read."""
    if cfg.name not in REGISTRY:
        raise UserError(f"no loader for dataset {cfg.name!r}; known: {', '.join(sorted(REGISTRY))}")
    reason = REGISTRY[cfg.name].missing(cfg)
    if reason:
        raise UserError(reason)


def load(cfg) -> RawDataset:
    check_available(cfg)
    return REGISTRY[cfg.name].load(cfg)
