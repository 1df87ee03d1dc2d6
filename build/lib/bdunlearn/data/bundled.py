"""The datasets that are available offline: scikit-learn's bundled digits, and Fashion-MNIST unpacked from Debian's
``dataset-fashion-mnist`` package (or downloaded by torchvision)."""

from __future__ import annotations

import gzip
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from bdunlearn.data.images import ImageSet


def digits(cfg, split: str) -> ImageSet | None:
    if split != "train":
        return None  # no official test split: test is carved from train
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None]  # 0..16 → 0..255
    return ImageSet(torch.from_numpy(images), torch.from_numpy(bunch.target).long())


def digits_size(cfg) -> int:
    """Rows of scikit-learn's bundled digits file, counted without importing scikit-learn (slow to import)."""
    import importlib.util

    spec = importlib.util.find_spec("sklearn")
    folder = Path(next(iter(spec.submodule_search_locations))) if spec and spec.submodule_search_locations else None
    data = folder / "datasets" / "data" / "digits.csv.gz" if folder else None
    if data is None or not data.is_file():
        return len(digits(cfg, "train"))
    with gzip.open(data, "rt") as handle:
        return sum(1 for line in handle if line.strip())


FASHION_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
FASHION_HINT = "sudo apt-get install dataset-fashion-mnist (Debian/Ubuntu), or set dataset.download=true"


def _fashion_raw_dir(cfg) -> Path:
    return Path(cfg.root).expanduser() / "FashionMNIST" / "raw"


def fashion_missing(cfg) -> str | None:
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
        # a file of its own per writer: runs of a parallel sweep may unpack at the same time
        handle, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".partial", dir=raw)
        with gzip.open(Path(cfg.source_dir).expanduser() / f"{name}.gz", "rb") as src, os.fdopen(handle, "wb") as dst:
            shutil.copyfileobj(src, dst)
        os.replace(tmp, target)


def fashion_mnist(cfg, split: str) -> ImageSet:
    from torchvision.datasets import FashionMNIST

    _unpack_fashion(cfg)
    data = FashionMNIST(str(Path(cfg.root).expanduser()), train=split == "train", download=bool(cfg.download))
    return ImageSet(data.data[:, None].contiguous(), data.targets.long())


def fashion_train_size(cfg) -> int:
    """From the IDX header alone (bytes 4..8 hold the image count), unpacked or still gzipped."""
    raw = _fashion_raw_dir(cfg) / FASHION_FILES[0]
    if raw.is_file():
        with open(raw, "rb") as handle:
            header = handle.read(8)
    else:
        with gzip.open(Path(cfg.source_dir).expanduser() / f"{FASHION_FILES[0]}.gz", "rb") as handle:
            header = handle.read(8)
    return int.from_bytes(header[4:8], "big")
