"""A user's own images: class folders (dataset=folder) and a CSV of path,label (dataset=csv), on real files."""

from __future__ import annotations

import os
from dataclasses import replace

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from bdunlearn.config import CONFIG_DIR, DatasetConfig
from bdunlearn.data import datasets, folder, labelled_csv
from bdunlearn.data.decoded import storage_image
from bdunlearn.data.splits import make_splits
from bdunlearn.errors import UserError

SIZE = 16
PER_CLASS = 6


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8), bunch.target


def write_image(path, pixels: np.ndarray) -> str:
    """An 8x8 grey digit as a 16x16 RGB file (format from the suffix)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).convert("RGB").resize((SIZE, SIZE), Image.NEAREST).save(path)
    return str(path)


def write_classes(base, digits, classes: dict[str, int], per_class: int = PER_CLASS, offset: int = 0) -> dict[str, list[str]]:
    """``base/<folder>/`` holding ``per_class`` images of digit ``classes[folder]`` (PNG and JPEG mixed)."""
    images, targets = digits
    written = {}
    for name, digit in classes.items():
        members = np.flatnonzero(targets == digit)[offset : offset + per_class]
        written[name] = [
            write_image(base / name / f"{i:03d}.{'png' if i % 2 else 'jpg'}", images[m]) for i, m in enumerate(members)
        ]
    return written


def config(name: str, root, **changes) -> DatasetConfig:
    """The shipped conf/dataset/<name>.yaml, typed, with ``root`` set (as dataset=<name> dataset.root=...)."""
    node = OmegaConf.merge(OmegaConf.structured(DatasetConfig), OmegaConf.load(CONFIG_DIR / "dataset" / f"{name}.yaml"))
    node.root = str(root)
    cfg = OmegaConf.to_object(node)
    cfg.image_size, cfg.num_workers = SIZE, 0
    for key, value in changes.items():
        setattr(cfg, key, value)
    return cfg


def one_line_error(call, *words: str) -> str:
    with pytest.raises(UserError) as excinfo:
        call()
    message = str(excinfo.value)
    assert "\n" not in message, message
    for word in words:
        assert word in message, message
    return message


# --- class folders -------------------------------------------------------------------------------------


def test_class_folders_are_listed_labelled_decoded_and_carved(tmp_path, digits):
    written = write_classes(tmp_path / "data", digits, {"digit_zero": 0, "digit_one": 1, "digit_two": 2})
    (tmp_path / "data" / "notes.txt").write_text("not an image")
    (tmp_path / "data" / "digit_one" / "._001.png").write_bytes(b"macOS resource fork")
    cfg = config("folder", tmp_path / "data")
    folder.check(cfg)
    assert cfg.templates == ["a photo of a {}."] and not datasets.has_official_test(cfg)
    cfg = datasets.with_class_names(cfg)
    assert cfg.class_names == ["digit one", "digit two", "digit zero"]  # sorted folders, '_' read as ' '

    raw = datasets.load(cfg, cache_dir=tmp_path / "cache")
    assert raw.test is None and len(raw.train) == 3 * PER_CLASS
    assert raw.train.images.shape == (3 * PER_CLASS, 3, SIZE, SIZE)
    listing = datasets.read(cfg, "train")
    for path, label, image in zip(listing.paths, listing.labels, raw.train.images, strict=True):
        assert path in written[sorted(written)[label]]
        assert torch.equal(image, storage_image(path, SIZE))
    splits = make_splits(raw, cfg.splits)
    assert sum(splits.sizes().values()) == 3 * PER_CLASS and len(splits.test) == round(0.2 * 3 * PER_CLASS)


def test_train_and_test_folders_are_the_official_splits(tmp_path, digits):
    root = tmp_path / "data"
    write_classes(root / "train", digits, {"cat": 3, "dog": 5, "fox": 7})
    write_classes(root / "test", digits, {"dog": 5, "fox": 7}, per_class=2, offset=PER_CLASS)
    cfg = datasets.with_class_names(config("folder", root))
    assert cfg.class_names == ["cat", "dog", "fox"] and datasets.has_official_test(cfg)
    raw = datasets.load(cfg, cache_dir=None)
    assert len(raw.train) == 3 * PER_CLASS and raw.test.labels.tolist() == [1, 1, 2, 2]  # the training folders' labels
    splits = make_splits(raw, cfg.splits)
    assert splits.test is raw.test and sum(len(getattr(splits, s)) for s in ("train", "val", "defense")) == 3 * PER_CLASS


def test_val_folder_is_the_test_split_when_there_is_no_test_folder(tmp_path, digits):
    write_classes(tmp_path / "train", digits, {"a": 0, "b": 1})
    write_classes(tmp_path / "val", digits, {"a": 0}, per_class=1, offset=PER_CLASS)
    cfg = config("folder", tmp_path)
    assert datasets.has_official_test(cfg) and len(datasets.read(cfg, "test")) == 1


def test_a_class_called_train_is_a_class_not_a_split(tmp_path, digits):
    write_classes(tmp_path, digits, {"plane": 0, "ship": 1, "train": 2})  # CIFAR-100 has a class "train"
    cfg = config("folder", tmp_path)
    assert folder.class_names(cfg) == ["plane", "ship", "train"] and not datasets.has_official_test(cfg)
    assert sorted(set(datasets.read(cfg, "train").labels)) == [0, 1, 2]


def test_the_files_fingerprint_follows_the_content_not_the_name(tmp_path, digits):
    write_classes(tmp_path / "a", digits, {"x": 0, "y": 1})
    write_classes(tmp_path / "b", digits, {"x": 0, "y": 1}, offset=PER_CLASS)  # same names, other images
    first = datasets.files_fingerprint(config("folder", tmp_path / "a"))
    assert first == datasets.files_fingerprint(config("folder", tmp_path / "a"))
    assert first != datasets.files_fingerprint(config("folder", tmp_path / "b"))
    write_image(tmp_path / "a" / "y" / "000.jpg", digits[0][-1])  # an image replaced in place
    assert first != datasets.files_fingerprint(config("folder", tmp_path / "a"))
    assert datasets.files_fingerprint(replace(config("folder", tmp_path / "a"), name="digits")) is None  # the registry's


def test_class_names_come_from_the_config_then_a_classnames_file(tmp_path, digits):
    write_classes(tmp_path, digits, {"c0": 0, "c1": 1})
    (tmp_path / "classnames.txt").write_text("zero\n\none\n")
    assert folder.class_names(config("folder", tmp_path)) == ["zero", "one"]
    assert folder.class_names(config("folder", tmp_path, class_names=["nought", "unit"])) == ["nought", "unit"]
    (tmp_path / "classnames.txt").unlink()
    (tmp_path / "classnames.yaml").write_text("c1: the digit one\nc0: the digit zero\n")
    assert folder.class_names(config("folder", tmp_path)) == ["the digit zero", "the digit one"]


def test_a_class_list_that_does_not_match_the_folders_is_refused(tmp_path, digits):
    write_classes(tmp_path, digits, {"c0": 0, "c1": 1, "c2": 2})
    one_line_error(lambda: folder.check(config("folder", tmp_path, class_names=["a", "b"])), "2 names", "3 classes")
    (tmp_path / "classnames.txt").write_text("zero\none\n")
    one_line_error(lambda: folder.check(config("folder", tmp_path)), "classnames.txt", "2 class names", "3 classes")
    (tmp_path / "classnames.txt").unlink()
    (tmp_path / "classnames.yaml").write_text("c0: zero\nc1: one\nc9: nine\n")
    one_line_error(lambda: folder.check(config("folder", tmp_path)), "classnames.yaml", "'c2'")
    (tmp_path / "classnames.txt").write_text("zero\none\ntwo\n")
    one_line_error(lambda: folder.check(config("folder", tmp_path)), "keep one")


def test_structural_mistakes_are_one_line_errors_from_the_check(tmp_path, digits):
    cases = {
        "missing root": (tmp_path / "nowhere", "does not exist"),
        "empty root": (tmp_path / "empty", "no class folders"),
        "loose images": (tmp_path / "loose", "loose images"),
        "one class": (tmp_path / "single", "one class folder"),
        "empty class": (tmp_path / "hollow", "holds no images"),
        "test without train": (tmp_path / "only_test", "no train/"),
        "unknown test class": (tmp_path / "odd_test", "no matching folder"),
    }
    (tmp_path / "empty").mkdir()
    write_image(tmp_path / "loose" / "a.png", digits[0][0])
    write_classes(tmp_path / "single", digits, {"only": 0})
    write_classes(tmp_path / "hollow", digits, {"a": 0, "b": 1})
    (tmp_path / "hollow" / "c" / "sub").mkdir(parents=True)
    write_classes(tmp_path / "only_test" / "test", digits, {"a": 0, "b": 1})
    write_classes(tmp_path / "odd_test" / "train", digits, {"a": 0, "b": 1})
    write_classes(tmp_path / "odd_test" / "test", digits, {"z": 2}, per_class=1)
    for what, (root, words) in cases.items():
        cfg = config("folder", root)
        message = one_line_error(lambda cfg=cfg: folder.check(cfg), words)
        assert folder.missing(cfg) == message, what
        one_line_error(lambda cfg=cfg: datasets.check_available(cfg), words)  # preflight's generic entry


def test_an_unreadable_image_is_a_one_line_error_before_any_training(tmp_path, digits):
    write_classes(tmp_path, digits, {"a": 0, "b": 1})
    (tmp_path / "b" / "zzz.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not a PNG")
    cfg = datasets.with_class_names(config("folder", tmp_path))
    folder.check(cfg)  # structure only: nothing is decoded
    one_line_error(lambda: datasets.load(cfg, cache_dir=tmp_path / "cache"), "cannot decode image", "zzz.png")


# --- CSV -----------------------------------------------------------------------------------------------


def write_csv(path, rows: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(rows) + "\n")


def test_csv_rows_with_a_header_and_a_split_column(tmp_path, digits):
    written = write_classes(tmp_path / "images", digits, {"cat": 3, "dog": 5})
    rows = ["split,label,path"]  # the columns in any order; paths relative to the file's folder
    for name, paths in written.items():
        rows += [f"{'test' if i == 0 else ''},{name},{os.path.relpath(p, tmp_path)}" for i, p in enumerate(paths)]
    write_csv(tmp_path / "labels.csv", rows)
    cfg = config("csv", tmp_path / "labels.csv")
    labelled_csv.check(cfg)
    cfg = datasets.with_class_names(cfg)
    assert cfg.class_names == ["cat", "dog"] and datasets.has_official_test(cfg)
    raw = datasets.load(cfg, cache_dir=tmp_path / "cache")
    assert raw.test.labels.tolist() == [0, 1] and len(raw.train) == 2 * (PER_CLASS - 1)
    listing = datasets.read(cfg, "test")
    assert torch.equal(raw.test.images[1], storage_image(listing.paths[1], SIZE))


def test_csv_without_header_with_integer_labels_and_a_classnames_file(tmp_path, digits):
    written = write_classes(tmp_path, digits, {"x": 0, "y": 1, "z": 2})
    write_csv(tmp_path / "list.csv", [f"{p},{label}" for label, paths in enumerate(written.values()) for p in paths])
    cfg = config("csv", tmp_path / "list.csv")
    assert labelled_csv.class_names(cfg) == ["0", "1", "2"] and not datasets.has_official_test(cfg)
    (tmp_path / "classnames.txt").write_text("zero\none\ntwo\n")
    cfg = datasets.with_class_names(cfg)
    assert cfg.class_names == ["zero", "one", "two"]
    listing = datasets.read(cfg, "train")
    assert [written[["x", "y", "z"][label]].count(path) for path, label in zip(listing.paths, listing.labels)] == [1] * 3 * PER_CLASS


def test_csv_mistakes_are_one_line_errors_from_the_check(tmp_path, digits):
    written = write_classes(tmp_path, digits, {"a": 0, "b": 1})
    good = [f"{p},{name}" for name, paths in written.items() for p in paths]
    cases = {
        "missing.csv": (None, "does not exist"),
        "fields.csv": (good + ["x.png,a,train,extra"], "4 fields"),
        "split.csv": ([g + ",validation" for g in good], "split 'validation'"),
        "gone.csv": (good + ["nowhere.png,a"], "not found"),
        "single.csv": ([g for g in good if g.endswith(",a")], "one class"),
        "names.csv": (good, "label 'b'"),  # with class_names=["a", "c"]
        "empty.csv": (["path,label"], "lists no images"),
        "alltest.csv": ([g + ",test" for g in good], "every row is split=test"),
        "nolabel.csv": (good + [f"{good[0].split(',')[0]},"], "empty label"),
    }
    for name, (rows, words) in cases.items():
        if rows is not None:
            write_csv(tmp_path / name, rows)
        cfg = config("csv", tmp_path / name, class_names=["a", "c"] if name == "names.csv" else [])
        message = one_line_error(lambda cfg=cfg: labelled_csv.check(cfg), words)
        assert labelled_csv.missing(cfg) == message, name


# --- through the command ------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_folder_of_images_runs_end_to_end(run_cli, tmp_path, digits, cache_dir):
    write_classes(tmp_path / "mine", digits, {"one": 1, "seven": 7, "zero": 0}, per_class=100)
    done, run_dir = run_cli(
        "dataset=folder", f"dataset.root={tmp_path / 'mine'}", "dataset.class_names=[one,seven,zero]",
        "dataset.num_workers=0", f"paths.cache_dir={cache_dir}", "model.pretrain.steps=80", "finetune.steps=120",
        "defense.steps=30", "defense.num_samples=20", "logger.wandb.mode=disabled",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    import json

    record = json.loads((run_dir / "result.json").read_text())
    assert record["status"] == "ok" and record["dataset"] == "folder" and record["asr_backdoored"] > 0.5
    assert list((cache_dir / "decoded" / "folder").glob("train-16px-*.npy"))  # decoded once, at the model's size
