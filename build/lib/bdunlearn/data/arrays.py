"""Datasets torchvision reads as whole arrays (CIFAR-10/100 pickled batches, MNIST IDX files, SVHN .mat files).

They are small enough to hold in memory at their native size (32x32 or 28x28) as uint8 tensors; the model's
resolution is reached on the fly by ``images.to_pixels``. torchvision's classes parse the files; the MD5
sums they check on every load are skipped (files must exist; a malformed file fails to parse and becomes a
one-line error), and kept wherever torchvision downloads an archive.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torchvision import datasets as tv
from torchvision.datasets.utils import download_url

from bdunlearn.data.classnames import label_lookup, underscores_to_spaces, verbatim
from bdunlearn.data.images import ImageSet
from bdunlearn.errors import UserError


def _root(cfg) -> Path:
    return Path(cfg.root).expanduser()


def _no_md5(files):
    return [[name, None] for name, _ in files]


class _CIFAR10(tv.CIFAR10):
    train_list: ClassVar = _no_md5(tv.CIFAR10.train_list)
    test_list: ClassVar = _no_md5(tv.CIFAR10.test_list)
    meta: ClassVar = {**tv.CIFAR10.meta, "md5": None}


class _CIFAR100(tv.CIFAR100):
    train_list: ClassVar = _no_md5(tv.CIFAR100.train_list)
    test_list: ClassVar = _no_md5(tv.CIFAR100.test_list)
    meta: ClassVar = {**tv.CIFAR100.meta, "md5": None}


class _SVHN(tv.SVHN):
    split_list: ClassVar = {split: [url, name, None] for split, (url, name, _) in tv.SVHN.split_list.items()}

    def download(self) -> None:  # with the archive's real MD5 sum
        url, name, md5 = tv.SVHN.split_list[self.split]
        download_url(url, self.root, name, md5)


def _parse_error(cfg, exc: Exception) -> UserError:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return UserError(f"dataset={cfg.name}: cannot read the files under {_root(cfg)} ({first[:200]}); "
                     "replace them with the official ones (or dataset.download=true with internet)")  # fmt: skip


# --- CIFAR-10 / CIFAR-100 ----------------------------------------------------------------------------------


def _cifar(cfg, split: str, cls, rule) -> ImageSet:
    try:
        data = cls(str(_root(cfg)), train=split == "train", download=bool(cfg.download))
    except (OSError, ValueError, KeyError, EOFError, RuntimeError) as exc:
        raise _parse_error(cfg, exc) from exc
    lookup = np.asarray(label_lookup(data.classes, cfg, rule))
    images = torch.from_numpy(np.ascontiguousarray(data.data.transpose(0, 3, 1, 2)))  # HWC → CHW
    return ImageSet(images, torch.from_numpy(lookup[np.asarray(data.targets)]).long())


def cifar10(cfg, split: str) -> ImageSet:
    return _cifar(cfg, split, _CIFAR10, verbatim)


def cifar100(cfg, split: str) -> ImageSet:
    return _cifar(cfg, split, _CIFAR100, underscores_to_spaces)


def _cifar_missing(cfg, cls, title: str) -> str | None:
    folder = _root(cfg) / cls.base_folder
    names = [name for name, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]
    if cfg.download or all((folder / name).is_file() for name in names):
        return None
    return (
        f"dataset={cfg.name}: no {title} at {folder}; set dataset.root to the folder holding {cls.base_folder}/, "
        f"or dataset.download=true with internet (torchvision fetches {cls.url})"
    )


def cifar10_missing(cfg) -> str | None:
    return _cifar_missing(cfg, _CIFAR10, "CIFAR-10")


def cifar100_missing(cfg) -> str | None:
    return _cifar_missing(cfg, _CIFAR100, "CIFAR-100")


# --- MNIST -------------------------------------------------------------------------------------------------

MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def mnist(cfg, split: str) -> ImageSet:
    try:
        data = tv.MNIST(str(_root(cfg)), train=split == "train", download=bool(cfg.download))
    except (OSError, ValueError, RuntimeError, AssertionError) as exc:
        raise _parse_error(cfg, exc) from exc
    return ImageSet(data.data[:, None].contiguous(), data.targets.long())


def mnist_missing(cfg) -> str | None:
    raw = _root(cfg) / "MNIST" / "raw"
    if cfg.download or all((raw / name).is_file() for name in MNIST_FILES):
        return None
    return (
        f"dataset=mnist: no MNIST at {raw} (the four unpacked IDX files {', '.join(MNIST_FILES)}); set "
        "dataset.root to the folder holding MNIST/raw/, or dataset.download=true with internet "
        "(torchvision fetches https://ossci-datasets.s3.amazonaws.com/mnist/)"
    )


def mnist_train_size(cfg) -> int:
    with open(_root(cfg) / "MNIST" / "raw" / MNIST_FILES[0], "rb") as handle:
        return int.from_bytes(handle.read(8)[4:8], "big")  # IDX header: magic, then the image count


# --- SVHN (cropped digits) ---------------------------------------------------------------------------------


def _svhn_dir(cfg) -> Path:
    return _root(cfg) / "svhn"


def svhn(cfg, split: str) -> ImageSet:
    try:
        data = _SVHN(str(_svhn_dir(cfg)), split=split, download=bool(cfg.download))
    except (OSError, ValueError, KeyError, RuntimeError, NotImplementedError) as exc:
        raise _parse_error(cfg, exc) from exc
    return ImageSet(torch.from_numpy(np.ascontiguousarray(data.data)), torch.from_numpy(data.labels).long())


def svhn_missing(cfg) -> str | None:
    folder = _svhn_dir(cfg)
    if cfg.download or all((folder / f"{split}_32x32.mat").is_file() for split in ("train", "test")):
        return None
    return (
        f"dataset=svhn: no SVHN at {folder} (train_32x32.mat, test_32x32.mat); set dataset.root to the folder "
        "holding svhn/, or dataset.download=true with internet (torchvision fetches "
        "http://ufldl.stanford.edu/housenumbers/train_32x32.mat and test_32x32.mat)"
    )


def svhn_train_size(cfg) -> int:
    """From the .mat header, without loading the images (X is 32 x 32 x 3 x N)."""
    from scipy.io import whosmat

    try:
        shapes = {name: shape for name, shape, _ in whosmat(str(_svhn_dir(cfg) / "train_32x32.mat"))}
    except (OSError, ValueError) as exc:
        raise _parse_error(cfg, exc) from exc
    if "X" not in shapes:
        raise UserError(f"dataset=svhn: {_svhn_dir(cfg) / 'train_32x32.mat'} has no 'X' array; replace it with the official file")
    return int(shapes["X"][-1])
