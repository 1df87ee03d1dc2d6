"""Clean accuracy (CA), attack success rate (ASR) and robust accuracy (RA) of a classifier."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from bdunlearn.attacks.base import Attack
from bdunlearn.data.images import ImageSet, index_batches, to_pixels
from bdunlearn.runtime import Precision

FP32 = Precision()


@dataclass
class Metrics:
    clean_acc: float
    asr: float | None  # None when there is no attack to measure
    robust_acc: float | None

    def as_dict(self, suffix: str = "") -> dict[str, float | None]:
        return {f"{k}{suffix}": v for k, v in asdict(self).items()}


@torch.inference_mode()
def predict(
    classifier: nn.Module,
    images: torch.Tensor,
    image_size: int,
    batch_size: int,
    attack: Attack | None = None,
    seed: int = 0,
    precision: Precision = FP32,
) -> torch.Tensor:
    """Predicted classes for uint8 ``images`` (triggered first when ``attack`` is given)."""
    classifier.eval()
    generator = torch.Generator().manual_seed(seed)
    preds = []
    for index in index_batches(len(images), batch_size):
        pixels = to_pixels(images[index.to(images.device)], image_size)
        if attack is not None:
            attack.apply_(pixels, generator)  # to_pixels made a fresh batch
        with precision.autocast():
            preds.append(classifier(pixels).argmax(dim=-1))
    return torch.cat(preds) if preds else torch.empty(0, dtype=torch.long, device=images.device)


def evaluate(
    classifier: nn.Module,
    data: ImageSet,
    image_size: int,
    batch_size: int,
    attack: Attack | None,
    target_class: int | None = None,
    seed: int = 0,
    precision: Precision = FP32,
) -> Metrics:
    """CA on all of ``data``; ASR and RA on its non-target images with the trigger applied (a classifier whose
    head follows the text tower rebuilds it first)."""
    refresh = getattr(classifier, "refresh_head", None)
    if refresh is not None:
        refresh()
    clean = predict(classifier, data.images, image_size, batch_size, precision=precision)
    clean_acc = (clean == data.labels).float().mean().item()
    if attack is None:
        return Metrics(clean_acc=clean_acc, asr=None, robust_acc=None)
    target = attack.target_class if target_class is None else target_class
    victims = data.labels != target
    triggered = predict(classifier, data.images[victims], image_size, batch_size, attack=attack, seed=seed, precision=precision)
    asr = (triggered == target).float().mean().item()
    robust = (triggered == data.labels[victims]).float().mean().item()
    return Metrics(clean_acc=clean_acc, asr=asr, robust_acc=robust)
