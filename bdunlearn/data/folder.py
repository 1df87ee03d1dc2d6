"""A user's own labelled images: a folder with one subfolder per class (``dataset=folder``).

Layouts under ``dataset.root``:

- ``<class>/...`` (image files at any depth below each class folder): no official test split, so test,
  validation and the defender's pool are carved from the images by ``dataset.splits`` (``splits.py``);
- ``train/<class>/...`` plus ``test/<class>/...`` (or ``val/<class>/...``, ImageNet's convention, when there
  is no ``test/``) and no other folders: the held-out folder is the official test split; ``train/`` alone is
  carved as above.

Classes are the folders of the training images in sorted order. Their names in prompts come from, in order:
``dataset.class_names`` (one per folder, in that order), ``classnames.txt`` in ``dataset.root`` (one per line,
same order) or ``classnames.yaml`` (such a list, or a mapping folder -> name), else the folder names with
``_`` read as a space. :func:`check` finds every structural mistake by listing files, without decoding any.
"""

from __future__ import annotations

import os
from pathlib import Path

from torchvision.datasets.folder import IMG_EXTENSIONS

from bdunlearn.data.classnames import underscores_to_spaces
from bdunlearn.data.decoded import FileList
from bdunlearn.errors import UserError, message_of

CLASS_LIST_FILES = ("classnames.txt", "classnames.yaml", "classnames.yml")
HELD_OUT_FOLDERS = ("test", "val")
LAYOUT = "one subfolder per class (or only train/ and test/, each holding them)"


def root_of(cfg) -> Path:
    return Path(cfg.root).expanduser()


def is_image(name: str) -> bool:
    # macOS leaves "._photo.jpg" resource forks beside copied files: hidden files are never images here
    return not name.startswith(".") and name.lower().endswith(IMG_EXTENSIONS)


def images_under(folder: Path) -> list[str]:
    """Image files at any depth below ``folder``, sorted (directory walks differ between file systems, and the
    splits are carved by position)."""
    found = []
    for parent, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found += [os.path.join(parent, name) for name in files if is_image(name)]
    return sorted(found)


def subfolders(folder: Path) -> list[str]:
    return sorted(entry.name for entry in os.scandir(folder) if entry.is_dir() and not entry.name.startswith("."))


def read_class_list(folder: Path) -> list[str] | dict[str, str] | None:
    """The class names a user wrote beside the data: ``classnames.txt`` (a list) or ``classnames.yaml`` (a
    list, or a mapping from folder/label to name); None if there is no such file."""
    present = [folder / name for name in CLASS_LIST_FILES if (folder / name).is_file()]
    if len(present) > 1:
        raise UserError(f"both {present[0]} and {present[1]} name the classes; keep one of them")
    if not present:
        return None
    path = present[0]
    if path.suffix == ".txt":
        return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    import yaml

    try:
        names = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise UserError(f"{path} is not valid YAML ({str(exc).splitlines()[0]}); write a list of class names") from exc
    if isinstance(names, list) and all(isinstance(n, (str, int, float)) for n in names):
        return [str(n) for n in names]
    if isinstance(names, dict) and all(isinstance(n, (str, int, float)) for n in names.values()):
        return {str(k): str(v) for k, v in names.items()}
    raise UserError(f"{path} must hold a list of class names (or a mapping folder: name), one per class")


def names_for(keys: list[str], given: list[str], listed: list[str] | dict[str, str] | None, where: Path, default) -> list[str]:
    """Prompt names for the classes ``keys`` (folder names or CSV labels, in label order): ``given`` (the
    config's list) if any, else the ``classnames`` file's, else ``default(key)``."""
    shown = ", ".join(keys[:5]) + (", ..." if len(keys) > 5 else "")
    if given:
        if len(given) != len(keys):
            raise UserError(
                f"dataset.class_names has {len(given)} names for the {len(keys)} classes under {where} ({shown}); "
                "give one name per class in that (sorted) order, or dataset.class_names=[] to use the classes' own names"
            )
        return list(given)
    source = where / next(n for n in CLASS_LIST_FILES if (where / n).is_file()) if listed is not None else None
    if isinstance(listed, dict):
        missing, extra = sorted(set(keys) - set(listed)), sorted(set(listed) - set(keys))
        if missing or extra:
            problem = f"no entry for class {missing[0]!r}" if missing else f"entry {extra[0]!r} matches no class"
            raise UserError(f"{source}: {problem} (classes: {shown}); map every class, and only those, to a name")
        return [listed[key] for key in keys]
    if isinstance(listed, list):
        if len(listed) != len(keys):
            raise UserError(
                f"{source} lists {len(listed)} class names for the {len(keys)} classes under {where} ({shown}); "
                "write one name per line, in that (sorted) order"
            )
        return listed
    return [default(key) for key in keys]


