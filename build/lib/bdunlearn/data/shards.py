"""webdataset tar shards, the layout open_clip trains from (CC3M as img2dataset writes it).

A shard is a plain tar file whose members are grouped into samples by key, the member name up to the first dot
of its file name: ``{key}.jpg`` (or .png, .ppm, ...) with ``{key}.txt`` (a caption) or ``{key}.cls`` (a class
index). Every sample has a stable index: its position over the shards taken in order, whichever process reads
it. A folder written by ``bdunlearn-data shards`` also holds ``manifest.json`` (the shards, their sample
counts, the class names) and, for class shards, ``labels.npy``; other shard folders are counted by reading
their tar headers once.
"""

from __future__ import annotations

import json
import os
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bdunlearn.errors import UserError

MANIFEST = "manifest.json"
LABELS = "labels.npy"
FORMAT = "bdunlearn-shards/1"
IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "ppm", "webp", "bmp", "tif", "tiff")
SHARD_PATTERN = "shard-%06d.tar"


@dataclass(frozen=True)
class ShardSet:
    """The shards of one folder, in order, with their sample counts."""

    folder: str
    files: tuple[str, ...]
    counts: tuple[int, ...]
    kind: str  # "classes" (.cls labels) | "captions" (.txt captions)
    class_names: tuple[str, ...] = ()

    def __len__(self) -> int:
        return sum(self.counts)

    def path(self, shard: int) -> str:
        return os.path.join(self.folder, self.files[shard])

    def offsets(self) -> np.ndarray:
        """Index of the first sample of every shard."""
        return np.concatenate([[0], np.cumsum(self.counts)[:-1]]).astype(np.int64)


def split_key(name: str) -> tuple[str, str]:
    """(key, extension) of a tar member as webdataset reads it: "a/b.seg.jpg" → ("a/b", "seg.jpg")."""
    folder, _, base = name.rpartition("/")
    stem, _, ext = base.partition(".")
    return (f"{folder}/{stem}" if folder else stem), ext.lower()


def iter_samples(path: str) -> Iterator[dict[str, bytes]]:
    """The samples of one shard in stored order: {"__key__": key, extension: bytes, ...}, read as a stream."""
    sample: dict = {}
    with open(path, "rb") as handle, tarfile.open(fileobj=handle, mode="r|") as tar:
        for member in tar:
            if not member.isfile():
                continue
            key, ext = split_key(member.name)
            if sample and key != sample["__key__"]:
                yield sample
                sample = {}
            sample["__key__"] = key
            sample[ext] = tar.extractfile(member).read()
    if sample:
        yield sample


def image_field(sample: dict) -> bytes | None:
    return next((sample[ext] for ext in IMAGE_EXTENSIONS if ext in sample), None)


def _scan(path: str) -> tuple[int, list[int] | None, bool]:
    """(samples, their .cls labels or None, whether they carry .txt captions) from the tar headers (a seekable
    read: image bytes are skipped, not read)."""
    keys, labels, captions = [], {}, False
    with tarfile.open(path, mode="r:") as tar:
        for member in tar:
            if not member.isfile():
                continue
            key, ext = split_key(member.name)
            if not keys or keys[-1] != key:
                keys.append(key)
            if ext == "cls":
                labels[key] = int(tar.extractfile(member).read().decode().strip())
            captions = captions or ext == "txt"
    return len(keys), ([labels[k] for k in keys] if len(labels) == len(keys) and keys else None), captions


def open_shards(folder: str | Path) -> ShardSet:
    """The shard set in ``folder``: from its manifest, or from every ``*.tar`` in name order."""
    base = Path(folder).expanduser()
    if (base / MANIFEST).is_file():
        manifest = json.loads((base / MANIFEST).read_text())
        files = tuple(entry["file"] for entry in manifest["shards"])
        missing = next((f for f in files if not (base / f).is_file()), None)
        if missing is not None:
            raise UserError(f"shard {base / missing} listed in {base / MANIFEST} is missing; copy it there or rewrite the shards")
        counts = tuple(int(entry["count"]) for entry in manifest["shards"])
        return ShardSet(str(base), files, counts, manifest["kind"], tuple(manifest.get("class_names", ())))
    files = tuple(sorted(p.name for p in base.glob("*.tar"))) if base.is_dir() else ()
    if not files:
        raise UserError(f"no webdataset shards (*.tar) in {base}; write them with `bdunlearn-data shards SRC {base}`")
    scans = [_scan(str(base / f)) for f in files]
    kind = "classes" if all(labels is not None for _, labels, _ in scans) else "captions"
    if kind == "captions" and not all(captions for _, _, captions in scans):
        raise UserError(f"the shards in {base} carry neither .cls labels nor .txt captions for every sample")
    return ShardSet(str(base), files, tuple(count for count, _, _ in scans), kind)


def shard_labels(shards: ShardSet) -> np.ndarray:
    """int64 [N]: the class index of every sample, in sample order (class shards only)."""
    if shards.kind != "classes":
        raise UserError(f"the shards in {shards.folder} hold captions, not class labels")
    stored = Path(shards.folder) / LABELS
    if stored.is_file():
        labels = np.load(stored)
        if len(labels) == len(shards):
            return labels.astype(np.int64)
    labels = [label for i in range(len(shards.files)) for label in (_scan(shards.path(i))[1] or [])]
    if len(labels) != len(shards):
        raise UserError(f"the shards in {shards.folder} do not give every sample a .cls label")
    return np.asarray(labels, dtype=np.int64)


def check_unused(out: str | Path) -> None:
    """Shards are never written over others (a half-overwritten set would mix two datasets)."""
    base = Path(out).expanduser()
    if base.is_dir() and (any(base.glob("*.tar")) or (base / MANIFEST).exists()):
        raise UserError(f"{base} already holds shards; choose an empty folder")


def write_shards(
    samples: Iterable[tuple[str, bytes, int | str]],
    out: str | Path,
    maxcount: int,
    kind: str,
    class_names: tuple[str, ...] = (),
) -> ShardSet:
    """Write (image extension, encoded image bytes, label or caption) samples into ``out/shard-NNNNNN.tar``,
    ``maxcount`` per shard, keyed by their index (the bytes are stored as they are, not re-encoded), with the
    manifest (and ``labels.npy`` for class shards)."""
    import webdataset as wds

    base = Path(out).expanduser()
    check_unused(base)
    base.mkdir(parents=True, exist_ok=True)
    labels, count, written = [], 0, []  # written: (shard file, samples), as each shard is closed

    def closed(fname: str) -> None:
        if sink.count:
            written.append((os.path.basename(fname), sink.count))
        else:
            os.unlink(fname)

    with wds.ShardWriter(str(base / SHARD_PATTERN), maxcount=maxcount, verbose=0, post=closed) as sink:
        for count, (ext, data, target) in enumerate(samples, start=1):
            sample = {"__key__": f"{count - 1:09d}", ext: data}
            if kind == "classes":
                sample["cls"] = int(target)
                labels.append(int(target))
            else:
                sample["txt"] = str(target)
            sink.write(sample)
    if count == 0:
        raise UserError("no samples to write")
    files, counts = zip(*written, strict=True)
    if kind == "classes":
        np.save(base / LABELS, np.asarray(labels, dtype=np.int32))
    manifest = {
        "format": FORMAT, "kind": kind, "class_names": list(class_names), "samples": count,
        "shards": [{"file": f, "count": c} for f, c in zip(files, counts, strict=True)],
    }  # fmt: skip
    (base / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return ShardSet(str(base), tuple(files), tuple(counts), kind, tuple(class_names))
