"""CleanCLIP (Bansal et al., ICCV 2023), classification form: cross-entropy through the frozen zero-shot head
plus CleanCLIP's in-modal self-supervised term on each image and its AutoAugment'ed copy.

The in-modal term is CLIP's contrastive loss within the image modality: in a batch, each image's embedding
must pick out its own augmented view among all views (and vice versa), with CLIP's logit scale as the
inverse temperature. The caption-side term belongs to the contrastive setting.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from bdunlearn import checks
from bdunlearn.data.augment import autoaugment
from bdunlearn.data.images import to_pixels
from bdunlearn.defenses import finetuning
from bdunlearn.defenses.base import DefenseInputs, DefenseOutcome


@dataclass
class CleanClipConfig(finetuning.FinetuneDefenseConfig):
    inmodal_weight: float = 1.0  # weight of the in-modal term against the task loss (CleanCLIP: 1)


Config = CleanClipConfig


def check(cfg: CleanClipConfig) -> None:
    finetuning.check(cfg)
    checks.require(cfg.inmodal_weight >= 0, f"defense.inmodal_weight={cfg.inmodal_weight}: must be non-negative")


def inmodal_loss(view_a: torch.Tensor, view_b: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE between two batches of L2-normalised embeddings of the same samples."""
    logits = logit_scale * view_a @ view_b.T
    labels = torch.arange(len(view_a), device=view_a.device)
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


def defend(inputs: DefenseInputs, cfg: CleanClipConfig) -> DefenseOutcome:
    classifier = inputs.classifier

    def make_loss(samples, generator):
        def loss_fn(index: torch.Tensor) -> torch.Tensor:
            pixels = to_pixels(samples.images[index], inputs.image_size)
            original = classifier.image_features(pixels)
            augmented = classifier.image_features(autoaugment(pixels))
            task = F.cross_entropy(original @ classifier.head.T, samples.labels[index])
            return task + cfg.inmodal_weight * inmodal_loss(original, augmented, classifier.clip.logit_scale.exp())

        return loss_fn

    return finetuning.finetune_from_backdoored(inputs, cfg, make_loss, "cleanclip: clean + in-modal fine-tune")
