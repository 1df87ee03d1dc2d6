"""CleanCLIP (Bansal et al., ICCV 2023).

Classification form: cross-entropy through the frozen zero-shot head plus CleanCLIP's in-modal self-supervised
term on each image and its AutoAugment'ed copy. Contrastive form (``setting=contrastive``): the CLIP loss on
clean image-caption pairs plus the in-modal terms of both modalities, averaged: image vs its AutoAugment'ed
copy, and caption vs another caption of the same image (a caption drawn with another template; CleanCLIP
augments text with EDA, which a captioned dataset's templates stand in for; a caption file's single caption is
its own view).

The in-modal term is CLIP's contrastive loss within one modality: in a batch, each embedding must pick out its
own augmented view among all views (and vice versa), with CLIP's logit scale as the inverse temperature.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from bdunlearn.config import checks
from bdunlearn.data.augment import autoaugment
from bdunlearn.data.images import to_pixels
from bdunlearn.defenses import finetuning
from bdunlearn.defenses.base import DefenseInputs, DefenseOutcome
from bdunlearn.objectives import pairs_loss


@dataclass
class CleanClipConfig(finetuning.FinetuneDefenseConfig):
    """CleanCLIP, classification form: cross-entropy through the frozen zero-shot head + in-modal contrastive
    loss between each image and its AutoAugment'ed copy."""

    name: str = "cleanclip"
    inmodal_weight: float = 1.0  # weight of the in-modal term against the task loss (CleanCLIP: 1)


Config = CleanClipConfig
CONTRASTIVE = True


def check(cfg: CleanClipConfig) -> None:
    finetuning.check(cfg)
    checks.require(cfg.inmodal_weight >= 0, f"defense.inmodal_weight={cfg.inmodal_weight}: must be non-negative")


def inmodal_loss(view_a: torch.Tensor, view_b: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE between two batches of L2-normalised embeddings of the same samples."""
    logits = logit_scale * view_a @ view_b.T
    labels = torch.arange(len(view_a), device=view_a.device)
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


def contrastive_loss_with_inmodal(inputs: DefenseInputs, cfg: CleanClipConfig, pairs, generator: torch.Generator):
    """The contrastive form: CLIP loss + weight x (image in-modal + caption in-modal) / 2."""
    clip = inputs.classifier.clip
    other_captions = pairs.sampler(generator)  # a second, independent draw of each image's caption

    def inmodal(pixels, index, image_features, text_features):
        augmented = inputs.classifier.image_features(autoaugment(pixels))
        other_text = F.normalize(clip.encode_text(other_captions(index)), dim=-1)
        scale = clip.logit_scale.exp()
        terms = inmodal_loss(image_features, augmented, scale) + inmodal_loss(text_features, other_text, scale)
        return cfg.inmodal_weight * terms / 2

    return pairs_loss(inputs.classifier, pairs, None, inputs.image_size, generator, extra=inmodal)


def defend(inputs: DefenseInputs, cfg: CleanClipConfig) -> DefenseOutcome:
    classifier = inputs.classifier

    def make_loss(samples, generator):
        if inputs.contrastive:
            return contrastive_loss_with_inmodal(inputs, cfg, samples, generator)

        def loss_fn(index: torch.Tensor) -> torch.Tensor:
            pixels = to_pixels(samples.images[index], inputs.image_size)
            original = classifier.image_features(pixels)
            augmented = classifier.image_features(autoaugment(pixels))
            task = F.cross_entropy(original @ classifier.head.T, samples.labels[index])
            return task + cfg.inmodal_weight * inmodal_loss(original, augmented, classifier.clip.logit_scale.exp())

        return loss_fn

    return finetuning.finetune_from_backdoored(inputs, cfg, make_loss, "cleanclip: clean + in-modal fine-tune")
