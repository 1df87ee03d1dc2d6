"""Disjoint, reproducible splits: the attacker's training data, the defender's pool, validation and test."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bdunlearn.data.datasets import RawDataset
from bdunlearn.data.images import ImageSet


@dataclass
class Splits:
    train: ImageSet  # the attacker's (poisoned) fine-tuning data
    defense: ImageSet  # the defender's clean pool D_def
    val: ImageSet  # choices (TBAR's alpha) are made here, never on test
    test: ImageSet  # reported numbers only

    def sizes(self) -> dict[str, int]:
        return {name: len(getattr(self, name)) for name in ("train", "defense", "val", "test")}


def _take(n: int, fraction: float) -> int:
    return int(round(n * fraction))


def split_sizes(num_train: int, has_test: bool, cfg) -> dict[str, int]:
    """How many images each part carved from the ``num_train`` training images gets."""
    names = ["val", "defense"] if has_test else ["test", "val", "defense"]
    sizes = {name: _take(num_train, getattr(cfg, f"{name}_fraction")) for name in names}
    if getattr(cfg, "max_val_samples", None) is not None:
        sizes["val"] = min(sizes["val"], cfg.max_val_samples)
    sizes["train"] = num_train - sum(sizes.values())
    return sizes


def split_indices(num_train: int, has_test: bool, cfg) -> dict[str, torch.Tensor]:
    """Positions in the official training images of each part ("test" only when there is no official test),
    in the order the parts hold them. The permutation depends only on ``cfg.seed``, so every run of a dataset,
    in memory or streamed, sees the same splits."""
    generator = torch.Generator().manual_seed(cfg.seed)
    order = torch.randperm(num_train, generator=generator)
    sizes = split_sizes(len(order), has_test, cfg)
    cut = 0
    parts = {}
    for name in ("test", "val", "defense"):
        if name in sizes:
            parts[name] = order[cut : cut + sizes[name]]
            cut += sizes[name]
    parts["train"] = order[cut:]
    return parts


def make_splits(raw: RawDataset, cfg) -> Splits:
    """Carve test (if the dataset has none), validation and the defender's pool from the training images."""
    parts = split_indices(len(raw.train), raw.test is not None, cfg)
    test = raw.test if raw.test is not None else raw.train.subset(parts["test"])
    return Splits(
        train=raw.train.subset(parts["train"]),
        defense=raw.train.subset(parts["defense"]),
        val=raw.train.subset(parts["val"]),
        test=test,
    )
