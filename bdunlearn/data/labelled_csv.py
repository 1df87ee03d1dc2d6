"""A user's own labelled images listed in a CSV file (``dataset=csv dataset.root=FILE``).

One row per image: ``path,label`` and optionally ``split`` (``train`` or ``test``), with or without that
header row (with it, the columns may come in any order); ``.tsv`` files are tab-separated. Paths are relative
to the file's folder unless absolute. Rows marked ``test`` form the official test split; without any, test,
validation and the defender's pool are carved from the rows by ``dataset.splits``.

Labels are class names, or integer positions in a class list. Classes (label order) and their names come
from ``dataset.class_names`` or a ``classnames.txt`` / ``classnames.yaml`` beside the file (as for
``dataset=folder``), else the distinct labels sorted (numerically when all are integers).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from bdunlearn.data.decoded import FileList
from bdunlearn.data.folder import is_image, names_for, read_class_list
from bdunlearn.errors import UserError, message_of

COLUMNS = ("path", "label", "split")
SPLITS = ("train", "test")


@dataclass(frozen=True)
class Row:
    line: int
    path: str
    label: str
    split: str


def csv_file(cfg) -> Path:
    path = Path(cfg.root).expanduser()
    if not path.is_file():
        what = "does not exist" if not path.exists() else "is not a file"
        raise UserError(f"dataset={cfg.name}: dataset.root={cfg.root} {what}; set dataset.root to a CSV file of path,label rows")
    return path


def rows(cfg) -> list[Row]:
    """The file's rows, checked: the right number of fields, a known split, an image file that exists."""
    path = csv_file(cfg)
    separator = "\t" if path.suffix.lower() == ".tsv" else ","
    with open(path, newline="", encoding="utf-8-sig") as handle:
        table = [(n, cells) for n, cells in enumerate(csv.reader(handle, delimiter=separator), start=1) if any(c.strip() for c in cells)]
    header = [c.strip().lower() for c in table[0][1]] if table else []
    has_header = header[:2] in (["path", "label"], ["label", "path"]) or set(header) == set(COLUMNS)
    if has_header:
        if set(header) - set(COLUMNS) or len(set(header)) != len(header):
            raise UserError(f"{path}: header {','.join(header)}; use the columns path,label and optionally split")
        order, table = [header.index(c) if c in header else None for c in COLUMNS], table[1:]
    else:
        order = [0, 1, 2]
    found = []
    for line, cells in table:
        if (len(cells) != len(header)) if has_header else (len(cells) not in (2, 3)):
            raise UserError(f"{path} line {line}: {len(cells)} fields; each row is path,label (optionally ,split)")
        path_cell, label, split = (cells[i].strip() if i is not None and i < len(cells) else "" for i in order)
        if not path_cell or not label:
            raise UserError(f"{path} line {line}: empty {'path' if not path_cell else 'label'}; every row names an image and its class")
        split = split.lower() or "train"
        if split not in SPLITS:
            raise UserError(f"{path} line {line}: split {split!r}; use train or test (validation is carved from train)")
        image = Path(path_cell).expanduser()
        image = image if image.is_absolute() else path.parent / image
        if not is_image(image.name) or not image.is_file():
            why = "not found" if not image.is_file() else "not an image file name"
            raise UserError(f"{path} line {line}: image {image} {why}; fix the path (relative to {path.parent})")
        found.append(Row(line, str(image), label, split))
    if not found:
        raise UserError(f"dataset={cfg.name}: {path} lists no images; write one path,label row per image")
    return found


def _label_order(labels: list[str]) -> list[str]:
    if all(label.lstrip("-").isdigit() for label in labels):
        return sorted(labels, key=int)
    return sorted(labels)


def classes(cfg, table: list[Row] | None = None) -> tuple[list[str], dict[str, int]]:
    """(class names in label order, label cell -> label index)."""
    table = rows(cfg) if table is None else table
    path = csv_file(cfg)
    distinct = sorted({row.label for row in table})
    given = list(cfg.class_names) or read_class_list(path.parent)
    if isinstance(given, list):
        if all(label in given for label in distinct):
            index = {label: given.index(label) for label in distinct}
        elif all(label.isdigit() and int(label) < len(given) for label in distinct):
            index = {label: int(label) for label in distinct}
        else:
            bad = next(label for label in distinct if label not in given)
            raise UserError(f"{path}: label {bad!r} is neither a class name in the class list ({len(given)} names) "
                            "nor a position in it; fix the label or the list")  # fmt: skip
        names = given
    else:
        keys = _label_order(distinct)
        names = names_for(keys, [], given, path.parent, lambda key: key)
        index = {label: i for i, label in enumerate(keys)}
    used = sorted(set(index.values()))
    if len(used) < 2:
        raise UserError(f"dataset={cfg.name}: {path} has images of one class ({names[used[0]]!r}); a classifier needs at least two")
    return list(names), index


def class_names(cfg) -> list[str]:
    return classes(cfg)[0]


def check(cfg) -> None:
    """Every mistake in the file (fields, splits, missing images, labels vs the class list), without decoding."""
    if cfg.class_folders:
        raise UserError(f"dataset={cfg.name} takes its classes from the labels; drop dataset.class_folders")
    table = rows(cfg)
    classes(cfg, table)
    if all(row.split == "test" for row in table):
        raise UserError(f"{csv_file(cfg)}: every row is split=test; mark the training images train (or leave split empty)")


def missing(cfg) -> str | None:
    return message_of(check, cfg)


def has_test(cfg) -> bool:
    return any(row.split == "test" for row in rows(cfg))


def read(cfg, split: str) -> FileList | None:
    table = rows(cfg)
    _, index = classes(cfg, table)
    chosen = sorted((row.path, index[row.label]) for row in table if row.split == split)
    if not chosen:
        return None
    return FileList(tuple(p for p, _ in chosen), tuple(label for _, label in chosen))

