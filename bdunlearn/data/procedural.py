"""``shapes``: a procedurally generated captioned corpus, for pretraining θ_pre more broadly than the offline data
allows (digits and Fashion-MNIST are all there is without a network).

Every image draws one to three objects of one shape and colour, in one region of the image, over a textured
background; its class is the whole description ("two red circles at the top left on a striped background"), so
a caption names counts, colours, shapes, positions and textures. The data are a pure function of the split: the
same images on every machine, no files.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch

from bdunlearn.data.images import ImageSet

SIZE = 32  # pixels per side (resized to the model's input like every array dataset)
IMAGES = {"train": 20_000, "test": 2_000}
SPLIT_SEEDS = {"train": 0, "test": 1}
COUNTS = ("one", "two", "three")
COLOURS = {
    "red": (230, 40, 40),
    "green": (40, 200, 60),
    "blue": (50, 80, 240),
    "yellow": (235, 220, 40),
    "white": (245, 245, 245),
    "magenta": (220, 50, 220),
}
SHAPES = ("circle", "square", "triangle", "cross", "ring")
PLURALS = {"cross": "crosses"}
REGIONS = {  # region name → centre (row, column) of where its objects are scattered
    "at the top left": (8, 8),
    "at the top right": (8, 24),
    "at the bottom left": (24, 8),
    "at the bottom right": (24, 24),
    "in the centre": (16, 16),
}
TEXTURES = ("plain", "striped", "dotted")
RADIUS = 3.5
SLOTS = np.array([(-4.0, -4.0), (-4.0, 4.0), (4.0, 0.0)])  # offsets from the region's centre: counts stay countable
JITTER = 1.0


def _classes() -> list[tuple[int, str, str, str, str]]:
    return list(itertools.product(range(len(COUNTS)), COLOURS, SHAPES, REGIONS, TEXTURES))


def _describe(count: int, colour: str, shape: str, region: str, texture: str) -> str:
    noun = shape if count == 0 else PLURALS.get(shape, shape + "s")
    return f"{COUNTS[count]} {colour} {noun} {region} on a {texture} background"


def class_names(cfg=None) -> list[str]:
    return [_describe(*c) for c in _classes()]


def _mask(shape: str, dy: np.ndarray, dx: np.ndarray) -> np.ndarray:
    if shape == "circle":
        return dy**2 + dx**2 <= RADIUS**2
    if shape == "ring":
        return (dy**2 + dx**2 <= RADIUS**2) & (dy**2 + dx**2 >= (RADIUS - 1.5) ** 2)
    if shape == "square":
        return np.maximum(np.abs(dy), np.abs(dx)) <= RADIUS * 0.8
    if shape == "triangle":  # pointing up: widening from the apex down to the base
        return (dy >= -RADIUS) & (dy <= RADIUS * 0.8) & (np.abs(dx) <= (dy + RADIUS) * 0.55)
    arm = RADIUS / 3
    return ((np.abs(dx) <= arm) & (np.abs(dy) <= RADIUS)) | ((np.abs(dy) <= arm) & (np.abs(dx) <= RADIUS))


def _background(texture: str, rng: np.random.Generator, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    level = rng.integers(10, 60)
    if texture == "plain":
        return np.full((SIZE, SIZE), level, dtype=np.float32)
    if texture == "striped":
        period = rng.integers(3, 6)
        return np.where((rows + rng.integers(0, period)) % period == 0, level + 70, level).astype(np.float32)
    return np.where((rows % 4 == 1) & (cols % 4 == 1), level + 90, level).astype(np.float32)


def render(label: int, rng: np.random.Generator) -> np.ndarray:
    """One uint8 [3, SIZE, SIZE] image of class ``label``."""
    count, colour, shape, region, texture = _classes()[label]
    rows, cols = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    image = np.repeat(_background(texture, rng, rows, cols)[None], 3, axis=0)
    centre = np.array(REGIONS[region], dtype=np.float32)
    for slot in rng.permutation(len(SLOTS))[: count + 1]:
        row, col = centre + SLOTS[slot] + rng.uniform(-JITTER, JITTER, size=2)
        inside = _mask(shape, rows - row, cols - col)
        image[:, inside] = np.array(COLOURS[colour], dtype=np.float32)[:, None]
    noise = rng.normal(0.0, 6.0, size=image.shape)
    return np.clip(image + noise, 0, 255).astype(np.uint8)


def shapes(cfg, split: str) -> ImageSet:
    rng = np.random.default_rng(SPLIT_SEEDS[split])
    labels = rng.integers(0, len(_classes()), size=IMAGES[split])
    images = np.stack([render(int(label), rng) for label in labels])
    return ImageSet(torch.from_numpy(images), torch.from_numpy(labels).long())


def shapes_size(cfg) -> int:
    return IMAGES["train"]
