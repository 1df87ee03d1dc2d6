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


def _digits_size(cfg) -> tuple[int, bool]:
    """Rows of scikit-learn's bundled digits file, counted without importing scikit-learn (slow to import)."""
    import importlib.util

    spec = importlib.util.find_spec("sklearn")
    folder = Path(next(iter(spec.submodule_search_locations))) if spec and spec.submodule_search_locations else None
    data = folder / "datasets" / "data" / "digits.csv.gz" if folder else None
    if data is None or not data.is_file():
        return len(_digits(cfg).train), False
    with gzip.open(data, "rt") as handle:
        return sum(1 for line in handle if line.strip()), False


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


def _fashion_train_size(cfg) -> tuple[int, bool]:
    """From the IDX header alone (bytes 4..8 hold the image count), unpacked or still gzipped."""
    raw = _fashion_raw_dir(cfg) / FASHION_FILES[0]
    if raw.is_file():
        with open(raw, "rb") as handle:
            header = handle.read(8)
    else:
        with gzip.open(Path(cfg.source_dir).expanduser() / f"{FASHION_FILES[0]}.gz", "rb") as handle:
            header = handle.read(8)
    return int.from_bytes(header[4:8], "big"), True


@dataclass(frozen=True)
class DatasetSpec:
    load: Callable[[object], RawDataset]
    missing: Callable[[object], str | None] = lambda cfg: None  # why the data is unavailable, or None
    size: Callable[[object], tuple[int, bool]] | None = None  # (train images, has a test split), cheaply


REGISTRY: dict[str, DatasetSpec] = {
    "digits": DatasetSpec(load=_digits, size=_digits_size),
    "fashion_mnist": DatasetSpec(load=_fashion_mnist, missing=_fashion_missing, size=_fashion_train_size),
}


def check_available(cfg) -> None:
    """Fail before any compute if the data for ``cfg`` cannot be read."""
    if cfg.name not in REGISTRY:
        raise UserError(f"no loader for dataset {cfg.name!r}; known: {', '.join(sorted(REGISTRY))}")
    reason = REGISTRY[cfg.name].missing(cfg)
    if reason:
        raise UserError(reason)


def train_size(cfg) -> tuple[int, bool]:
    """(number of official training images, whether there is an official test split), for validation."""
    check_available(cfg)
    spec = REGISTRY[cfg.name]
    if spec.size is not None and not cfg.download:
        return spec.size(cfg)
    raw = spec.load(cfg)
    return len(raw.train), raw.test is not None


def load(cfg) -> RawDataset:
    check_available(cfg)
    return REGISTRY[cfg.name].load(cfg)
