"""Hugging Face parquet exports of image datasets turned into the on-disk layouts the loaders read
(``files.cars``: torchvision's Stanford Cars; ``files.resisc45``: class folders and split lists).

A parquet file written by the ``datasets`` library has an image column (a struct of the encoded ``bytes`` and
the original ``path``) and a ``label`` column, and keeps the class names in its schema metadata
(``huggingface`` → info → features → label → names). Images are written as they are stored, never re-encoded.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from bdunlearn.errors import UserError

EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "PPM": "ppm", "BMP": "bmp", "WEBP": "webp", "TIFF": "tif"}


def split_of(path: Path) -> str:
    """The split a parquet export file belongs to (its folder: ``default/<split>/0000.parquet``)."""
    return path.parent.name


def class_names(path: Path) -> list[str]:
    import pyarrow.parquet as pq

    metadata = pq.read_schema(path).metadata or {}
    try:
        features = json.loads(metadata[b"huggingface"])["info"]["features"]
        return list(features["label"]["names"])
    except (KeyError, ValueError, TypeError) as exc:
        raise UserError(f"{path} carries no class names (huggingface metadata, feature 'label'); is it a datasets export?") from exc


def rows(path: Path) -> Iterator[tuple[bytes, str | None, int]]:
    """(encoded image, original file name or None, label) of every row, read in batches."""
    import pyarrow.parquet as pq

    handle = pq.ParquetFile(path)
    names = handle.schema_arrow.names
    image = next((n for n in ("image", "img") if n in names), None)
    if image is None or "label" not in names:
        raise UserError(f"{path} has no image/label columns (columns: {', '.join(names)})")
    for batch in handle.iter_batches(batch_size=256, columns=[image, "label"]):
        for record, label in zip(batch.column(image).to_pylist(), batch.column("label").to_pylist(), strict=True):
            yield record["bytes"], record.get("path"), int(label)


def extension(data: bytes) -> str:
    from io import BytesIO

    from PIL import Image

    try:
        with Image.open(BytesIO(data)) as image:
            return EXTENSIONS.get(image.format or "", "png")
    except OSError as exc:
        raise UserError(f"an image of the download cannot be decoded ({exc}); delete the cached files and fetch again") from exc


def _file_name(original: str | None, split: str, number: int, data: bytes) -> str:
    if original and "/" not in original and original not in (".", ".."):
        return original
    return f"{split}_{number:06d}.{extension(data)}"


def _splits(files: list[Path]) -> dict[str, list[Path]]:
    found: dict[str, list[Path]] = {}
    for path in sorted(files):
        found.setdefault(split_of(path), []).append(path)
    if not {"train", "test"} <= set(found):
        raise UserError(f"the download lacks a train or a test split (found: {', '.join(sorted(found))})")
    return found


def resisc45(files: list[Path], root: Path) -> None:
    """``resisc45/NWPU-RESISC45/<class>/<file>`` and ``resisc45/resisc45-{train,test}.txt`` (file names)."""
    base = root / "resisc45"
    for split, parts in _splits(files).items():
        names = class_names(parts[0])
        listed = []
        for part in parts:
            for number, (data, original, label) in enumerate(rows(part), start=len(listed)):
                folder = base / "NWPU-RESISC45" / names[label].replace(" ", "_")
                folder.mkdir(parents=True, exist_ok=True)
                name = _file_name(original, split, number, data)
                (folder / name).write_bytes(data)
                listed.append(name)
        (base / f"resisc45-{split}.txt").write_text("".join(f"{n}\n" for n in listed))


def cars(files: list[Path], root: Path) -> None:
    """torchvision's Stanford Cars: ``stanford_cars/cars_{train,test}/*.jpg``, ``devkit/cars_meta.mat``,
    ``devkit/cars_train_annos.mat`` and ``cars_test_annos_withlabels.mat`` (fname, 1-based class)."""
    import numpy as np
    from scipy.io import savemat

    base = root / "stanford_cars"
    (base / "devkit").mkdir(parents=True, exist_ok=True)
    names = None
    for split, parts in _splits(files).items():
        names = names or class_names(parts[0])
        folder = base / f"cars_{split}"
        folder.mkdir(exist_ok=True)
        annotations = []
        for part in parts:
            for number, (data, original, label) in enumerate(rows(part), start=len(annotations)):
                name = _file_name(original, split, number, data)
                (folder / name).write_bytes(data)
                annotations.append((name, label + 1))
        table = np.array(annotations, dtype=[("fname", object), ("class", object)])
        target = base / "devkit" / "cars_train_annos.mat" if split == "train" else base / "cars_test_annos_withlabels.mat"
        savemat(str(target), {"annotations": table})
    savemat(str(base / "devkit" / "cars_meta.mat"), {"class_names": np.array(names, dtype=object)})
