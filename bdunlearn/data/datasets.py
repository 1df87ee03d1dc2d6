"""Dataset registry: each dataset's official train (and test) split as uint8 image tensors.

A dataset is read either as arrays (scikit-learn's digits, the MNIST family, CIFAR, SVHN: held at their own
size) or as a listing of image files (``files.py``) that is decoded once at ``dataset.image_size`` through the
decoded cache (``decoded.py``).
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from bdunlearn.data import bundled
from bdunlearn.data.decoded import FileList, decode
from bdunlearn.data.images import ImageSet
from bdunlearn.errors import UserError


@dataclass
class RawDataset:
    train: ImageSet
    test: ImageSet | None  # None: the dataset has no official test split; it is carved from train


@dataclass(frozen=True)
class DatasetSpec:
    read: Callable[[object, str], ImageSet | FileList | None]  # an official split ("train" | "test"); None: none
    has_test: Callable[[object], bool]  # whether there is an official test split (else it is carved from train)
    missing: Callable[[object], str | None] = lambda cfg: None  # why the data is unavailable, or None
    missing_test: Callable[[object], str | None] | None = None  # the same when only test is needed (controls)
    size: Callable[[object], int] | None = None  # official training images, without reading them
    decoded: bool = False  # images are files decoded at dataset.image_size (else arrays at their own size)
    class_names: Callable[[object], list[str]] | None = None  # a user's data: the class names its files give
    fingerprint: Callable[[object], str] | None = None  # a user's data not listed file by file: its digest
    sharded: bool = False  # read() gives a webdataset shard set, always streamed


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
    "digits": DatasetSpec(read=bundled.digits, has_test=_always(False), size=bundled.digits_size),
    "fashion_mnist": DatasetSpec(
        read=bundled.fashion_mnist, has_test=_always(True), missing=bundled.fashion_missing, size=bundled.fashion_train_size
    ),
    "shapes": DatasetSpec(
        read=_lazy("procedural", "shapes"), has_test=_always(True), size=_lazy("procedural", "shapes_size"),
        class_names=_lazy("procedural", "class_names"),
    ),
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
    "shards": DatasetSpec(
        read=_lazy("shard_dataset", "read"), has_test=_lazy("shard_dataset", "has_test"),
        missing=_lazy("shard_dataset", "missing"), decoded=True, class_names=_lazy("shard_dataset", "class_names"),
        fingerprint=_lazy("shard_dataset", "fingerprint"), sharded=True,
    ),
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
    spec = _spec(cfg)
    if spec.fingerprint is not None:
        return spec.fingerprint(cfg)
    if spec.class_names is None or not spec.decoded:  # generated data (shapes) is its own name
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


def is_sharded(cfg) -> bool:
    """Whether the dataset is a webdataset shard set (read in order: streamed, never held in memory)."""
    return _spec(cfg).sharded


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
