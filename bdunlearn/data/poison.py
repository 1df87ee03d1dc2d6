"""Training sets whose samples may carry a trigger: what every classification fine-tune consumes."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bdunlearn.attacks.base import Attack
from bdunlearn.data.images import ImageSet


@dataclass
class TriggerableSet:
    """Clean uint8 images, the labels to train with, and which samples get the trigger when batched."""

    images: torch.Tensor
    labels: torch.Tensor
    triggered: torch.Tensor  # bool [N]

    def __len__(self) -> int:
        return len(self.labels)

    def to(self, device) -> TriggerableSet:
        return TriggerableSet(self.images.to(device), self.labels.to(device), self.triggered.to(device))


def clean(data: ImageSet) -> TriggerableSet:
    return TriggerableSet(data.images, data.labels, torch.zeros(len(data), dtype=torch.bool, device=data.labels.device))


def poison(data: ImageSet, attack: Attack, indices: torch.Tensor) -> TriggerableSet:
    """The attacker's training set: samples at ``indices`` get the trigger and the attack's labels."""
    labels = data.labels.clone()
    triggered = torch.zeros(len(data), dtype=torch.bool)
    triggered[indices.cpu()] = True
    triggered = triggered.to(labels.device)
    labels[triggered] = attack.poisoned_labels(labels[triggered])
    return TriggerableSet(data.images, labels, triggered)


def triggered_target_set(data: ImageSet, target_class: int, clean_count: int = 0) -> TriggerableSet:
    """TBAR's set: every image triggered and labelled ``target_class``, except the first ``clean_count``,
    which stay clean with their own labels."""
    labels = torch.full_like(data.labels, target_class)
    triggered = torch.ones(len(data), dtype=torch.bool, device=data.labels.device)
    labels[:clean_count] = data.labels[:clean_count]
    triggered[:clean_count] = False
    return TriggerableSet(data.images, labels, triggered)
