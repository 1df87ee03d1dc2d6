"""Dataset registry: each dataset's official train (and test) split as uint8 image tensors.

A dataset is read either as arrays (scikit-learn's digits, the MNIST family, CIFAR, SVHN: held at their own
size) or as a listing of image files (``files.py``) that is decoded once at ``dataset.image_size`` through the
decoded cache (``decoded.py``).
"""

from __future__ import annotations

import gzip
import importlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bdunlearn.data.decoded import FileList, decode
from bdunlearn.data.images import ImageSet
from bdunlearn.errors import UserError


@dataclass
class RawDataset:
    train: ImageSet
    test: ImageSet | None  # None: the dataset has no official test split; it is carved from train


def _digits(cfg, split: str) -> ImageSet | None:
    if split != "train":
        return None  # no official test split: test is carved from train
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None]  # 0..16 → 0..255
    return ImageSet(torch.from_numpy(images), torch.from_numpy(bunch.target).long())


def _digits_size(cfg) -> int:
    """Rows of scikit-learn's bundled digits file, counted without importing scikit-learn (slow to import)."""
    import importlib.util

    spec = importlib.util.find_spec("sklearn")
    folder = Path(next(iter(spec.submodule_search_locations))) if spec and spec.submodule_search_locations else None
    data = folder / "datasets" / "data" / "digits.csv.gz" if folder else None
    if data is None or not data.is_file():
        return len(_digits(cfg, "train"))
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
        # a file of its own per writer: runs of a parallel sweep may unpack at the same time
        handle, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".partial", dir=raw)
        with gzip.open(Path(cfg.source_dir).expanduser() / f"{name}.gz", "rb") as src, os.fdopen(handle, "wb") as dst:
            shutil.copyfileobj(src, dst)
        os.replace(tmp, target)


def _fashion_mnist(cfg, split: str) -> ImageSet:
    from torchvision.datasets import FashionMNIST

    _unpack_fashion(cfg)
    data = FashionMNIST(str(Path(cfg.root).expanduser()), train=split == "train", download=bool(cfg.download))
    return ImageSet(data.data[:, None].contiguous(), data.targets.long())


def _fashion_train_size(cfg) -> int:
    """From the IDX header alone (bytes 4..8 hold the image count), unpacked or still gzipped."""
    raw = _fashion_raw_dir(cfg) / FASHION_FILES[0]
    if raw.is_file():
        with open(raw, "rb") as handle:
            header = handle.read(8)
    else:
        with gzip.open(Path(cfg.source_dir).expanduser() / f"{FASHION_FILES[0]}.gz", "rb") as handle:
            header = handle.read(8)
    return int.from_bytes(header[4:8], "big")


@dataclass(frozen=True)
class DatasetSpec:
    read: Callable[[object, str], ImageSet | FileList | None]  # an official split ("train" | "test"); None: none
    has_test: Callable[[object], bool]  # whether there is an official test split (else it is carved from train)
    missing: Callable[[object], str | None] = lambda cfg: None  # why the data is unavailable, or None
    missing_test: Callable[[object], str | None] | None = None  # the same when only test is needed (controls)
    size: Callable[[object], int] | None = None  # official training images, without reading them
    decoded: bool = False  # images are files decoded at dataset.image_size (else arrays at their own size)
    class_names: Callable[[object], list[str]] | None = None  # a user's data: the class names its files give


def _lazy(module: str, name: str) -> Callable:
    """``bdunlearn.data.<module>.<name>``, imported on first call (torchvision's datasets are slow to import)."""

    def call(*args, **kwargs):
        return getattr(importlib.import_module(f"bdunlearn.data.{module}"), name)(*args, **kwargs)

    call.__name__ = name
    return call


def _always(value: bool) -> Callable[[object], bool]:
    return lambda cfg: value


