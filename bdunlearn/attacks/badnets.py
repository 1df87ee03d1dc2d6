"""BadNets: a small patch stamped onto the image."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bdunlearn import checks
from bdunlearn.attacks.base import Attack, AttackConfig

PATTERNS = ("white", "black", "checkerboard", "noise")
LOCATIONS = ("bottom_right", "bottom_left", "top_right", "top_left", "center", "random")


@dataclass
class BadNetsConfig(AttackConfig):
    patch_size: int = 3  # side in pixels at the model's input resolution
    pattern: str = "white"
    location: str = "bottom_right"
    pattern_seed: int = 0


class BadNets(Attack):
    Config = BadNetsConfig

    @classmethod
    def check(cls, cfg: BadNetsConfig, num_classes: int, image_size: int | None) -> None:
        super().check(cfg, num_classes, image_size)
        checks.choice(cfg.pattern, PATTERNS, "attack.pattern")
        checks.choice(cfg.location, LOCATIONS, "attack.location")
        checks.require(cfg.patch_size >= 1, f"attack.patch_size={cfg.patch_size}: must be at least 1")
        if image_size is not None:
            checks.require(
                cfg.patch_size <= image_size, f"attack.patch_size={cfg.patch_size} exceeds the model's {image_size}px input"
            )

    def __init__(
        self,
        *,
        target_class: int,
        poison_rate: float,
        patch_size: int = 3,
        pattern: str = "white",
        location: str = "bottom_right",
        pattern_seed: int = 0,
    ):
        super().__init__(target_class=target_class, poison_rate=poison_rate)
        if pattern not in PATTERNS:
            raise ValueError(f"pattern must be one of {PATTERNS}, got {pattern!r}")
        if location not in LOCATIONS:
            raise ValueError(f"location must be one of {LOCATIONS}, got {location!r}")
        self.patch_size = int(patch_size)
        self.pattern = pattern
        self.location = location
        self.pattern_seed = int(pattern_seed)

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
        else:
            patch = torch.rand(channels, p, p, generator=torch.Generator().manual_seed(self.pattern_seed))
        return patch.to(device)

    def _offsets(self, batch: int, height: int, width: int, generator, device) -> tuple[torch.Tensor, torch.Tensor]:
        p = self.patch_size
        if self.location == "random":
            rows = torch.randint(0, height - p + 1, (batch,), generator=generator)
            cols = torch.randint(0, width - p + 1, (batch,), generator=generator)
            return rows.to(device), cols.to(device)
        row = {"top": 0, "bottom": height - p, "center": (height - p) // 2}[self.location.split("_")[0]]
        col = {"left": 0, "right": width - p, "center": (width - p) // 2}[self.location.split("_")[-1]]
        return torch.full((batch,), row, device=device), torch.full((batch,), col, device=device)

    def apply(self, pixels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        batch, channels, height, width = pixels.shape
        p = self.patch_size
        if p > min(height, width):
            raise ValueError(f"patch_size {p} does not fit {height}x{width} images")
        out = pixels.clone()
        patch = self.patch(channels, pixels.device).to(out.dtype)
        if self.location != "random":  # one place for every image: a plain slice assignment
            rows, cols = self._offsets(1, height, width, generator, "cpu")
            row, col = int(rows[0]), int(cols[0])
            out[:, :, row : row + p, col : col + p] = patch
            return out
        rows, cols = self._offsets(batch, height, width, generator, pixels.device)
        step = torch.arange(p, device=pixels.device)
        index_b = torch.arange(batch, device=pixels.device)[:, None, None]
        index_h = (rows[:, None] + step)[:, :, None]
        index_w = (cols[:, None] + step)[:, None, :]
        # channels-last view so one advanced-indexing assignment stamps every image's patch at its own place
        out.permute(0, 2, 3, 1)[index_b, index_h, index_w] = patch.permute(1, 2, 0)
        return out
