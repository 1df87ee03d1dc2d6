"""Image files decoded once into uint8 tensors at a fixed storage size, and kept on disk for later runs.

Datasets that ship as JPEG/PNG/PPM files are decoded in parallel (a torch DataLoader with workers), each image
resized so its shorter side is the storage size (bicubic, antialiased) and centre-cropped to a square, the
eval transform of open_clip's published models. The result, uint8 [N, 3, S, S] in the order of the file
list, is written as one ``.npy`` file under the cache directory, keyed by the dataset's root, the file list
(paths and labels), the storage size and the recipe's version, so later runs (and every epoch of a run) read
pixels instead of decoding files. Labels are not stored: they come with the file list.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from filelock import FileLock
from tqdm.auto import tqdm

from bdunlearn.atomic import atomic_path
from bdunlearn.data.images import ImageSet
from bdunlearn.errors import UserError

log = logging.getLogger(__name__)

RECIPE_VERSION = 1  # bump when the resize/crop recipe changes, so old cache files are not reused
DECODE_BATCH = 64


@dataclass(frozen=True)
class FileList:
    """Image files of one split and their labels (indices into the dataset config's ``class_names``)."""

    paths: tuple[str, ...]
    labels: tuple[int, ...]

    def __post_init__(self):
        if len(self.paths) != len(self.labels):
            raise ValueError(f"{len(self.paths)} paths but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, index: Sequence[int]) -> FileList:
        return FileList(tuple(self.paths[i] for i in index), tuple(self.labels[i] for i in index))

    def fingerprint(self, root: str) -> str:
        """Hash of the paths (relative to ``root``) and labels: what decides the decoded tensor's content."""
        digest = hashlib.sha256()
        for path, label in zip(self.paths, self.labels, strict=True):
            digest.update(f"{os.path.relpath(path, root)}\t{label}\n".encode())
        return digest.hexdigest()


def storage_image(path: str, size: int) -> torch.Tensor:
    """One image file → uint8 [3, size, size]: shorter side resized to ``size`` (bicubic), centre crop."""
    from PIL import Image
    from torchvision.transforms.v2 import InterpolationMode
    from torchvision.transforms.v2 import functional as TF

    with Image.open(path) as image:
        image = image.convert("RGB")
        image = TF.resize(image, size, interpolation=InterpolationMode.BICUBIC, antialias=True)
        image = TF.center_crop(image, [size, size])
        return TF.pil_to_tensor(image)


class _Files(torch.utils.data.Dataset):
    """(image, readable) per file; an unreadable file gives zeros and False, reported by the caller (an
    exception raised in a worker process would reach the user as a multi-line traceback)."""

    def __init__(self, paths: Sequence[str], size: int):
        self.paths = paths
        self.size = size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, bool]:
        try:
            return storage_image(self.paths[index], self.size), True
        except (OSError, ValueError):
            return torch.zeros(3, self.size, self.size, dtype=torch.uint8), False


def _decode_into(out: np.ndarray, files: FileList, size: int, num_workers: int, desc: str) -> None:
    loader = torch.utils.data.DataLoader(
        _Files(files.paths, size), batch_size=DECODE_BATCH, shuffle=False, num_workers=num_workers
    )
    start = 0
    for images, readable in tqdm(loader, desc=desc, leave=False, dynamic_ncols=True, mininterval=1.0, disable=None):
        if not bool(readable.all()):
            bad = files.paths[start + int(torch.nonzero(~readable)[0])]
            raise UserError(f"cannot decode image {bad}; replace or remove the file")
        out[start : start + len(images)] = images.numpy()
        start += len(images)


def _read_npy(path: Path, shape: tuple[int, ...], pin: bool) -> torch.Tensor | None:
    """The uint8 array stored at ``path`` as a tensor (page-locked if ``pin``), or None if it does not fit."""
    try:
        stored = np.load(path, mmap_mode="r")
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable decoded cache %s (%s)", path, exc)
        return None
    if stored.dtype != np.uint8 or stored.shape != shape:
        log.warning("ignoring decoded cache %s: shape %s, expected %s", path, stored.shape, shape)
        return None
    out = torch.empty(shape, dtype=torch.uint8, pin_memory=pin)
    out.numpy()[...] = stored  # one copy from the page cache into (pinned) memory
    return out


def cache_file(cache_dir: str | Path, dataset: str, split: str, root: str, files: FileList, size: int) -> Path:
    key = hashlib.sha256(
        f"{RECIPE_VERSION}|{Path(root).expanduser().resolve()}|{size}|{files.fingerprint(root)}".encode()
    ).hexdigest()[:16]
    return Path(cache_dir).expanduser() / "decoded" / dataset / f"{split}-{size}px-{key}.npy"


def decode(
    files: FileList,
    size: int,
    *,
    dataset: str,
    split: str,
    root: str,
    num_workers: int,
    cache_dir: str | Path | None,
) -> ImageSet:
    """The images of ``files`` as uint8 [N, 3, size, size] with their labels.

    With ``cache_dir`` the decoded array is read from (or written once to) a ``.npy`` file there; concurrent
    runs decode a dataset once (file lock). On a CUDA machine the returned images are in page-locked memory,
    so the one copy of the whole split to the GPU runs at full bandwidth.
    """
    shape = (len(files), 3, size, size)
    pin = torch.cuda.is_available()
    labels = torch.tensor(files.labels, dtype=torch.long)
    desc = f"decoding {dataset}/{split} to {size}px"
    if cache_dir is None:
        images = torch.empty(shape, dtype=torch.uint8, pin_memory=pin)
        _decode_into(images.numpy(), files, size, num_workers, desc)
        return ImageSet(images, labels)
    path = cache_file(cache_dir, dataset, split, root, files, size)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        if path.is_file():
            images = _read_npy(path, shape, pin)
            if images is not None:
                return ImageSet(images, labels)
        log.info("%s: %d images with %d workers, cached at %s", desc, len(files), num_workers, path)
        tmp = atomic_path(path)
        try:
            array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
            _decode_into(array, files, size, num_workers, desc)
            array.flush()
            del array
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    images = _read_npy(path, shape, pin)
    if images is None:
        raise RuntimeError(f"decoded cache {path} could not be read back")
    return ImageSet(images, labels)