def _arrays(name: str, size: bool = False) -> DatasetSpec:
    """A dataset read as arrays by ``arrays.<name>``, with ``<name>_missing`` (and ``<name>_train_size``)."""
    return DatasetSpec(
        read=_lazy("arrays", name), has_test=_always(True), missing=_lazy("arrays", f"{name}_missing"),
        size=_lazy("arrays", f"{name}_train_size") if size else None,
    )  # fmt: skip


def _files(name: str, has_test: Callable[[object], bool] | None = None, missing_test: bool = False) -> DatasetSpec:
    """A dataset listed by ``files.<name>`` and decoded, with ``<name>_missing`` (and ``<name>_test_missing``)."""
    return DatasetSpec(
        read=_lazy("files", name), has_test=has_test or _always(True), missing=_lazy("files", f"{name}_missing"),
        missing_test=_lazy("files", f"{name}_test_missing") if missing_test else None, decoded=True,
    )  # fmt: skip


def _user_data(module: str) -> DatasetSpec:
    """A user's own images (``folder.py``, ``labelled_csv.py``): decoded, classes named by the data."""
    return DatasetSpec(
        read=_lazy(module, "read"), has_test=_lazy(module, "has_test"), missing=_lazy(module, "missing"),
        decoded=True, class_names=_lazy(module, "class_names"),
    )  # fmt: skip


REGISTRY: dict[str, DatasetSpec] = {
    "digits": DatasetSpec(read=_digits, has_test=_always(False), size=_digits_size),
    "fashion_mnist": DatasetSpec(read=_fashion_mnist, has_test=_always(True), missing=_fashion_missing, size=_fashion_train_size),
    "mnist": _arrays("mnist", size=True),
    "svhn": _arrays("svhn", size=True),
    "cifar10": _arrays("cifar10"),
    "cifar100": _arrays("cifar100"),
    "gtsrb": _files("gtsrb"),
    "dtd": _files("dtd"),
    "eurosat": _files("eurosat", has_test=_always(False)),
    "sun397": _files("sun397", has_test=_lazy("files", "sun397_has_test")),
    "cars": _files("cars"),
    "resisc45": _files("resisc45"),
    "imagenet": _files("imagenet", missing_test=True),
    "folder": _user_data("folder"),
    "csv": _user_data("labelled_csv"),
}  # fmt: skip


