"""The one interface every attack implements: a pixel-space trigger on batches, and which samples to poison."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
from omegaconf import MISSING

from bdunlearn import checks


@dataclass
class AttackConfig:
    name: str = MISSING
    target_class: int = 0
    poison_rate: float = 0.1  # fraction of the training split that is poisoned


class Attack(ABC):
    """An all-to-one backdoor: triggered images of any class should be classified as ``target_class``."""

    Config = AttackConfig  # each attack's config section (conf/attack/<name>.yaml) is merged into this
    clean_label: bool = False  # poison only target-class samples, keeping their labels

    @classmethod
    def check(cls, cfg: AttackConfig, num_classes: int, image_size: int | None) -> None:
        """Range checks of the config section, before any compute (UserError on the first problem)."""
        checks.require(
            0 <= cfg.target_class < num_classes,
            f"attack.target_class={cfg.target_class} is out of range; the dataset has classes 0..{num_classes - 1}",
        )
        checks.fraction(cfg.poison_rate, "attack.poison_rate", allow_zero=False)

    def __init__(self, *, target_class: int, poison_rate: float):
        self.target_class = int(target_class)
        self.poison_rate = float(poison_rate)

    @abstractmethod
    def apply(self, pixels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Triggered copies of ``pixels`` (float [B, C, H, W] in [0, 1], before normalisation), same device."""

    def poison_indices(self, labels: torch.Tensor, seed: int) -> torch.Tensor:
        """Sorted indices of the training samples to poison: ``round(poison_rate * N)`` of them, drawn from
        the non-target samples (the target-class samples for clean-label attacks), reproducible from ``seed``."""
        labels = labels.cpu()
        pool = torch.nonzero(labels == self.target_class if self.clean_label else labels != self.target_class).flatten()
        count = min(int(round(self.poison_rate * len(labels))), len(pool))
        generator = torch.Generator().manual_seed(seed)
        chosen = pool[torch.randperm(len(pool), generator=generator)[:count]]
        return chosen.sort().values

    def poisoned_labels(self, labels: torch.Tensor) -> torch.Tensor:
        """The labels poisoned samples are trained with."""
        return labels if self.clean_label else torch.full_like(labels, self.target_class)
