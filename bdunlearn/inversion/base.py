"""What every trigger-inversion method shares: its config, the inverted trigger as an ``Attack``, the target
estimate and the result handed back to the pipeline.

An inversion sees only what a defender holds under ``attack_knowledge=unknown``: the suspicious model theta_b
(inside a :class:`ZeroShotClassifier`) and the defender's clean pool. It returns one or more candidates
(:class:`InversionResult`, in the order they are judged), each with

- an :class:`InvertedTrigger`: an ``Attack`` whose ``apply`` stamps the estimated trigger on a pixel batch, so
  TBAR, the alpha scan and previews use it exactly like a real attack;
- a detection statistic (``score``) and the verdict ``detected`` (the method's own threshold, in its config);
- the estimated target class: the majority prediction of theta_b on pool images carrying the inverted trigger.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from omegaconf import MISSING

from bdunlearn.attacks.base import Attack
from bdunlearn.config import checks
from bdunlearn.data.images import ImageSet, index_batches, to_pixels
from bdunlearn.runtime import Precision

if TYPE_CHECKING:  # open_clip is slow to import; config validation should not need it
    from bdunlearn.models.zeroshot import ZeroShotClassifier


DETECTIONS = ("statistic", "reference", "both")  # how a verdict is reached (bdunlearn/inversion/reference.py)


@dataclass
class InversionConfig:
    name: str = MISSING  # the method (set by the group option inversion=<name>)
    num_samples: int = 0  # images of the defender's clean pool the inversion uses (0: the whole pool)
    seed: int = 0  # initialisation and batch order of the optimisation
    detection_threshold: float = MISSING  # on the method's own statistic (see each method's docstring)
    # the verdict (bdunlearn/inversion/reference.py): statistic (the method's own statistic and detection_threshold) |
    # reference (the inverted trigger works on theta_b but far less on theta_pre) | both
    detection: str = "reference"
    reference_threshold: float = 0.5  # transfer (flip rate on theta_pre / on theta_b) below this → specific to theta_b
    reference_min_flip: float = 0.2  # a trigger flipping less of the pool on theta_b than this is not judged (transfer 1)


def check_common(cfg: InversionConfig) -> None:
    checks.require(cfg.num_samples >= 0, f"inversion.num_samples={cfg.num_samples}: must be >= 0 (0: the whole pool)")
    checks.choice(cfg.detection, DETECTIONS, "inversion.detection")
    checks.fraction(cfg.reference_threshold, "inversion.reference_threshold", allow_zero=False)
    checks.fraction(cfg.reference_min_flip, "inversion.reference_min_flip")


class InvertedTrigger(Attack):
    """A reverse-engineered trigger; ``target_class`` is the estimate (set once it is known)."""

    def __init__(self, target_class: int = 0):
        super().__init__(target_class=target_class, poison_rate=1.0)

    def tensors(self) -> dict[str, torch.Tensor]:
        """What is saved (``inverted_trigger.safetensors``, the cache) to rebuild the trigger."""
        raise NotImplementedError


class MaskPatternTrigger(InvertedTrigger):
    """x' = (1 − m) · x + m · p with a per-pixel mask m [1, H, W] (shared by the channels) and a pattern
    p [C, H, W], both in [0, 1] (DECREE's and Neural Cleanse's trigger form)."""

    def __init__(self, mask: torch.Tensor, pattern: torch.Tensor, target_class: int = 0):
        super().__init__(target_class)
        if mask.ndim != 3 or mask.shape[0] != 1 or pattern.ndim != 3 or mask.shape[-2:] != pattern.shape[-2:]:
            raise ValueError(f"mask must be [1, H, W] and pattern [C, H, W]; got {tuple(mask.shape)} and {tuple(pattern.shape)}")
        self.mask = mask.detach().float().clamp(0, 1)
        self.pattern = pattern.detach().float().clamp(0, 1)

    def apply(self, pixels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        mask = self.mask.to(device=pixels.device, dtype=pixels.dtype)
        pattern = self.pattern.to(device=pixels.device, dtype=pixels.dtype)
        return (1 - mask) * pixels + mask * pattern

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"mask": self.mask, "pattern": self.pattern}


@dataclass
class InversionResult:
    trigger: InvertedTrigger
    score: float  # the detection statistic
    detected: bool
    meta: dict = field(default_factory=dict)  # method-specific numbers worth keeping (JSON-able)


@dataclass
class InversionContext:
    """What the defender holds: theta_b loaded in ``classifier``, and the clean pool (labels included)."""

    classifier: ZeroShotClassifier
    pool: ImageSet
    image_size: int
    batch_size: int
    precision: Precision = field(default_factory=Precision)

    def features(self, pixels: torch.Tensor) -> torch.Tensor:
        """Image embeddings of theta_b's image tower for pixel batches in [0, 1] (differentiable in ``pixels``)."""
        classifier = self.classifier
        return classifier.clip.encode_image((pixels - classifier.mean) / classifier.std)

    def pixels(self, index: torch.Tensor) -> torch.Tensor:
        return to_pixels(self.pool.images[index.to(self.pool.images.device)], self.image_size)


