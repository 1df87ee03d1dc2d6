"""Image–caption files as open_clip's training data uses them: a CSV or TSV with an image-path column
(``filepath``) and a caption column (``title``); relative image paths are read under an image root.

Images are decoded once (``decoded.decode``: shorter side resized, centre crop) into uint8 tensors at the
model's resolution and cached as ``.npy`` beside the other decoded datasets.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from bdunlearn.errors import UserError

DEFAULT_IMAGE_KEY = "filepath"  # open_clip's --csv-img-key
DEFAULT_CAPTION_KEY = "title"  # open_clip's --csv-caption-key


@dataclass(frozen=True)
class CaptionFile:
    """Where the pairs are and how the file is laid out (``separator`` None: tab for .tsv, else comma)."""

    path: str
    image_root: str | None = None  # relative image paths are under this folder (None: the file's folder)
    image_key: str = DEFAULT_IMAGE_KEY
    caption_key: str = DEFAULT_CAPTION_KEY
    separator: str | None = None

    def root(self) -> Path:
        return Path(self.image_root).expanduser() if self.image_root else Path(self.path).expanduser().parent

    def delimiter(self) -> str:
        if self.separator:
            return self.separator
        return "\t" if Path(self.path).suffix.lower() == ".tsv" else ","


def missing(spec: CaptionFile) -> str | None:
    """Why the caption file cannot be read (a one-line message), or None."""
    path = Path(spec.path).expanduser()
    if not path.is_file():
        return f"caption file {spec.path} not found; set contrastive.csv to a CSV/TSV with columns {spec.image_key}, {spec.caption_key}"
    if not spec.root().is_dir():
        return f"contrastive.image_root={spec.image_root}: no such folder (the caption file's image paths are read under it)"
    return None


def read_pairs(spec: CaptionFile) -> tuple[list[str], list[str]]:
    """(image paths resolved under the image root, captions), in file order; a malformed file is a UserError."""
    reason = missing(spec)
    if reason:
        raise UserError(reason)
    root = spec.root()
    paths, captions = [], []
    with open(Path(spec.path).expanduser(), newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle, delimiter=spec.delimiter())
        absent = [key for key in (spec.image_key, spec.caption_key) if key not in (reader.fieldnames or [])]
        if absent:
            raise UserError(
                f"caption file {spec.path} has no column {absent[0]!r} (columns: {', '.join(reader.fieldnames or [])}); "
                "set contrastive.image_key / contrastive.caption_key (or contrastive.separator)"
            )
        for row in reader:
            image, caption = row[spec.image_key], row[spec.caption_key]
            if not image or caption is None:
                raise UserError(f"caption file {spec.path}: line {reader.line_num} lacks an image path or a caption")
            paths.append(str(root / image))
            captions.append(caption)
    if not paths:
        raise UserError(f"caption file {spec.path} holds no pairs")
    return paths, captions


def count_pairs(spec: CaptionFile) -> int:
    return len(read_pairs(spec)[0])


def load_images(paths: list[str], spec: CaptionFile, size: int, num_workers: int, cache_dir: str | None):
    """uint8 [N, 3, size, size] of the pairs' images (decoded once, cached under ``cache_dir``)."""
    from bdunlearn.data.decoded import FileList, decode

    missing_file = next((p for p in paths if not Path(p).is_file()), None)
    if missing_file is not None:
        raise UserError(f"caption file {spec.path}: image {missing_file} not found; check contrastive.image_root")
    files = FileList(tuple(paths), (0,) * len(paths))
    name = f"captions-{Path(spec.path).stem}"
    decoded = decode(files, size, dataset=name, split="pairs", root=str(spec.root()), num_workers=num_workers, cache_dir=cache_dir)
    return decoded.images
