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


class BatchSchedule:
    """Index batches of a fixed size, one freshly shuffled pass per epoch, forever.

    Batch ``step`` is a pure function of (seed, step), so a run resumed at any step draws exactly the batches
    an uninterrupted run would. With fewer samples than ``batch_size`` each batch is one whole shuffled pass.
    """

    def __init__(self, n: int, batch_size: int, seed: int, device=None):
        if n < 1:
            raise ValueError("cannot draw batches from an empty set")
        self.n = n
        self.size = min(batch_size, n)
        self.per_epoch = n // self.size
        self.seed = seed
        self.device = device
        self._epoch, self._order = -1, None

    def __call__(self, step: int) -> torch.Tensor:
        epoch, position = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            order = torch.randperm(self.n, generator=generator)
            self._epoch, self._order = epoch, order.to(self.device) if self.device is not None else order
        return self._order[position * self.size : (position + 1) * self.size]