def pool_subset(pool: ImageSet, num_samples: int, seed: int) -> ImageSet:
    """The first ``num_samples`` of a seeded permutation of the pool (all of it when 0 or larger than the pool)."""
    if num_samples <= 0 or num_samples >= len(pool):
        return pool
    order = torch.randperm(len(pool), generator=torch.Generator().manual_seed(seed))[:num_samples]
    return pool.subset(order)


class frozen:
    """Context manager: the model's parameters need no gradient (the inversion optimises only its own
    tensors); their ``requires_grad`` flags and train/eval mode are restored afterwards."""

    def __init__(self, model: torch.nn.Module):
        self.model = model

    def __enter__(self):
        self.flags = [(p, p.requires_grad) for p in self.model.parameters()]
        self.training = self.model.training
        for p, _ in self.flags:
            p.requires_grad_(False)
        self.model.eval()
        return self.model

    def __exit__(self, *exc):
        for p, flag in self.flags:
            p.requires_grad_(flag)
        self.model.train(self.training)
        return False


@torch.inference_mode()
def estimate_target(context: InversionContext, trigger: Attack, num_classes: int) -> tuple[int, float, torch.Tensor]:
    """Majority prediction of theta_b on pool images carrying ``trigger``: (class, its share of the votes,
    the per-class vote counts). Ties go to the smaller class index."""
    classifier = context.classifier
    classifier.eval()
    votes = []
    for index in index_batches(len(context.pool), context.batch_size):
        pixels = trigger.apply(context.pixels(index))
        with context.precision.autocast():
            votes.append(classifier(pixels).argmax(dim=-1))
    counts = majority_counts(torch.cat(votes), num_classes)
    target = int(counts.argmax())  # argmax returns the first maximum: ties → smaller index
    return target, float(counts[target]) / max(1, int(counts.sum())), counts


def majority_counts(predictions: torch.Tensor, num_classes: int) -> torch.Tensor:
    return torch.bincount(predictions.flatten().long().cpu(), minlength=num_classes)


@torch.inference_mode()
def flip_rate(context: InversionContext, trigger: Attack, target: int) -> float:
    """Share of the pool images whose label is not ``target`` that theta_b classifies as ``target`` once they
    carry ``trigger`` (the inverted trigger's attack success rate on the defender's own data)."""
    classifier = context.classifier
    classifier.eval()
    victims = torch.nonzero(context.pool.labels != target).flatten()
    if len(victims) == 0:
        return 0.0
    hits = 0
    for start in range(0, len(victims), context.batch_size):
        index = victims[start : start + context.batch_size]
        pixels = trigger.apply(context.pixels(index))
        with context.precision.autocast():
            hits += int((classifier(pixels).argmax(dim=-1) == target).sum())
    return hits / len(victims)


def mean_pairwise_cosine(features: torch.Tensor) -> torch.Tensor:
    """Mean cosine similarity over the B(B − 1) ordered pairs of distinct rows of ``features`` [B, D]."""
    count = features.shape[0]
    if count < 2:
        raise ValueError("need at least two embeddings for a pairwise similarity")
    unit = torch.nn.functional.normalize(features.float(), dim=-1)
    total = unit.sum(dim=0)
    # sum over all pairs (i, j) of <u_i, u_j> = |sum u|^2; the diagonal contributes B (unit vectors)
    return (total.dot(total) - (unit * unit).sum()) / (count * (count - 1))
