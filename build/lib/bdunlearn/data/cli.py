"""``bdunlearn-data``: prepare data on disk.

  bdunlearn-data shards SRC OUT [--maxcount N]   a caption CSV/TSV (open_clip's filepath,title) or a folder of
                                                 class subfolders, written as webdataset tar shards
  bdunlearn-data fetch NAME [--root DIR]         download one of the paper's datasets, verified, laid out for
                                                 its loader under DIR (dataset.root)

A mistake a user can fix is one line, ``bdunlearn-data: error: ...``, exit status 2.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from bdunlearn.errors import UserError

PROG = "bdunlearn-data"


def _class_folder_samples(src: Path) -> tuple[list[tuple[str, int]], list[str]]:
    from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

    try:
        classes, class_to_idx = find_classes(str(src))
    except FileNotFoundError as exc:
        raise UserError(f"{src} has no class subfolders; give a folder of <class>/<image> files or a caption CSV/TSV") from exc
    samples = make_dataset(str(src), class_to_idx, extensions=IMG_EXTENSIONS, allow_empty=True)
    return [(path, label) for path, label in samples], classes


def _caption_samples(src: Path, args) -> list[tuple[str, str]]:
    from bdunlearn.data.caption_csv import CaptionFile, read_pairs

    paths, captions = read_pairs(CaptionFile(str(src), args.image_root, args.image_key, args.caption_key, args.separator))
    return list(zip(paths, captions, strict=True))


def _encoded(samples: list[tuple[str, int | str]], order: np.ndarray) -> Iterator[tuple[str, bytes, int | str]]:
    for i in order:
        path, target = samples[i]
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise UserError(f"cannot read {path} ({exc.strerror}); fix the listing or the image root") from exc
        yield Path(path).suffix.lower().lstrip(".") or "jpg", data, target


def shards(args) -> None:
    from bdunlearn.data.shards import check_unused, write_shards

    check_unused(args.out)
    src = Path(args.src).expanduser()
    if src.is_dir():
        samples, classes = _class_folder_samples(src)
        kind = "classes"
    elif src.is_file():
        samples, classes, kind = _caption_samples(src, args), [], "captions"
    else:
        raise UserError(f"{src} does not exist; give a caption CSV/TSV or a folder of class subfolders")
    if not samples:
        raise UserError(f"no images found in {src}")
    # shards are read in order through a bounded shuffle buffer, so they must already be in random order
    order = np.arange(len(samples)) if args.keep_order else np.random.default_rng(args.seed).permutation(len(samples))
    written = write_shards(_encoded(samples, order), args.out, args.maxcount, kind, tuple(classes))
    print(f"{len(written)} {kind} samples in {len(written.files)} shards under {written.folder}")


def fetch(args) -> None:
    from bdunlearn.data.fetch import SOURCES
    from bdunlearn.data.fetch import fetch as fetch_dataset

    root = args.root or os.environ.get("BDUNLEARN_DATA_DIR", "data")
    if args.name in SOURCES:
        print(f"fetching {args.name} (about {SOURCES[args.name].size}) into {root}", flush=True)
    base = fetch_dataset(args.name, root, mirror=args.mirror, keep_downloads=args.keep_downloads)
    print(f"{args.name} is laid out under {base}; run with dataset={args.name} dataset.root={base}")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog=PROG, description="Prepare data on disk for bdunlearn.")
    commands = top.add_subparsers(dest="command", required=True)

    cmd = commands.add_parser("shards", help="write a caption CSV/TSV or a class-folder dataset as webdataset tar shards")
    cmd.add_argument("src", help="CSV/TSV with image-path and caption columns, or a folder of <class>/<image> files")
    cmd.add_argument("out", help="empty folder for shard-NNNNNN.tar and manifest.json")
    cmd.add_argument("--maxcount", type=int, default=10000, help="samples per shard (default 10000)")
    cmd.add_argument("--seed", type=int, default=0, help="the shuffle of the samples across shards (default 0)")
    cmd.add_argument("--keep-order", action="store_true", help="keep the listing order instead of shuffling")
    cmd.add_argument("--image-root", default=None, help="folder relative image paths of the CSV are read under")
    cmd.add_argument("--image-key", default="filepath", help="image-path column (open_clip's --csv-img-key)")
    cmd.add_argument("--caption-key", default="title", help="caption column (open_clip's --csv-caption-key)")
    cmd.add_argument("--separator", default=None, help="column separator (default: tab for .tsv, else comma)")
    cmd.set_defaults(run=shards)

    cmd = commands.add_parser("fetch", help="download one of the paper's datasets, verified, laid out for its loader")
    cmd.add_argument("name", help="dataset name, as in dataset=NAME")
    cmd.add_argument("--root", default=None, help="dataset.root to lay it out under (default: $BDUNLEARN_DATA_DIR or ./data)")
    cmd.add_argument("--mirror", default=None, help="a folder or URL holding <host>/<path> copies of the download URLs")
    cmd.add_argument("--keep-downloads", action="store_true", help="keep the verified archives under ROOT/.downloads")
    cmd.set_defaults(run=fetch)
    return top


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    top = parser()
    args = top.parse_args(argv)
    if getattr(args, "maxcount", 1) < 1:
        top.error("--maxcount must be at least 1")
    try:
        args.run(args)
    except UserError as exc:
        top.exit(2, f"{PROG}: error: {exc}\n")
    except KeyboardInterrupt:
        top.exit(130, f"{PROG}: interrupted\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
