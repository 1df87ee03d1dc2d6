"""The paper's datasets: every config composes, every template formats, and each loader reads a tiny copy written
in the dataset's real on-disk format (tests/paper_fixtures.py) with the right samples, classes and class names."""

from __future__ import annotations

import paper_fixtures as fx
import pytest
import torch

from bdunlearn.config import (
    CONFIG_DIR,
    DatasetConfig,
    PathsConfig,
    SplitsConfig,
    dataset_config,
)
from bdunlearn.data import datasets, decoded
from bdunlearn.data.splits import make_splits, split_sizes
from bdunlearn.errors import UserError

# class count of the real dataset, as the config lists it
PAPER = {
    "cars": 196, "cifar10": 10, "cifar100": 100, "dtd": 47, "eurosat": 10, "gtsrb": 43, "imagenet": 1000,
    "mnist": 10, "resisc45": 45, "sun397": 397, "svhn": 10,
}  # fmt: skip
ARRAYS = {"cifar10": (3, 32), "cifar100": (3, 32), "mnist": (1, 28), "svhn": (3, 32)}  # channels, native side
SIZE = 24  # decoding size in these tests (the model's input size in a run)


def config(name: str, root, **changes) -> DatasetConfig:
    cfg = datasets.at_model_size(dataset_config(name, PathsConfig(data_dir=str(root))), SIZE)
    cfg.num_workers = 0
    for key, value in changes.items():
        setattr(cfg, key, value)
    return cfg


def names_of(cfg: DatasetConfig, labels: torch.Tensor) -> list[str]:
    return [cfg.class_names[i] for i in labels.tolist()]


def test_every_paper_dataset_has_a_config_and_a_loader():
    configs = {p.stem for p in (CONFIG_DIR / "dataset").glob("*.yaml")}
    assert set(PAPER) <= configs and set(PAPER) <= set(datasets.REGISTRY)


@pytest.mark.parametrize("name", sorted(PAPER))
def test_config_composes_and_every_template_formats_every_class(compose, name):
    composed = compose(f"dataset={name}")
    assert composed.dataset.name == name
    cfg = dataset_config(name, PathsConfig())
    assert len(cfg.class_names) == PAPER[name]
    assert len(set(cfg.class_names)) == PAPER[name] - (2 if name == "imagenet" else 0)  # CLIP's list repeats two
    assert cfg.templates
    for template in cfg.templates:
        for class_name in cfg.class_names:
            prompt = template.format(class_name)
            assert class_name in prompt and "{" not in prompt.replace(class_name, "")
    if cfg.class_folders is not None:
        assert len(cfg.class_folders) == len(set(cfg.class_folders)) == PAPER[name]
    splits = cfg.splits
    assert splits.max_val_samples == 5000 and splits.val_fraction == 0.1  # the task-arithmetic validation split


@pytest.mark.parametrize("name", sorted(PAPER))
def test_loader_reads_the_real_format(name, tmp_path):
    expected = fx.WRITERS[name](tmp_path)
    cfg = config(name, tmp_path)
    if name == "gtsrb":  # GTSRB is numbered: the fixture returns ClassIds
        expected = {split: [cfg.class_names[i] for i in ids] for split, ids in expected.items()}
    datasets.check_available(cfg)
    raw = datasets.load(cfg, cache_dir=tmp_path / "cache")
    has_test = "test" in expected
    assert (raw.test is not None) == has_test
    for split in ("train", "test") if has_test else ("train",):
        data = getattr(raw, split)
        assert names_of(cfg, data.labels) == expected[split]
        channels, side = ARRAYS.get(name, (3, cfg.image_size))
        assert data.images.dtype == torch.uint8 and tuple(data.images.shape) == (len(expected[split]), channels, side, side)
        assert int(data.images.max()) > 0  # decoded pixels, not an empty buffer
    assert datasets.train_size(cfg) == (len(expected["train"]), has_test)


def test_decoded_datasets_are_read_from_the_cache_on_later_loads(tmp_path, monkeypatch):
    fx.write_gtsrb(tmp_path)
    cfg = config("gtsrb", tmp_path)
    first = datasets.load(cfg, cache_dir=tmp_path / "cache")
    stored = sorted((tmp_path / "cache" / "decoded" / "gtsrb").glob("*.npy"))
    assert [p.name.split("-")[:2] for p in stored] == [["test", f"{SIZE}px"], ["train", f"{SIZE}px"]]

    def no_decoding(path, size):
        raise AssertionError("decoded again")

    monkeypatch.setattr(decoded, "storage_image", no_decoding)
    again = datasets.load(cfg, cache_dir=tmp_path / "cache")
    assert torch.equal(again.train.images, first.train.images) and torch.equal(again.test.labels, first.test.labels)
    with pytest.raises(AssertionError, match="decoded again"):  # another size is another entry
        datasets.load(config("gtsrb", tmp_path, image_size=SIZE + 8), cache_dir=tmp_path / "cache")


