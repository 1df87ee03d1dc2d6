"""Training sets whose samples may carry a trigger: what every classification fine-tune consumes."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from bdunlearn.attacks.base import Attack
from bdunlearn.data.images import ImageSet


@dataclass
class TriggerableSet:
    """Clean uint8 images, the labels to train with, and which samples get the trigger when batched.

    ``cross`` flags samples that get the attack's cross transform instead (WaNet's noise mode); None: none.
    """

    images: torch.Tensor
    labels: torch.Tensor
    triggered: torch.Tensor  # bool [N]
    cross: torch.Tensor | None = field(default=None)  # bool [N], disjoint from ``triggered``

    def __len__(self) -> int:
        return len(self.labels)

    def to(self, device) -> TriggerableSet:
        cross = self.cross.to(device) if self.cross is not None else None
        return TriggerableSet(self.images.to(device), self.labels.to(device), self.triggered.to(device), cross)


def clean(data: ImageSet) -> TriggerableSet:
    return TriggerableSet(data.images, data.labels, torch.zeros(len(data), dtype=torch.bool, device=data.labels.device))


def _mask(size: int, indices: torch.Tensor, device) -> torch.Tensor:
    mask = torch.zeros(size, dtype=torch.bool)
    mask[indices.cpu()] = True
    return mask.to(device)


def poison(data: ImageSet, attack: Attack, indices: torch.Tensor, cross_indices: torch.Tensor | None = None) -> TriggerableSet:
    """The attacker's training set: samples at ``indices`` get the trigger and the attack's labels; samples at
    ``cross_indices`` get the attack's cross transform and keep their labels."""
    labels = data.labels.clone()
    triggered = _mask(len(data), indices, labels.device)
    labels[triggered] = attack.poisoned_labels(labels[triggered])
    cross = _mask(len(data), cross_indices, labels.device) if cross_indices is not None and len(cross_indices) else None
    if cross is not None and bool((cross & triggered).any()):
        raise ValueError("cross samples must not be poisoned samples")
    return TriggerableSet(data.images, labels, triggered, cross)


def triggered_target_set(data: ImageSet, target_class: int, clean_count: int = 0) -> TriggerableSet:
    """TBAR's set: every image triggered and labelled ``target_class``, except the first ``clean_count``,
    which stay clean with their own labels."""
    labels = torch.full_like(data.labels, target_class)
    triggered = torch.ones(len(data), dtype=torch.bool, device=data.labels.device)
    labels[:clean_count] = data.labels[:clean_count]
    triggered[:clean_count] = False
    return TriggerableSet(data.images, labels, triggered)
