"""Trigger patterns shared by the attacks: fixed-seed noise and images read from a file."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from bdunlearn.config import checks
from bdunlearn.errors import UserError


def noise(channels: int, height: int, width: int, seed: int) -> torch.Tensor:
    """Uniform noise in [0, 1], float [channels, height, width], the same for the same seed on every device."""
    return torch.rand(channels, height, width, generator=torch.Generator().manual_seed(seed))


def check_choice(pattern: str, pattern_file: str | None, options: tuple[str, ...]) -> None:
    """Config check of an attack's ``pattern`` / ``pattern_file`` pair (one-line UserError)."""
    checks.choice(pattern, options, "attack.pattern")
    if pattern == "file":
        check_image_file(pattern_file, "attack.pattern_file")


def require_arguments(pattern: str, pattern_file: str | None, options: tuple[str, ...]) -> None:
    """Constructor check of the same pair, for attacks built in code (ValueError)."""
    if pattern not in options:
        raise ValueError(f"pattern must be one of {options}, got {pattern!r}")
    if pattern == "file" and pattern_file is None:
        raise ValueError("pattern='file' needs pattern_file")


def check_image_file(path: str | None, key: str) -> None:
    """One-line UserError unless ``path`` names an image PIL can open."""
    checks.require(path is not None, f"{key} is not set; give the path of an image file")
    resolved = Path(path).expanduser()
    checks.require(resolved.is_file(), f"{key}={path}: no such file")
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(resolved) as image:
            image.verify()
    except (UnidentifiedImageError, OSError) as exc:
        raise UserError(f"{key}={path}: not an image PIL can read ({type(exc).__name__})") from exc


def image_file(path: str, channels: int, height: int, width: int) -> torch.Tensor:
    """The image at ``path`` as float [channels, height, width] in [0, 1] (bilinear resize; grey or RGB)."""
    from PIL import Image

    with Image.open(Path(path).expanduser()) as image:
        image = image.convert("L" if channels == 1 else "RGB")
        data = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8)
        pixels = data.view(image.height, image.width, -1).permute(2, 0, 1).float().div(255.0)
    resized = F.interpolate(pixels[None], size=(height, width), mode="bilinear", align_corners=False, antialias=True)
    return resized[0].clamp(0.0, 1.0).expand(channels, height, width).contiguous()
