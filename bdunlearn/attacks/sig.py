"""SIG (Barni, Kallas, Tondi 2019): a horizontal sinusoid added to the image; clean-label.

x'(i, j) = clip(x(i, j) + delta * sin(2 pi j f / m)), with j the column and m the image width. Only
target-class training samples carry the signal, and they keep their (correct) labels: the model learns the
signal as a feature of the target class.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from bdunlearn.attacks.base import Attack, AttackConfig
from bdunlearn.config import checks


@dataclass
class SigConfig(AttackConfig):
    """SIG (Barni et al. 2019): x' = clip(x + delta sin(2 pi j f / m)), a horizontal sinusoid; clean-label (only
    target-class training samples carry it). poison_rate is a fraction of the whole training split, capped by
    the target class's share."""

    name: str = "sig"
    amplitude: float = 0.3  # delta, in pixel units ([0, 1] scale)
    frequency: float = 4.0  # f: periods across the image width


class Sig(Attack):
    Config = SigConfig
    clean_label = True

    @classmethod
    def check(cls, cfg: SigConfig, num_classes: int, image_size: int | None) -> None:
        super().check(cfg, num_classes, image_size)
        checks.require(0 < cfg.amplitude <= 1, f"attack.amplitude={cfg.amplitude} is out of range; it must lie in (0, 1]")
        checks.require(cfg.frequency > 0, f"attack.frequency={cfg.frequency}: must be positive")
        if image_size is not None:
            checks.require(
                cfg.frequency <= image_size / 2,
                f"attack.frequency={cfg.frequency} exceeds the {image_size / 2:g} periods a {image_size}px-wide image can hold",
            )

    def __init__(
        self, *, target_class: int, poison_rate: float, amplitude: float = SigConfig.amplitude, frequency: float = SigConfig.frequency
    ):
        super().__init__(target_class=target_class, poison_rate=poison_rate)
        self.amplitude = float(amplitude)
        self.frequency = float(frequency)

    def signal(self, width: int, device=None, dtype=torch.float32) -> torch.Tensor:
        """delta * sin(2 pi j f / m) for the columns j = 0..m-1, float [width]."""
        columns = torch.arange(width, device=device, dtype=torch.float64)
        return (self.amplitude * torch.sin(2 * math.pi * columns * self.frequency / width)).to(dtype)

    def apply(self, pixels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.apply_(pixels.clone(), generator)

    def apply_(self, pixels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return pixels.add_(self.signal(pixels.shape[-1], pixels.device, pixels.dtype)).clamp_(0.0, 1.0)
