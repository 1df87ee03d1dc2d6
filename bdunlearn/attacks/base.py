"""The one interface every attack implements: a pixel-space trigger on batches, and which samples to poison.

An attack answers four questions, on plain tensors:

- ``apply(pixels, generator)``: the triggered copies of a batch (float [B, C, H, W] in [0, 1], at the
  model's resolution, before normalisation). Used on the poisoned training samples, on every non-target
  test image (ASR), and on the defender's triggered set. ``apply_`` is the same trigger written into the
  batch itself; the pipeline uses it (through ``apply_where_``) so a trigger costs no copy of the batch.
- ``poison_indices(labels, seed)``: which training samples carry the trigger; ``poisoned_labels`` says what
  they are trained with (the target class, or their own label for clean-label attacks).
- ``cross_indices`` / ``apply_cross``: samples that get a *different*, non-trigger transform and keep their
  labels (WaNet's noise mode). Most attacks have none.
- ``prepare(context)``: attacks whose trigger depends on the pretrained model (BadCLIP) build it here, once
  theta_pre and its zero-shot head exist; the others need nothing.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

import torch
from omegaconf import MISSING

from bdunlearn.config import checks

if TYPE_CHECKING:  # open_clip is slow to import; config validation should not need it
    from bdunlearn.cache import ArtifactCache
    from bdunlearn.data.images import ImageSet
    from bdunlearn.models.zeroshot import ZeroShotClassifier


@dataclass
class AttackConfig:
    name: str = MISSING  # the attack (set by the group option attack=<name>)
    target_class: int = 0  # all-to-one: the class every triggered image is sent to
    poison_rate: float = 0.1  # fraction of the training split that is poisoned
    num_poisoned: Optional[int] = None  # setting=contrastive: pairs poisoned, an absolute count (CC3M: 1,500)


@dataclass
class PrepareContext:
    """What an attack may use to build a model-dependent trigger (handed over by the pipeline)."""

    classifier: ZeroShotClassifier  # CLIP holding theta_pre, and the frozen zero-shot head
    train: ImageSet  # the attacker's training split (uint8)
    image_size: int
    cache: ArtifactCache
    spec: dict  # what determines theta_pre and the data; part of any cache key the attack builds


class Attack(ABC):
    """An all-to-one backdoor: triggered images of any class should be classified as ``target_class``."""

    Config = AttackConfig  # each attack's config section (conf/attack/<name>.yaml) is merged into this
    clean_label: bool = False  # poison only target-class samples, keeping their labels
    has_trigger: bool = True  # False only for the clean reference (attack=none): no ASR to measure

    @classmethod
    def check(cls, cfg: AttackConfig, num_classes: int, image_size: int | None) -> None:
        """Range checks of the config section, before any compute (UserError on the first problem)."""
        checks.require(
            num_classes is None or 0 <= cfg.target_class < num_classes,  # None: the data names its classes at preflight
            f"attack.target_class={cfg.target_class} is out of range; the dataset has classes 0..{(num_classes or 0) - 1}",
        )
        checks.fraction(cfg.poison_rate, "attack.poison_rate", allow_zero=False)
        checks.require(
            cfg.num_poisoned is None or cfg.num_poisoned >= 1,
            f"attack.num_poisoned={cfg.num_poisoned}: must be at least 1 (or null outside setting=contrastive)",
        )

    def __init__(self, *, target_class: int, poison_rate: float):
        self.target_class = int(target_class)
        self.poison_rate = float(poison_rate)

    @abstractmethod
    def apply(self, pixels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Triggered copies of ``pixels`` (float [B, C, H, W] in [0, 1], before normalisation), same device."""

    def apply_(self, pixels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """``apply`` in place: writes the triggered batch into ``pixels`` (any strides) and returns ``pixels``.

        Draws the same random numbers from ``generator`` as ``apply``, so both give the same pixels. This
        fallback copies; attacks that can write less (a patch) or in one pass (a blend) override it.
        """
        return pixels.copy_(self.apply(pixels, generator))

    def apply_where_(self, pixels: torch.Tensor, flagged: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Triggers the images of ``pixels`` where the bool mask ``flagged`` [B] is set, in place; returns ``pixels``.

        The same pixels as ``pixels[flagged] = apply(pixels[flagged])``; a batch flagged throughout (a triggered
        evaluation or defense set) skips the gather and scatter of the mask.
        """
        count = int(flagged.sum())  # one host sync for the three cases
        if count == 0:
            return pixels
        if count == len(flagged):
            return self.apply_(pixels, generator)
        pixels[flagged] = self.apply_(pixels[flagged], generator)
        return pixels

    def prepare(self, context: PrepareContext) -> None:  # noqa: B027 - most attacks need no preparation
        """Build whatever the trigger needs from theta_pre (nothing, for most attacks)."""

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

    def cross_indices(self, labels: torch.Tensor, poisoned: torch.Tensor, seed: int) -> torch.Tensor:
        """Sorted indices, disjoint from ``poisoned``, of samples that get ``apply_cross`` and keep their labels."""
        return torch.empty(0, dtype=torch.long)

    def apply_cross(self, pixels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """The transform of cross samples; only called for attacks whose ``cross_indices`` are not empty."""
        raise NotImplementedError(f"{type(self).__name__} has no cross samples")
