"""A picture of a trigger: clean images, their triggered copies and the (amplified) difference."""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F

from bdunlearn.atomic import atomic_path
from bdunlearn.attacks.base import Attack
from bdunlearn.data.images import to_pixels


def trigger_grid(attack: Attack, images: torch.Tensor, image_size: int, scale: int = 4, seed: int = 0) -> torch.Tensor:
    """uint8 [3, H, W] picture with three rows: the clean images, triggered copies and |difference|, each image
    enlarged ``scale`` times (nearest neighbour) and framed in white.

    The difference row is stretched so its largest value is white (subtle triggers such as WaNet stay visible).
    """
    clean = to_pixels(images, image_size)
    triggered = attack.apply(clean, torch.Generator().manual_seed(seed))
    difference = (triggered - clean).abs()
    difference = difference / difference.max().clamp_min(1e-8)
    rows = []
    for row in (clean, triggered, difference):
        big = F.interpolate(row.float().cpu(), scale_factor=scale, mode="nearest")  # [n, 3, S', S']
        padded = F.pad(big, (1, 1, 1, 1), value=1.0)
        rows.append(torch.cat(list(padded), dim=-1))  # [3, S'+2, n·(S'+2)]
    grid = torch.cat(rows, dim=-2)
    return (grid.clamp(0, 1) * 255).round().to(torch.uint8)


def save_png(grid: torch.Tensor, path: str | Path) -> Path:
    from PIL import Image

    path = Path(path)
    tmp = atomic_path(path)
    try:
        Image.fromarray(grid.permute(1, 2, 0).contiguous().numpy()).save(tmp, format="PNG")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
