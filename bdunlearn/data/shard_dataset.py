"""A user's own labelled images as webdataset tar shards (``dataset=shards``), as ``bdunlearn-data shards`` writes
them from a folder of class subfolders.

Layouts under ``dataset.root``:

- one shard set (``shard-NNNNNN.tar`` with ``manifest.json``): no official test split, so test, validation and
  the defender's pool are carved from the samples by ``dataset.splits``, as for ``dataset=folder``;
- ``train/`` plus ``test/`` (or ``val/``), each a shard set (``bdunlearn-data shards SRC/train ROOT/train`` and
  the same for the test folder): the held-out set is the official test split.

Sample i of a split is the i-th sample over its shards in the manifest's order, whichever worker reads it; the
splits are carved, and items poisoned, by that index. Classes are the manifest's class names (the class folders
the shards were written from, sorted); their names in prompts come from ``dataset.class_names``, else
``classnames.txt`` / ``classnames.yaml`` in ``dataset.root``, else the manifest's names with ``_`` read as a
space. Shards are always streamed (``sources.resolve_storage``).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from bdunlearn.data import folder
from bdunlearn.data import shards as shard_io
from bdunlearn.data.classnames import underscores_to_spaces
from bdunlearn.errors import UserError, message_of


def _write(where: Path) -> str:
    return f"write them with `bdunlearn-data shards SRC {where}` from a folder of class subfolders"


def _holds_shards(where: Path) -> bool:
    return (where / shard_io.MANIFEST).is_file() or any(where.glob("*.tar"))


def shard_folders(cfg) -> tuple[Path, Path | None]:
    """(folder of the training shards, folder of the test shards or None)."""
    root = folder.root_of(cfg)
    if not root.is_dir():
        what = "does not exist" if not root.exists() else "is not a folder"
        raise UserError(f"dataset=shards: dataset.root={cfg.root} {what}; set it to a folder of shards ({_write('DIR')})")
    if _holds_shards(root):
        return root, None
    present = folder.subfolders(root)
    held_out = next((root / name for name in folder.HELD_OUT_FOLDERS if name in present), None)
    if "train" not in present:
        if held_out is not None:
            raise UserError(f"dataset=shards: {root} has {held_out.name}/ but no train/; {_write(root / 'train')}")
        raise UserError(f"dataset=shards: dataset.root={root} holds no shards (*.tar); {_write(root)}")
    return root / "train", held_out


def _opened(where: Path) -> shard_io.ShardSet:
    if not _holds_shards(where):
        raise UserError(f"dataset=shards: {where} holds no shards (*.tar); {_write(where)}, or remove it")
    shards = shard_io.open_shards(where)
    if shards.kind != "classes":
        raise UserError(f"dataset=shards: the shards in {where} hold captions, not class labels; {_write(where)}")
    return shards


def read(cfg, split: str) -> shard_io.ShardSet | None:
    """The shard set of one split (None: no official test split)."""
    train, held_out = shard_folders(cfg)
    where = train if split == "train" else held_out
    return None if where is None else _opened(where)


def has_test(cfg) -> bool:
    return shard_folders(cfg)[1] is not None


def _class_keys(cfg) -> list[str]:
    """The classes of the training shards, in label order: the manifest's names, or label numbers for shards
    without them when the user names the classes."""
    train = read(cfg, "train")
    if train.class_names:
        return list(train.class_names)
    root = folder.root_of(cfg)
    if not cfg.class_names and folder.read_class_list(root) is None:
        raise UserError(
            f"dataset=shards: the shards in {train.folder} carry no class names (no manifest.json from bdunlearn-data "
            f"shards); name the classes in dataset.class_names or classnames.txt in {root}"
        )
    return [str(label) for label in range(int(shard_io.shard_labels(train).max()) + 1)]


def class_names(cfg) -> list[str]:
    """Names of the classes, in label order, for the zero-shot prompts (see the module's docstring)."""
    keys = _class_keys(cfg)
    listed = None if cfg.class_names else folder.read_class_list(folder.root_of(cfg))
    return folder.names_for(keys, list(cfg.class_names), listed, folder.root_of(cfg), underscores_to_spaces)


def check(cfg) -> None:
    """Every mistake in the shard folders' structure, as a one-line UserError, from manifests and listings."""
    names = class_names(cfg)
    test = read(cfg, "test")
    train = read(cfg, "train")
    if test is not None and test.class_names and train.class_names and test.class_names != train.class_names:
        raise UserError(
            f"dataset=shards: the test shards in {test.folder} have classes {', '.join(test.class_names[:5])} but the "
            f"training shards {', '.join(train.class_names[:5])}; write both from folders with the same class subfolders"
        )
    if not names:
        raise UserError(f"dataset=shards: no classes in {train.folder}")


def missing(cfg) -> str | None:
    return message_of(check, cfg)


def fingerprint(cfg) -> str:
    """A digest of the shard files of both splits (names relative to dataset.root, sizes, modification times),
    with the manifest and the labels file: what the cache keys for data whose name says nothing of its content."""
    root = folder.root_of(cfg)
    digest = hashlib.sha256()
    for split in ("train", "test"):
        shards = read(cfg, split)
        if shards is None:
            continue
        base = Path(shards.folder)
        extra = [name for name in (shard_io.MANIFEST, shard_io.LABELS) if (base / name).is_file()]
        for name in (*shards.files, *extra):
            stat = os.stat(base / name)
            digest.update(f"{split}\t{os.path.relpath(base / name, root)}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()