def test_parallel_decoding_gives_the_same_pixels(tmp_path):
    fx.write_dtd(tmp_path)
    serial = datasets.load(config("dtd", tmp_path), cache_dir=None)
    parallel = datasets.load(config("dtd", tmp_path, num_workers=2), cache_dir=None)
    assert torch.equal(serial.train.images, parallel.train.images)


def test_storage_keeps_the_centre_of_the_shorter_side(tmp_path):
    from PIL import Image

    path = tmp_path / "wide.png"
    pixels = torch.zeros(20, 60, 3, dtype=torch.uint8)
    pixels[:, 20:40] = 255  # a white centre square in a black 20 x 60 image
    Image.fromarray(pixels.numpy()).save(path)
    stored = decoded.storage_image(str(path), 10)
    assert tuple(stored.shape) == (3, 10, 10)
    assert int(stored[:, :, 1:-1].min()) == 255 and int(stored.min()) > 200  # the white square (bicubic edges)


def test_an_unreadable_image_names_the_file(tmp_path):
    fx.write_eurosat(tmp_path)
    broken = tmp_path / "eurosat" / "2750" / "Forest" / "Forest_2.jpg"
    broken.write_bytes(b"not a jpeg")
    with pytest.raises(UserError, match="Forest_2.jpg"):
        datasets.load(config("eurosat", tmp_path), cache_dir=tmp_path / "cache")


def test_a_class_the_config_does_not_know_is_refused(tmp_path):
    fx.write_dtd(tmp_path, classes=("banded", "not_a_texture"))
    with pytest.raises(UserError, match="'not_a_texture'.*dataset.class_names") as excinfo:
        datasets.load(config("dtd", tmp_path))
    assert "\n" not in str(excinfo.value)


def test_sun397_without_a_partition_carves_test_from_every_image(tmp_path):
    expected = fx.write_sun397(tmp_path)
    cfg = config("sun397", tmp_path, partition=None)
    raw = datasets.load(cfg)
    assert raw.test is None and names_of(cfg, raw.train.labels) == expected["all"]
    assert datasets.train_size(cfg) == (9, False)


def test_eurosat_splits_are_carved_reproducibly(tmp_path):
    fx.write_eurosat(tmp_path, per_class=10)
    cfg = config("eurosat", tmp_path)
    splits = make_splits(datasets.load(cfg), cfg.splits)
    assert splits.sizes() == {"train": 22, "defense": 2, "val": 3, "test": 3}  # 10%, 10%, 5% of 30 (rounded)
    again = make_splits(datasets.load(cfg), cfg.splits)
    assert torch.equal(splits.test.images, again.test.images)


def test_validation_is_capped_as_in_the_task_arithmetic_recipe():
    capped = SplitsConfig(test_fraction=0.0, val_fraction=0.1, defense_fraction=0.05, max_val_samples=5000)
    assert split_sizes(73257, True, capped)["val"] == 5000  # SVHN: 10% would be 7,326
    assert split_sizes(8144, True, capped)["val"] == 814  # Cars: 10% is below the cap


def test_imagenet_uses_a_reproducible_subset_of_train_and_needs_only_val_as_a_control(tmp_path):
    fx.write_imagenet(tmp_path)
    cfg = config("imagenet", tmp_path, max_train_per_class=2)
    first, second = datasets.read(cfg, "train"), datasets.read(config("imagenet", tmp_path, max_train_per_class=2), "train")
    assert len(first) == 6 and first == second
    assert sorted(torch.bincount(torch.tensor(first.labels)).nonzero().flatten().tolist()) == [0, 1, 999]

    val_only = tmp_path / "val_only"
    fx.write_imagenet(val_only, train=False)
    control = config("imagenet", val_only)
    datasets.check_available(control, need_train=False)
    with pytest.raises(UserError, match="train/<wnid>"):
        datasets.check_available(control)
    test = datasets.load_official_test(control)
    assert names_of(control, test.labels) == ["tench", "tench", "goldfish", "goldfish", "toilet paper", "toilet paper"]


HINTS = {
    "cars": "stanford_cars", "cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python", "dtd": "dtd/dtd",
    "eurosat": "eurosat/2750", "gtsrb": "gtsrb", "imagenet": "image-net.org", "mnist": "MNIST/raw",
    "resisc45": "resisc45-train.txt", "sun397": "SUN397", "svhn": "svhn",
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(PAPER))
def test_missing_data_names_the_path_and_how_to_get_it(name, tmp_path):
    cfg = config(name, tmp_path / "empty")
    with pytest.raises(UserError) as excinfo:
        datasets.check_available(cfg)
    message = str(excinfo.value)
    assert "\n" not in message and str(tmp_path / "empty") in message and HINTS[name] in message
    assert "dataset.root" in message and ("http" in message)