def _spec(cfg) -> DatasetSpec:
    if cfg.name not in REGISTRY:
        raise UserError(f"no loader for dataset {cfg.name!r}; known: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[cfg.name]


def check_available(cfg, need_train: bool = True) -> None:
    """Fail before any compute if the data for ``cfg`` cannot be read (only its test split: ``need_train=False``)."""
    spec = _spec(cfg)
    missing = spec.missing if need_train or spec.missing_test is None else spec.missing_test
    reason = missing(cfg)
    if reason:
        raise UserError(reason)


def with_class_names(cfg):
    """``cfg`` with ``class_names`` filled in from the data where the dataset names its classes itself (a user's
    folder or CSV) and the config leaves them empty; otherwise ``cfg`` itself. UserError if the data is unusable."""
    spec = _spec(cfg)
    if spec.class_names is None or cfg.class_names:
        return cfg
    check_available(cfg)
    from dataclasses import replace

    return replace(cfg, class_names=spec.class_names(cfg))


def files_fingerprint(cfg) -> str | None:
    """What identifies a user's own data, whose name (folder, csv) says nothing about its content: a hash of each
    listed file's path (relative to the data's folder), label, size and modification time, train and test.
    None for the registry's datasets. For cache keys of anything trained on the data."""
    if _spec(cfg).class_names is None:
        return None
    import hashlib

    root = Path(cfg.root).expanduser()
    base = root if root.is_dir() else root.parent
    digest = hashlib.sha256()
    for split in ("train", "test"):
        listing = read(cfg, split)
        for path, label in zip(listing.paths, listing.labels, strict=True) if listing is not None else ():
            stat = os.stat(path)
            digest.update(f"{split}\t{os.path.relpath(path, base)}\t{label}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def has_official_test(cfg) -> bool:
    return _spec(cfg).has_test(cfg)


def is_decoded(cfg) -> bool:
    """Whether the dataset's images are files decoded at ``dataset.image_size`` (rather than arrays)."""
    return _spec(cfg).decoded


_LISTINGS: dict[str, FileList] = {}  # file listings of this process (validation and loading list once)


def _per_class(listing: FileList, limit: int, seed: int) -> FileList:
    """At most ``limit`` files per class, drawn reproducibly (``seed``), in their listing order."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.tensor(listing.labels)
    keep = []
    for label in torch.unique(labels):
        members = torch.nonzero(labels == label).flatten()
        keep += members[torch.randperm(len(members), generator=generator)[:limit]].tolist()
    return listing.subset(sorted(keep))


def read(cfg, split: str) -> ImageSet | FileList | None:
    """One official split as arrays or as a file listing (not decoded); None if the dataset has no such split."""
    spec = _spec(cfg)
    if not spec.decoded:
        return spec.read(cfg, split)
    limit = cfg.max_train_per_class if split == "train" else None
    key = json.dumps(
        [cfg.name, str(Path(cfg.root).expanduser().resolve()), split, cfg.partition, list(cfg.class_names),
         cfg.class_folders, limit, cfg.splits.seed],
        default=str,
    )  # fmt: skip
    if key not in _LISTINGS:
        listing = spec.read(cfg, split)
        if listing is not None and limit is not None:
            listing = _per_class(listing, limit, cfg.splits.seed)
        if listing is None:
            return None
        _LISTINGS[key] = listing
    return _LISTINGS[key]


def materialise(part: ImageSet | FileList, cfg, split: str, cache_dir: str | Path | None) -> ImageSet:
    """Arrays as they are; a file listing decoded at ``cfg.image_size`` (through the decoded cache)."""
    if isinstance(part, ImageSet):
        return part
    if cfg.image_size is None:
        raise ValueError(f"dataset {cfg.name}: image_size is unset (validate() sets it to the model's input size)")
    return decode(
        part, cfg.image_size, dataset=cfg.name, split=split, root=str(Path(cfg.root).expanduser()),
        num_workers=cfg.num_workers, cache_dir=cache_dir,
    )  # fmt: skip


def train_size(cfg) -> tuple[int, bool]:
    """(number of official training images, whether there is an official test split), for validation."""
    check_available(cfg)
    spec = _spec(cfg)
    if spec.size is not None and not cfg.download:
        return spec.size(cfg), spec.has_test(cfg)
    return len(read(cfg, "train")), spec.has_test(cfg)


def load(cfg, cache_dir: str | Path | None = None) -> RawDataset:
    """The official train (and test) split as uint8 images; file datasets decoded through ``cache_dir``."""
    check_available(cfg)
    test = read(cfg, "test") if _spec(cfg).has_test(cfg) else None
    return RawDataset(
        train=materialise(read(cfg, "train"), cfg, "train", cache_dir),
        test=materialise(test, cfg, "test", cache_dir) if test is not None else None,
    )


def load_official_test(cfg, cache_dir: str | Path | None = None) -> ImageSet | None:
    """The official test split alone (None if the dataset has none), without reading the training images."""
    if not _spec(cfg).has_test(cfg):
        return None
    check_available(cfg, need_train=False)
    return materialise(read(cfg, "test"), cfg, "test", cache_dir)


def at_model_size(cfg, image_size: int | None):
    """``cfg`` with ``image_size`` (the model's input size) filled in if its images are decoded from files and it
    names no size of its own; datasets read as arrays keep their own size."""
    from dataclasses import replace

    if image_size is None or cfg.image_size is not None or not is_decoded(cfg):
        return cfg
    return replace(cfg, image_size=image_size)
