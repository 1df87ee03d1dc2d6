"""From the class names a dataset's files carry to indices into the dataset config's ``class_names``.

The config holds the task-arithmetic literature's class names (the zero-shot head is built from them). Where a
dataset names its classes in its files (folder names, a meta file), the loader maps each raw name to the
config's list, so labels never depend on which classes a copy of the dataset happens to hold:

- with ``dataset.class_folders`` (EuroSAT, ImageNet): the raw name's position in that list, which runs
  parallel to ``class_names``;
- otherwise by the dataset's cleaning rule (below): the cleaned raw name's position in ``class_names``.

A raw name that maps to nothing is a one-line UserError, before any compute.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from bdunlearn.errors import UserError


def verbatim(raw: str) -> str:
    """Stanford Cars (names from ``cars_meta.mat``), CIFAR-10."""
    return raw


def underscores_to_spaces(raw: str) -> str:
    """DTD, RESISC45, CIFAR-100 ("aquarium_fish" → "aquarium fish")."""
    return raw.replace("_", " ")


def sun397(raw: str) -> str:
    """SUN397: a ``ClassName.txt`` entry without its letter folder, "/" and "_" → " "
    ("apartment_building/outdoor" → "apartment building outdoor")."""
    return raw.replace("/", " ").replace("_", " ")


Rule = Callable[[str], str]


def label_lookup(raw_names: Sequence[str], cfg, rule: Rule) -> list[int]:
    """For each raw class name, its index in ``cfg.class_names``."""
    folders = getattr(cfg, "class_folders", None)
    if folders:
        index = {name: i for i, name in enumerate(folders)}
        how, key = "dataset.class_folders", (lambda raw: raw)
    else:
        index = {name: i for i, name in enumerate(cfg.class_names)}
        how, key = f"dataset.class_names (after the {rule.__name__} rule)", rule
    labels = []
    for raw in raw_names:
        if key(raw) not in index:
            raise UserError(
                f"dataset={cfg.name}: class {raw!r} in the files under {cfg.root} is not in {how}; "
                "check that dataset.root holds this dataset, or fix the config's class list"
            )
        labels.append(index[key(raw)])
    return labels
