import gzip
import struct

import numpy as np
import pytest
import torch

from bdunlearn.config import DatasetConfig, SplitsConfig
from bdunlearn.data import bundled, datasets
from bdunlearn.data.captions import LabelledSource, build_corpus
from bdunlearn.data.images import BatchSchedule, ImageSet, to_pixels
from bdunlearn.data.splits import make_splits
from bdunlearn.errors import UserError


def test_digits_splits_are_disjoint_complete_and_reproducible():
    cfg = SplitsConfig(test_fraction=0.25, val_fraction=0.1, defense_fraction=0.15, seed=0)
    raw = datasets.load(DatasetConfig(name="digits", root="unused", class_names=list("0123456789"), templates=["{}"]))
    assert raw.train.images.dtype == torch.uint8 and raw.train.images.shape[1:] == (1, 8, 8)
    assert int(raw.train.images.max()) == 255
    a, b = make_splits(raw, cfg), make_splits(raw, cfg)
    sizes = a.sizes()
    assert sum(sizes.values()) == len(raw.train) == 1797
    assert sizes["test"] == round(0.25 * 1797) and sizes["defense"] == round(0.15 * 1797)
    assert torch.equal(a.defense.images, b.defense.images)
    # disjoint: no image of one split appears in another (digits has a few exact duplicates, so compare rows)
    flat = {name: {bytes(x.flatten().tolist()) for x in getattr(a, name).images} for name in sizes}
    assert len(flat["test"] & flat["defense"]) <= 2 and len(flat["val"] & flat["train"]) <= 5
    other = make_splits(raw, SplitsConfig(test_fraction=0.25, val_fraction=0.1, defense_fraction=0.15, seed=1))
    assert not torch.equal(a.defense.images, other.defense.images)


def _write_idx(path, array: np.ndarray):
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


def test_fashion_mnist_is_unpacked_from_a_debian_style_folder(tmp_path):
    source = tmp_path / "deb"
    source.mkdir()
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 30), ("t10k", 12)):
        _write_idx(source / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        _write_idx(source / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    cfg = DatasetConfig(name="fashion_mnist", root=str(tmp_path / "root"), class_names=list("abcdefghij"), templates=["{}"], source_dir=str(source))
    datasets.check_available(cfg)
    raw = datasets.load(cfg)
    assert raw.train.images.shape == (30, 1, 28, 28) and raw.test.images.shape == (12, 1, 28, 28)
    assert raw.test.labels.tolist() == [i % 10 for i in range(12)]
    assert (tmp_path / "root" / "FashionMNIST" / "raw" / "train-images-idx3-ubyte").is_file()
    splits = make_splits(raw, SplitsConfig(test_fraction=0.0, val_fraction=0.2, defense_fraction=0.2))
    assert splits.sizes() == {"train": 18, "defense": 6, "val": 6, "test": 12}


def test_fashion_mnist_unpacks_while_another_run_unpacks_the_same_files(tmp_path, monkeypatch):
    """Runs of a parallel sweep unpack at the same time: each writer finishes even when another wrote the file first."""
    source = tmp_path / "deb"
    source.mkdir()
    for prefix, n in (("train", 6), ("t10k", 4)):
        _write_idx(source / f"{prefix}-images-idx3-ubyte.gz", np.zeros((n, 28, 28)))
        _write_idx(source / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    cfg = DatasetConfig(name="fashion_mnist", root=str(tmp_path / "root"), class_names=list("abcdefghij"), templates=["{}"], source_dir=str(source))
    copy = bundled.shutil.copyfileobj
    interleaved = []

    def copy_while_another_run_unpacks(src, dst):
        if not interleaved:
            interleaved.append(True)
            bundled._unpack_fashion(cfg)  # the other run, between this writer's open and its rename
        copy(src, dst)

    monkeypatch.setattr(bundled.shutil, "copyfileobj", copy_while_another_run_unpacks)
    bundled._unpack_fashion(cfg)
    raw = tmp_path / "root" / "FashionMNIST" / "raw"
    assert interleaved and sorted(p.name for p in raw.iterdir()) == sorted(bundled.FASHION_FILES)


def test_missing_dataset_is_a_user_error(tmp_path):
    cfg = DatasetConfig(name="fashion_mnist", root=str(tmp_path), class_names=["a", "b"], templates=["{}"], source_dir=None)
    with pytest.raises(UserError, match="dataset-fashion-mnist"):
        datasets.check_available(cfg)


def test_to_pixels_resizes_and_expands_grey():
    images = torch.tensor([[[[0, 255], [255, 0]]]], dtype=torch.uint8)
    pixels = to_pixels(images, 4)
    assert pixels.shape == (1, 3, 4, 4) and pixels.min() >= 0 and pixels.max() <= 1
    assert torch.equal(to_pixels(images, 2)[0, 0], torch.tensor([[0.0, 1.0], [1.0, 0.0]]))


def test_batch_schedule_covers_every_sample_each_pass_and_is_a_function_of_the_step():
    schedule = BatchSchedule(10, 4, seed=0)
    first_pass = torch.cat([schedule(0), schedule(1)])
    assert len(set(first_pass.tolist())) == 8  # 10 // 4 = 2 full batches per pass
    assert not torch.equal(schedule(0), schedule(2))  # a new shuffle every pass
    resumed = BatchSchedule(10, 4, seed=0)
    assert torch.equal(resumed(5), schedule(5)) and torch.equal(resumed(1), schedule(1))
    assert len(BatchSchedule(3, 8, seed=0)(0)) == 3


def test_caption_corpus_pairs_images_with_their_class(tiny_clip):
    from bdunlearn.models.clip import tokenizer

    data = ImageSet(torch.zeros(20, 1, 8, 8, dtype=torch.uint8), torch.arange(20) % 2)
    source = LabelledSource(data, ["cat", "dog"], ["a {}.", "the {}!"], fraction=0.5)
    corpus = build_corpus([source, LabelledSource(data, ["x", "y", "z"], ["{}"], fraction=0.1)], tokenizer("bdunlearn-tiny"), 16, seed=0)
    assert len(corpus) == 12 and corpus.images.shape == (12, 3, 16, 16)
    assert corpus.caption_tokens.shape[:2] == (5, 2)  # 2 + 3 classes, 2 templates each (cycled for the second)
    assert corpus.classes[:10].max() <= 1 and corpus.classes[10:].min() >= 2
    captions = corpus.sampler(torch.Generator().manual_seed(0))(torch.arange(12))
    assert captions.shape == (12, 16)
