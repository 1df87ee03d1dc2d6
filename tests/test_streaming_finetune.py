"""A split small enough for both paths trains identically streamed or in memory: same poisoned items, same
batches, same random trigger placements, same losses and weights (bit for bit on the CPU)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from bdunlearn.attacks import BadNets
from bdunlearn.data import stream
from bdunlearn.data.captions import from_captions
from bdunlearn.data.decoded import FileList, decode
from bdunlearn.data.poison import choose_pairs, poison, poison_pairs
from bdunlearn.models import clip as clips
from bdunlearn.models.zeroshot import ZeroShotClassifier
from bdunlearn.objectives import finetune_classifier, finetune_pairs
from bdunlearn.params import trainable_parameters
from bdunlearn.streaming import (
    finetune_classifier_streamed,
    finetune_pairs_streamed,
    poison_pairs_split,
    poison_split,
)
from bdunlearn.training import OptimSettings

SIZE = 16  # the tiny model's input


def _files(folder, count=24) -> FileList:
    rng = np.random.default_rng(1)
    paths = []
    for i in range(count):
        path = folder / f"{i:02d}.png"
        Image.fromarray(rng.integers(0, 256, (20, 18, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    return FileList(tuple(paths), tuple(i % 3 for i in range(count)))


def _classifier(seed=0) -> ZeroShotClassifier:
    torch.manual_seed(seed)
    model = clips.create("bdunlearn-tiny")
    return ZeroShotClassifier(model, torch.randn(3, 64), clips.preprocess_of(model))


def _weights(model) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


@pytest.fixture(autouse=True)
def _one_thread():
    """The tiny model trains faster on one thread than on several contended ones."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


SETTINGS = OptimSettings(steps=7, batch_size=8, lr=1e-3, weight_decay=0.1, warmup_steps=2)


def test_streamed_and_in_memory_classification_fine_tunes_are_identical(tmp_path):
    files = _files(tmp_path)
    attack = BadNets(target_class=0, poison_rate=0.25, patch_size=3, location="random")
    memory = decode(files, SIZE, dataset="t", split="train", root="/", num_workers=0, cache_dir=None)
    indices = attack.poison_indices(memory.labels, seed=4)

    in_memory = _classifier()
    params = list(trainable_parameters(in_memory.clip, "visual").values())
    expected = finetune_classifier(in_memory, params, poison(memory, attack, indices), attack, SIZE, SETTINGS, seed=4, desc="memory")

    streamed = _classifier()
    split, streamed_indices, _ = poison_split(stream.from_file_list(files, SIZE, num_workers=2), attack, seed=4)
    params = list(trainable_parameters(streamed.clip, "visual").values())
    got = finetune_classifier_streamed(streamed, params, split, attack, SIZE, SETTINGS, seed=4, desc="stream")

    assert torch.equal(streamed_indices, indices)
    assert got.losses == expected.losses
    assert all(torch.equal(a, b) for a, b in zip(_weights(streamed), _weights(in_memory), strict=True))


def test_streamed_and_in_memory_contrastive_fine_tunes_are_identical(tmp_path):
    files = _files(tmp_path, count=16)
    captions = [f"a photo of thing {i}" for i in range(16)]
    tokenizer = clips.tokenizer("bdunlearn-tiny")
    target = tokenizer(["a banana", "a photo of a banana"])
    attack = BadNets(target_class=0, poison_rate=0.1, patch_size=3, location="random")
    indices = choose_pairs(torch.arange(16), 4, seed=2)
    settings = OptimSettings(steps=5, batch_size=8, lr=1e-3)

    images = decode(files, SIZE, dataset="t", split="pairs", root="/", num_workers=0, cache_dir=None).images
    corpus = poison_pairs(from_captions(images, captions, tokenizer), indices, target, seed=2)
    in_memory = _classifier()
    expected = finetune_pairs(in_memory, list(in_memory.clip.parameters()), corpus, attack, SIZE, settings, seed=2, desc="memory")

    split = poison_pairs_split(stream.from_captions(list(files.paths), captions, SIZE, tokenizer, num_workers=0), indices, target, seed=2)
    streamed = _classifier()
    got = finetune_pairs_streamed(streamed, list(streamed.clip.parameters()), split, attack, SIZE, settings, seed=2, desc="stream")

    assert got.losses == expected.losses
    assert all(torch.equal(a, b) for a, b in zip(_weights(streamed), _weights(in_memory), strict=True))


def test_streamed_evaluation_equals_the_in_memory_one(tmp_path):
    from bdunlearn.evaluation import evaluate
    from bdunlearn.streaming import evaluate_streamed

    files = _files(tmp_path, count=20)
    classifier = _classifier()
    attack = BadNets(target_class=1, poison_rate=0.1, patch_size=4, location="bottom_right")
    memory = decode(files, SIZE, dataset="t", split="test", root="/", num_workers=0, cache_dir=None)
    expected = evaluate(classifier, memory, SIZE, 6, attack)
    got = evaluate_streamed(classifier, stream.from_file_list(files, SIZE, num_workers=0), SIZE, 6, attack)
    assert expected.asr is not None
    for name in ("clean_acc", "asr", "robust_acc"):  # counts over the same predictions; float32 means in memory
        assert getattr(got, name) == pytest.approx(getattr(expected, name), abs=1e-6)
