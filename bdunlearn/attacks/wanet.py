"""WaNet (Nguyen & Tran 2021): an imperceptible, smooth warp of the whole image.

A random k x k field of 2-d control displacements in [-1, 1] is normalised to mean absolute value 1,
upsampled to the image with bicubic interpolation, scaled by s / H (so s sets the warp's strength in
grid_sample's [-1, 1] coordinates), added to the identity grid, multiplied by grid_rescale, clamped to
[-1, 1] and applied with grid_sample. The warp is fixed by ``warp_seed``: every triggered image gets the same.

Noise mode: ``cross_ratio`` x (number of poisoned samples) further training samples get the warp plus a fresh
random perturbation of the grid per image and keep their labels, so that the model learns the exact warp
rather than "any warp" as the trigger.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from bdunlearn.attacks.base import Attack, AttackConfig
from bdunlearn.config import checks


@dataclass
class WaNetConfig(AttackConfig):
    """WaNet (Nguyen & Tran 2021): a fixed smooth warp (k x k random control field, bicubic upsampling, strength
    s) as the trigger; all-to-one. Noise mode: cross_ratio x (poisoned count) more samples get the warp plus
    per-image random grid noise and keep their labels."""

    name: str = "wanet"
    poison_rate: float = 0.3
    grid_size: int = 4  # k: control points per side
    strength: float = 4.0  # s
    grid_rescale: float = 1.0  # factor on the warped grid before it is clamped to the image
    cross_ratio: float = 0.25  # cross samples per poisoned sample (0: no noise mode)
    warp_seed: int = 0  # seed of the control field


class WaNet(Attack):
    Config = WaNetConfig

    @classmethod
    def check(cls, cfg: WaNetConfig, num_classes: int, image_size: int | None) -> None:
        super().check(cfg, num_classes, image_size)
        checks.require(cfg.grid_size >= 2, f"attack.grid_size={cfg.grid_size}: must be at least 2")
        if image_size is not None:
            checks.require(
                cfg.grid_size <= image_size,
                f"attack.grid_size={cfg.grid_size} exceeds the model's {image_size}px input; use at most {image_size}",
            )
        checks.require(cfg.strength > 0, f"attack.strength={cfg.strength}: must be positive")
        checks.require(cfg.grid_rescale > 0, f"attack.grid_rescale={cfg.grid_rescale}: must be positive")
        checks.require(cfg.cross_ratio >= 0, f"attack.cross_ratio={cfg.cross_ratio}: must be non-negative")
        checks.require(
            cfg.poison_rate * (1 + cfg.cross_ratio) <= 1,
            f"attack.poison_rate={cfg.poison_rate} with attack.cross_ratio={cfg.cross_ratio} needs "
            f"{cfg.poison_rate * (1 + cfg.cross_ratio):g} of the training split; lower one of them",
        )

    def __init__(
        self,
        *,
        target_class: int,
        poison_rate: float,
        grid_size: int = WaNetConfig.grid_size,
        strength: float = WaNetConfig.strength,
        grid_rescale: float = WaNetConfig.grid_rescale,
        cross_ratio: float = WaNetConfig.cross_ratio,
        warp_seed: int = WaNetConfig.warp_seed,
    ):
        super().__init__(target_class=target_class, poison_rate=poison_rate)
        self.grid_size = int(grid_size)
        self.strength = float(strength)
        self.grid_rescale = float(grid_rescale)
        self.cross_ratio = float(cross_ratio)
        self.warp_seed = int(warp_seed)

    def control_field(self) -> torch.Tensor:
        """The k x k control displacements, float [1, 2, k, k], mean absolute value 1."""
        k = self.grid_size
        field = torch.rand(1, 2, k, k, generator=torch.Generator().manual_seed(self.warp_seed)) * 2 - 1
        return field / field.abs().mean()

    def warp_grid(self, height: int, width: int, device=None) -> torch.Tensor:
        """The sampling grid of the trigger, float [1, H, W, 2] (x, y) in [-1, 1]."""
        if height != width:
            raise ValueError(f"WaNet expects square images, got {height}x{width}")
        flow = F.interpolate(self.control_field(), size=(height, width), mode="bicubic", align_corners=True)
        flow = flow.permute(0, 2, 3, 1).to(device)
        axis = torch.linspace(-1, 1, height, device=device)
        rows, cols = torch.meshgrid(axis, axis, indexing="ij")
        identity = torch.stack((cols, rows), dim=-1)[None]
        return ((identity + self.strength * flow / height) * self.grid_rescale).clamp(-1, 1)

    def _sample(self, pixels: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        if len(pixels) == 0:
            return pixels.clone()
        grid = grid.to(pixels.dtype).expand(len(pixels), -1, -1, -1)
        return F.grid_sample(pixels, grid, mode="bilinear", padding_mode="zeros", align_corners=True).clamp(0.0, 1.0)

    def apply(self, pixels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return self._sample(pixels, self.warp_grid(pixels.shape[-2], pixels.shape[-1], pixels.device))

    def apply_cross(self, pixels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        batch, _, height, width = pixels.shape
        grid = self.warp_grid(height, width, pixels.device)
        noise = torch.rand(batch, height, width, 2, generator=generator).to(pixels.device) * 2 - 1
        return self._sample(pixels, (grid + noise / height).clamp(-1, 1))

    def cross_indices(self, labels: torch.Tensor, poisoned: torch.Tensor, seed: int) -> torch.Tensor:
        """``round(cross_ratio * len(poisoned))`` samples of any class, not poisoned, reproducible from ``seed``."""
        labels = labels.cpu()
        free = torch.ones(len(labels), dtype=torch.bool)
        free[poisoned.cpu()] = False
        pool = torch.nonzero(free).flatten()
        count = min(int(round(self.cross_ratio * len(poisoned))), len(pool))
        generator = torch.Generator().manual_seed(seed + 1)  # a stream apart from poison_indices'
        return pool[torch.randperm(len(pool), generator=generator)[:count]].sort().values
