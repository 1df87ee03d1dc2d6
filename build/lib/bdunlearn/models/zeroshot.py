"""The frozen zero-shot classifier: class names x prompt templates through the text tower."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from open_clip.zero_shot_classifier import build_zero_shot_classifier
from torch import nn

from bdunlearn.models.clip import Preprocess


@torch.no_grad()
def zeroshot_head(clip: nn.Module, tokenizer, class_names: Sequence[str], templates: Sequence[str], device) -> torch.Tensor:
    """Class weights [num_classes, embed_dim]: per class the mean of the L2-normalised prompt embeddings,
    renormalised, times CLIP's logit scale."""
    was_training = clip.training
    clip.eval()
    weights = build_zero_shot_classifier(
        clip, tokenizer, list(class_names), list(templates), num_classes_per_batch=None, device=device
    )
    clip.train(was_training)
    return (clip.logit_scale.exp() * weights.T).detach()


class ZeroShotClassifier(nn.Module):
    """Image tower of ``clip`` followed by a frozen head; takes pixel-space images in [0, 1].

    With ``head_builder`` (the contrastive setting, where the text tower is trained too) the head follows the
    weights: ``refresh_head`` rebuilds it from the current text tower, and evaluation calls it first.
    """

    def __init__(self, clip: nn.Module, head: torch.Tensor, preprocess: Preprocess, head_builder: Callable[[], torch.Tensor] | None = None):
        super().__init__()
        self.clip = clip
        self.head_builder = head_builder
        self.register_buffer("head", head, persistent=False)
        self.register_buffer("mean", torch.tensor(preprocess.mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(preprocess.std).view(1, -1, 1, 1), persistent=False)

    def refresh_head(self) -> None:
        """Rebuild the head from the current text tower (only with a ``head_builder``; else it stays frozen)."""
        if self.head_builder is not None:
            self.head = self.head_builder().to(self.head)

    def image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        """L2-normalised image embeddings of pixel-space images in [0, 1]."""
        return F.normalize(self.clip.encode_image((pixels - self.mean) / self.std), dim=-1)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.image_features(pixels) @ self.head.T
