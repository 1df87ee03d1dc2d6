"""Batched image augmentations used by defenses, on float pixel batches in [0, 1] (any device)."""

from __future__ import annotations

import torch


def autoaugment(pixels: torch.Tensor) -> torch.Tensor:
    """torchvision's AutoAugment (ImageNet policy), drawn independently for every image, as CleanCLIP augments.

    Draws from torch's global RNG (seed it for reproducibility); the policy runs on 8-bit images.
    """
    from torchvision.transforms import (
        v2,  # torchvision is slow to import; config validation must not need it
    )

    policy = v2.AutoAugment(v2.AutoAugmentPolicy.IMAGENET)
    images = pixels.mul(255).round_().to(torch.uint8)
    return torch.stack([policy(image) for image in images]).float().div_(255)


def structured_noise(
    pixels: torch.Tensor,
    generator: torch.Generator,
    *,
    fill: torch.Tensor,
    noise_std: float = 0.2,
    noise_prob: float = 0.5,
    erase_prob: float = 0.5,
    erase_area: tuple[float, float] = (0.005, 0.01),
) -> torch.Tensor:
    """Perturb-and-Recover's augmentation: with probability ``noise_prob`` add Gaussian noise clipped to
    [0, 1] (so it only brightens, as the authors' transform does), then with probability ``erase_prob`` fill
    one random square covering ``erase_area`` of the image with ``fill`` (the colour that normalises to zero).
    Randomness comes from ``generator`` (CPU), per image."""
    b, c, h, w = pixels.shape
    device = pixels.device

    def uniform(*shape):
        return torch.rand(*shape, generator=generator).to(device)

    noise = torch.randn(pixels.shape, generator=generator).to(device).mul_(noise_std).clamp_(0, 1)
    noisy = (uniform(b, 1, 1, 1) < noise_prob).float()
    out = (pixels + noisy * noise).clamp_(0, 1)

    area = erase_area[0] + (erase_area[1] - erase_area[0]) * uniform(b)
    side = (area * h * w).sqrt().round().clamp(1, min(h, w) - 1).long()
    top = (uniform(b) * (h - side + 1).float()).long()
    left = (uniform(b) * (w - side + 1).float()).long()
    rows = torch.arange(h, device=device).view(1, h, 1)
    cols = torch.arange(w, device=device).view(1, 1, w)
    square = (
        (rows >= top.view(-1, 1, 1)) & (rows < (top + side).view(-1, 1, 1))
        & (cols >= left.view(-1, 1, 1)) & (cols < (left + side).view(-1, 1, 1))
    )  # fmt: skip
    erase = square & (uniform(b) < erase_prob).view(-1, 1, 1)
    return torch.where(erase.unsqueeze(1), fill.view(1, c, 1, 1).to(out), out)
