"""The procedurally generated captioned corpus (dataset=shapes): the same images everywhere, every class a whole
description, and usable as a pretraining corpus beside the run's own data."""

from __future__ import annotations

import torch

from bdunlearn.data import procedural


def test_shapes_are_a_pure_function_of_the_split_and_cover_every_attribute():
    first, again, test = procedural.shapes(None, "test"), procedural.shapes(None, "test"), procedural.shapes(None, "train")
    assert torch.equal(first.images, again.images) and torch.equal(first.labels, again.labels)
    assert first.images.shape == (procedural.IMAGES["test"], 3, procedural.SIZE, procedural.SIZE)
    assert len(test) == procedural.IMAGES["train"] and not torch.equal(test.images[:10], first.images[:10])
    names = procedural.class_names()
    assert len(set(names)) == len(names) == 3 * 6 * 5 * 5 * 3
    assert "two red circles at the top left on a striped background" in names
    assert "one white cross in the centre on a dotted background" in names
    assert len(torch.unique(first.labels)) > 900  # 2,000 draws over 1,350 classes


def test_an_image_shows_its_description():
    import numpy as np

    names = procedural.class_names()
    label = names.index("three blue squares at the bottom right on a plain background")
    image = procedural.render(label, np.random.default_rng(0)).astype(int)
    blue = (image[2] > 180) & (image[0] < 120) & (image[1] < 150)
    rows, cols = np.nonzero(blue)
    assert rows.min() >= 14 and cols.min() >= 14  # the bottom right
    assert blue.sum() >= 3 * 25  # three squares of about 5 x 5 px


def test_shapes_join_a_pretraining_corpus_with_their_generated_captions(compose):
    from bdunlearn import pipeline
    from bdunlearn.preflight import validated

    cfg = validated(compose("model.pretrain.corpus=[digits,shapes]"))
    ctx = pipeline.RunContext(cfg, torch.device("cpu"), None, None, None)
    shapes = ctx.load_dataset("shapes")
    assert shapes.class_names == procedural.class_names() and shapes.pretrain_fraction == 1.0
