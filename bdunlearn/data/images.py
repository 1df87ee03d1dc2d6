"""Image sets held as uint8 tensors, and their conversion to model-resolution pixels in [0, 1]."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class ImageSet:
    """``images``: uint8 [N, C, H, W]; ``labels``: int64 [N]."""

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self):
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError(f"images must be uint8 [N, C, H, W], got {self.images.dtype} {tuple(self.images.shape)}")
        if len(self.images) != len(self.labels):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: torch.Tensor) -> ImageSet:
        index = index.to(self.labels.device)
        return ImageSet(self.images[index], self.labels[index])

    def to(self, device) -> ImageSet:
        return ImageSet(self.images.to(device, non_blocking=True), self.labels.to(device, non_blocking=True))


def to_pixels(images: torch.Tensor, image_size: int, channels: int = 3) -> torch.Tensor:
    """uint8 [B, C, H, W] → float [B, channels, S, S] in [0, 1] at the model's resolution.

    Grey images are repeated over the colour channels; resizing is bilinear (antialiased when shrinking).
    """
    x = images.float().div_(255.0)
    if x.shape[1] == 1 and channels != 1:
        x = x.expand(-1, channels, -1, -1)
    if x.shape[-2:] != (image_size, image_size):
        shrink = x.shape[-1] > image_size or x.shape[-2] > image_size
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False, antialias=shrink)
        x = x.clamp_(0.0, 1.0)
    return x.contiguous()


def index_batches(n: int, batch_size: int, generator: torch.Generator | None = None, device=None):
    """Consecutive index batches over ``range(n)``, shuffled when a generator is given (one pass)."""
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    order = order.to(device) if device is not None else order
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


def endless_batches(n: int, batch_size: int, generator: torch.Generator, device=None):
    """Shuffled index batches of exactly ``batch_size`` (reshuffled every pass), forever.

    With fewer than ``batch_size`` samples each batch is one whole shuffled pass.
    """
    size = min(batch_size, n)
    while True:
        order = torch.randperm(n, generator=generator)
        order = order.to(device) if device is not None else order
        for start in range(0, n - size + 1, size):
            yield order[start : start + size]