def split_folders(cfg) -> tuple[Path, Path | None]:
    """(folder holding the training class folders, folder holding the test class folders or None)."""
    root = root_of(cfg)
    if not root.is_dir():
        what = "does not exist" if not root.exists() else "is not a folder"
        raise UserError(f"dataset={cfg.name}: dataset.root={cfg.root} {what}; set dataset.root to a folder with {LAYOUT}")
    present = subfolders(root)
    if not present or not set(present) <= {"train", *HELD_OUT_FOLDERS}:
        return root, None  # class folders (a class may be called "train", as in CIFAR-100)
    if "train" not in present:
        raise UserError(f"dataset={cfg.name}: {root} has {present[0]}/ but no train/; put the training images in {root / 'train'}")
    held_out = next((root / name for name in HELD_OUT_FOLDERS if name in present), None)
    return root / "train", held_out


def class_folders(cfg) -> list[str]:
    """The class folders of the training images (sorted), checked: at least two, each holding an image."""
    train, _ = split_folders(cfg)
    folders = subfolders(train)
    if not folders:
        loose = any(is_image(entry.name) for entry in os.scandir(train))
        fix = "move them into one subfolder per class" if loose else f"fill it with {LAYOUT}"
        raise UserError(f"dataset={cfg.name}: {train} has no class folders{' (only loose images)' if loose else ''}; {fix}")
    if len(folders) < 2:
        raise UserError(f"dataset={cfg.name}: {train} has one class folder ({folders[0]}); a classifier needs at least two classes")
    for name in folders:
        if not _has_image(train / name):
            raise UserError(
                f"dataset={cfg.name}: class folder {train / name} holds no images ({', '.join(IMG_EXTENSIONS)}); "
                "add images or remove the folder"
            )
    return folders


def _has_image(folder: Path) -> bool:
    """Whether any image lies below ``folder`` (stops at the first: a preflight check on a large folder)."""
    for _, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        if any(is_image(name) for name in files):
            return True
    return False


def class_names(cfg) -> list[str]:
    """Names of the classes, in label order, for the zero-shot prompts (see the module's docstring)."""
    folders = class_folders(cfg)
    listed = None if cfg.class_names else read_class_list(root_of(cfg))
    return names_for(folders, list(cfg.class_names), listed, root_of(cfg), underscores_to_spaces)


def check(cfg) -> None:
    """Every mistake in the folder's structure, as a one-line UserError, from file listings alone."""
    if cfg.class_folders:
        raise UserError(f"dataset={cfg.name} takes its classes from the folders; drop dataset.class_folders "
                        "(name the classes in dataset.class_names or classnames.txt)")  # fmt: skip
    class_names(cfg)
    _, held_out = split_folders(cfg)
    if held_out is not None:
        read(cfg, "test")


def missing(cfg) -> str | None:
    return message_of(check, cfg)


def has_test(cfg) -> bool:
    return split_folders(cfg)[1] is not None


def read(cfg, split: str) -> FileList | None:
    """The images of one split with labels (positions of their class folders among the training folders)."""
    train, held_out = split_folders(cfg)
    folder = train if split == "train" else held_out
    if folder is None:
        return None
    label = {name: i for i, name in enumerate(class_folders(cfg))}
    present = subfolders(folder)
    unknown = [name for name in present if name not in label]
    if unknown:
        raise UserError(f"dataset={cfg.name}: {folder / unknown[0]} has no matching folder in {train}; "
                        "the test classes must be training classes (rename or remove it)")  # fmt: skip
    pairs = [(path, label[name]) for name in present for path in images_under(folder / name)]
    if not pairs:
        raise UserError(f"dataset={cfg.name}: {folder} holds no images in class folders; fill it or remove it")
    return FileList(tuple(p for p, _ in pairs), tuple(lab for _, lab in pairs))

