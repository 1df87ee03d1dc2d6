"""Perturb and Recover (Singh, Croce, Hein 2024), classification form.

Clean fine-tuning of theta_b in which the task loss recovers clean behaviour while a perturbation term pushes
the model's image embeddings away from those of the original backdoored model: loss = CE − weight · d, with
d the batch mean of the squared L2 distance between the L2-normalised embeddings of the model being cleaned
and of the frozen theta_b, both on the same structured-noise-augmented images. As in the authors' code, d
counts only while it is at most ``threshold`` (above it the term is 0: far enough, stop pushing). The
caption-side term belongs to the contrastive setting.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from bdunlearn.config import checks
from bdunlearn.data.augment import structured_noise
from bdunlearn.data.images import to_pixels
from bdunlearn.defenses import finetuning
from bdunlearn.defenses.base import DefenseInputs, DefenseOutcome


@dataclass
class ParConfig(finetuning.FinetuneDefenseConfig):
    """Perturb and Recover, classification form: cross-entropy on structured-noise-augmented clean images minus
    perturb_weight x (squared distance of the image embeddings from the frozen theta_b's, while <= threshold)."""

    name: str = "par"
    perturb_weight: float = 0.5  # the authors weigh each modality's term by 0.5
    threshold: float = 2.15  # squared distance of unit embeddings, in [0, 4] (the authors' tau)
    noise_std: float = 0.2  # std of the Gaussian noise added to a sample (clipped to [0, 1])
    noise_prob: float = 0.5  # probability that a sample gets the noise
    erase_prob: float = 0.5  # probability that a small square of a sample is set to the mean colour


Config = ParConfig


def check(cfg: ParConfig) -> None:
    finetuning.check(cfg)
    checks.require(cfg.perturb_weight >= 0, f"defense.perturb_weight={cfg.perturb_weight}: must be non-negative")
    checks.require(0 < cfg.threshold <= 4, f"defense.threshold={cfg.threshold}: unit embeddings are at squared distance (0, 4]")
    checks.require(cfg.noise_std >= 0, f"defense.noise_std={cfg.noise_std}: must be non-negative")
    checks.fraction(cfg.noise_prob, "defense.noise_prob")
    checks.fraction(cfg.erase_prob, "defense.erase_prob")


def perturbation_term(features: torch.Tensor, original: torch.Tensor, threshold: float) -> torch.Tensor:
    """Mean squared L2 distance between two batches of embeddings, or 0 once it exceeds ``threshold``."""
    distance = (features - original).pow(2).sum(dim=1).mean()
    return torch.where(distance > threshold, torch.zeros_like(distance), distance)


def defend(inputs: DefenseInputs, cfg: ParConfig) -> DefenseOutcome:
    classifier = inputs.classifier
    classifier.clip.load_state_dict(inputs.backdoored)
    frozen = copy.deepcopy(classifier).eval().requires_grad_(False)  # theta_b, the point to move away from
    fill = classifier.mean.flatten()  # erased squares take the colour that normalises to zero

    def make_loss(samples, generator):
        def loss_fn(index: torch.Tensor) -> torch.Tensor:
            pixels = to_pixels(samples.images[index], inputs.image_size)
            pixels = structured_noise(
                pixels, generator, fill=fill, noise_std=cfg.noise_std, noise_prob=cfg.noise_prob, erase_prob=cfg.erase_prob
            )
            features = classifier.image_features(pixels)
            with torch.no_grad():
                original = frozen.image_features(pixels)
            task = F.cross_entropy(features @ classifier.head.T, samples.labels[index])
            return task - cfg.perturb_weight * perturbation_term(features, original, cfg.threshold)

        return loss_fn

    return finetuning.finetune_from_backdoored(inputs, cfg, make_loss, "par: perturb-and-recover fine-tune")
