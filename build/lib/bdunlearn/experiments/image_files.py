"""Helpers of the streaming benchmarks: real image files on disk, and the memory of a process with its workers.

Images come from Debian's Fashion-MNIST (``apt-get install dataset-fashion-mnist``: 70,000 28x28 images) or,
without it, scikit-learn's digits (1,797 8x8 images, repeated to the count asked for).
"""

from __future__ import annotations

import gzip
import os
import threading
import time
from pathlib import Path

import numpy as np

FASHION = Path("/usr/share/datasets/fashion-mnist")


def _idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as handle:
        data = handle.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def source_images(count: int) -> tuple[np.ndarray, np.ndarray, str]:
    """(uint8 [count, H, W] grey images, labels, where they come from)."""
    if (FASHION / "train-images-idx3-ubyte.gz").is_file():
        images = np.concatenate([_idx(FASHION / f"{s}-images-idx3-ubyte.gz") for s in ("train", "t10k")])
        labels = np.concatenate([_idx(FASHION / f"{s}-labels-idx1-ubyte.gz") for s in ("train", "t10k")])
        name = "Fashion-MNIST (Debian)"
    else:
        from sklearn.datasets import load_digits

        digits = load_digits()
        images, labels, name = np.rint(digits.images * 255 / 16).astype(np.uint8), digits.target, "scikit-learn digits"
    reps = -(-count // len(images))
    return np.tile(images, (reps, 1, 1))[:count], np.tile(labels, reps)[:count], name


def write_image_folder(folder: Path, count: int, fmt: str = "png", side: int | None = None):
    """``count`` images as ``folder/<class>/<n>.<fmt>`` (kept when already there); (FileList, source name)."""
    from PIL import Image

    from bdunlearn.data.decoded import FileList

    images, labels, name = source_images(count)
    paths = []
    for i, (pixels, label) in enumerate(zip(images, labels, strict=True)):
        path = folder / f"class{int(label)}" / f"{i:06d}.{fmt}"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            image = Image.fromarray(pixels)
            image = image.resize((side, side), Image.BICUBIC) if side else image
            image.save(path, quality=90) if fmt == "jpg" else image.save(path)
        paths.append(str(path))
    return FileList(tuple(paths), tuple(int(v) for v in labels)), name


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (DataLoader workers), from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            parents.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [pid]
    while todo:
        tree.append(current := todo.pop())
        todo += parents.get(current, [])
    return tree


def _kib(pid: int, path: str, field: str) -> int:
    try:
        with open(f"/proc/{pid}/{path}") as handle:
            return next(int(line.split()[1]) for line in handle if line.startswith(field))
    except (OSError, StopIteration):
        return 0


class TreeMemory:
    """Peak memory of this process and its children while the block runs, sampled every ``interval`` s: the
    sum of their RSS (shared pages counted once per process) and of their PSS (shared pages split)."""

    def __init__(self, interval: float = 0.05):
        self.interval, self.peak_rss, self.peak_pss, self.peak_processes = interval, 0, 0, 0
        self._stop = threading.Event()

    def _sample(self) -> None:
        while not self._stop.is_set():
            pids = _tree(os.getpid())
            self.peak_rss = max(self.peak_rss, 1024 * sum(_kib(p, "status", "VmRSS:") for p in pids))
            self.peak_pss = max(self.peak_pss, 1024 * sum(_kib(p, "smaps_rollup", "Pss:") for p in pids))
            self.peak_processes = max(self.peak_processes, len(pids))
            time.sleep(self.interval)

    def __enter__(self) -> TreeMemory:
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
