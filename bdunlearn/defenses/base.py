"""What every defense receives and returns; plain objects handed from the pipeline to the defense."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from omegaconf import MISSING

from bdunlearn.attacks.base import Attack
from bdunlearn.data.images import ImageSet
from bdunlearn.runtime import Precision
from bdunlearn.task_vectors import StateDict

if TYPE_CHECKING:  # open_clip is slow to import; config validation should not need it
    import torch

    from bdunlearn.cache import ArtifactCache
    from bdunlearn.data.captions import CaptionCorpus
    from bdunlearn.models.zeroshot import ZeroShotClassifier


@dataclass
class DefenseConfig:
    name: str = MISSING  # the defense (set by the group option defense=<name>)
    num_samples: int = 0  # samples of the defender's clean pool the defense may use


@dataclass
class DefenseInputs:
    classifier: ZeroShotClassifier  # the CLIP model (weights are the defense's to change) and frozen head
    backdoored: StateDict  # theta_b
    pretrained: StateDict | None  # theta_pre, where the defender has it
    pool: ImageSet  # the defender's clean pool, disjoint from the attacker's data, validation and test
    val: ImageSet  # for the defense's choices (never test)
    attack: Attack  # the trigger the defense works with (the real one when the attack is known)
    target_class: int
    image_size: int
    eval_batch_size: int
    seed: int
    precision: Precision = field(default_factory=Precision)
    cache: ArtifactCache | None = None  # for a defense's own expensive artifacts (TBAR's trigger vector)
    backdoored_spec: dict | None = None  # what determines theta_b (part of those artifacts' cache keys)
    pairs: CaptionCorpus | None = None  # setting=contrastive: the defender's clean image-caption pairs (its pool)
    target_captions: torch.Tensor | None = None  # setting=contrastive: tokens [templates, L] naming the target class

    @property
    def contrastive(self) -> bool:
        """Whether the defense runs in its contrastive form (CLIP loss on ``pairs``)."""
        return self.pairs is not None


@dataclass
class DefenseOutcome:
    state: StateDict  # the defended model's full CLIP state dict
    samples: int  # samples of the pool the defense consumed
    alpha: float | None = None
    alpha_curve: list[dict] | None = None
    extras: dict = field(default_factory=dict)
