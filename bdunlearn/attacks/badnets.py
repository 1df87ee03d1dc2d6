"""BadNets (Gu et al. 2017): a small patch stamped onto the image."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from bdunlearn.attacks import patterns
from bdunlearn.attacks.base import Attack, AttackConfig
from bdunlearn.config import checks

PATTERNS = ("white", "black", "checkerboard", "noise", "file")
LOCATIONS = ("bottom_right", "bottom_left", "top_right", "top_left", "center", "random")


@dataclass
class BadNetsConfig(AttackConfig):
    """BadNets (Gu et al. 2017): a patch stamped on the image in pixel space (model resolution, before
    normalisation); all-to-one. Poisoned samples are drawn from non-target images and relabelled."""

    name: str = "badnets"
    patch_size: int = 3  # side in pixels at the model's input resolution
    pattern: str = "white"  # white | black | checkerboard | noise (pattern_seed) | file (pattern_file)
    location: str = "bottom_right"  # bottom_right | bottom_left | top_right | top_left | center | random (per image)
    pattern_seed: int = 0  # seed of the noise pattern
    pattern_file: Optional[str] = None  # image used as the patch when pattern=file


def check_patch(patch_size: int, location: str, image_size: int | None) -> None:
    checks.choice(location, LOCATIONS, "attack.location")
    checks.require(patch_size >= 1, f"attack.patch_size={patch_size}: must be at least 1")
    if image_size is not None:
        checks.require(patch_size <= image_size, f"attack.patch_size={patch_size} exceeds the model's {image_size}px input")


def stamp(pixels: torch.Tensor, patch: torch.Tensor, location: str, generator: torch.Generator | None) -> torch.Tensor:
    """Copies of ``pixels`` [B, C, H, W] with ``patch`` [C, p, p] pasted at ``location`` (differentiable in ``patch``)."""
    return stamp_(pixels.clone(), patch, location, generator)


def stamp_(pixels: torch.Tensor, patch: torch.Tensor, location: str, generator: torch.Generator | None) -> torch.Tensor:
    """``stamp`` in place: writes only the patch region of each image of ``pixels`` (any strides); returns ``pixels``."""
    batch, _, height, width = pixels.shape
    p = patch.shape[-1]
    if p > min(height, width):
        raise ValueError(f"patch_size {p} does not fit {height}x{width} images")
    if location != "random":  # one place for every image: a plain slice assignment (autograd reaches ``patch``)
        vertical, _, horizontal = location.rpartition("_") if location != "center" else ("center", "", "center")
        row = {"top": 0, "bottom": height - p, "center": (height - p) // 2}[vertical]
        col = {"left": 0, "right": width - p, "center": (width - p) // 2}[horizontal]
        pixels[:, :, row : row + p, col : col + p] = patch.to(pixels)
        return pixels
    rows = torch.randint(0, height - p + 1, (batch,), generator=generator).to(pixels.device)
    cols = torch.randint(0, width - p + 1, (batch,), generator=generator).to(pixels.device)
    step = torch.arange(p, device=pixels.device)
    index_b = torch.arange(batch, device=pixels.device)[:, None, None]
    index_h = (rows[:, None] + step)[:, :, None]
    index_w = (cols[:, None] + step)[:, None, :]
    # a channels-last view of ``pixels`` so one advanced-indexing write stamps every image's patch at its own place
    pixels.permute(0, 2, 3, 1).index_put_((index_b, index_h, index_w), patch.to(pixels).permute(1, 2, 0))
    return pixels


class BadNets(Attack):
    Config = BadNetsConfig

    @classmethod
    def check(cls, cfg: BadNetsConfig, num_classes: int, image_size: int | None) -> None:
        super().check(cfg, num_classes, image_size)
        patterns.check_choice(cfg.pattern, cfg.pattern_file, PATTERNS)
        check_patch(cfg.patch_size, cfg.location, image_size)

    def __init__(
        self,
        *,
        target_class: int,
        poison_rate: float,
        patch_size: int = BadNetsConfig.patch_size,
        pattern: str = BadNetsConfig.pattern,
        location: str = BadNetsConfig.location,
        pattern_seed: int = BadNetsConfig.pattern_seed,
        pattern_file: str | None = BadNetsConfig.pattern_file,
    ):
        super().__init__(target_class=target_class, poison_rate=poison_rate)
        patterns.require_arguments(pattern, pattern_file, PATTERNS)
        if location not in LOCATIONS:
            raise ValueError(f"location must be one of {LOCATIONS}, got {location!r}")
        self.patch_size = int(patch_size)
        self.pattern = pattern
        self.location = location
        self.pattern_seed = int(pattern_seed)
        self.pattern_file = pattern_file
        self._patches: dict[tuple, torch.Tensor] = {}

    def patch(self, channels: int, device=None) -> torch.Tensor:
        """The patch, float [channels, p, p] in [0, 1]."""
        p = self.patch_size
        if self.pattern == "white":
            patch = torch.ones(channels, p, p)
        elif self.pattern == "black":
            patch = torch.zeros(channels, p, p)
        elif self.pattern == "checkerboard":
            grid = torch.arange(p)
            patch = ((grid[:, None] + grid[None, :]) % 2 == 0).float().expand(channels, p, p).clone()
        elif self.pattern == "noise":
            patch = patterns.noise(channels, p, p, self.pattern_seed)
        else:
            patch = patterns.image_file(self.pattern_file, channels, p, p)
        return patch.to(device)

    def cached_patch(self, channels: int, device, dtype: torch.dtype) -> torch.Tensor:
        """``patch`` made once per shape, device and dtype rather than per batch (a file pattern is read once)."""
        key = (channels, str(device), dtype)
        if key not in self._patches:
            self._patches[key] = self.patch(channels, device).to(dtype)
        return self._patches[key]

    def apply(self, pixels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.apply_(pixels.clone(), generator)

    def apply_(self, pixels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return stamp_(pixels, self.cached_patch(pixels.shape[1], pixels.device, pixels.dtype), self.location, generator)
