"""Tiny copies of the paper's datasets, written in each dataset's real on-disk format (the files torchvision or
the literature's loaders read): pickled CIFAR batches, IDX files, SVHN's .mat, GTSRB's folders and CSV, DTD's
label lists, EuroSAT's and RESISC45's class folders, SUN397's ClassName.txt and partition lists, Stanford
Cars' devkit .mat files, ImageNet's wnid folders. Images are random pixels; class folders are real ones, so
the loaders' class-name mapping is exercised on the names the real datasets use.

Each ``write_<name>(root)`` returns what a loader must find: per split, the class names (as the config spells
them) of the images in path order, or (for array datasets) in file order.
"""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np
from PIL import Image

RNG_SEED = 0


def _image(path: Path, size: tuple[int, int], seed: int, fmt: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format=fmt)


# --- arrays ------------------------------------------------------------------------------------------------


def _pickle(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(obj))


def write_cifar10(root: Path) -> dict[str, list[str]]:
    """Five train batches of 2 images and a test batch of 3; batches.meta with the real label names."""
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    folder = root / "cifar-10-batches-py"
    rng = np.random.default_rng(RNG_SEED)
    train = []
    for batch in range(5):
        labels = [(2 * batch + i) % 10 for i in range(2)]
        _pickle(folder / f"data_batch_{batch + 1}", {"data": rng.integers(0, 256, (2, 3072), dtype=np.uint8), "labels": labels})
        train += labels
    test = [9, 0, 4]
    _pickle(folder / "test_batch", {"data": rng.integers(0, 256, (3, 3072), dtype=np.uint8), "labels": test})
    _pickle(folder / "batches.meta", {"label_names": names, "num_cases_per_batch": 2})
    return {"train": [names[i] for i in train], "test": [names[i] for i in test]}


def write_cifar100(root: Path, names=("apple", "aquarium_fish", "maple_tree", "willow_tree")) -> dict[str, list[str]]:
    """A meta file listing a few of the real fine label names (underscores included) and labels indexing it."""
    folder = root / "cifar-100-python"
    rng = np.random.default_rng(RNG_SEED)
    train, test = [0, 1, 2, 3, 1, 2], [3, 1]
    for split, labels in (("train", train), ("test", test)):
        data = rng.integers(0, 256, (len(labels), 3072), dtype=np.uint8)
        _pickle(folder / split, {"data": data, "fine_labels": labels, "coarse_labels": [0] * len(labels)})
    _pickle(folder / "meta", {"fine_label_names": list(names), "coarse_label_names": ["x"]})
    clean = [n.replace("_", " ") for n in names]
    return {"train": [clean[i] for i in train], "test": [clean[i] for i in test]}


def _idx(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def write_mnist(root: Path) -> dict[str, list[str]]:
    raw = root / "MNIST" / "raw"
    rng = np.random.default_rng(RNG_SEED)
    labels = {"train": np.arange(12) % 10, "t10k": np.array([7, 2, 1, 0])}
    for prefix, y in labels.items():
        _idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (len(y), 28, 28)))
        _idx(raw / f"{prefix}-labels-idx1-ubyte", y)
    return {"train": [str(i) for i in labels["train"]], "test": [str(i) for i in labels["t10k"]]}


def write_svhn(root: Path) -> dict[str, list[str]]:
    """.mat files as SVHN ships them: X is 32 x 32 x 3 x N, y is N x 1 with 10 standing for the digit 0."""
    from scipy.io import savemat

    folder = root / "svhn"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(RNG_SEED)
    digits = {"train": [10, 1, 2, 3, 9, 10, 5], "test": [4, 10, 6]}
    for split, y in digits.items():
        x = rng.integers(0, 256, (32, 32, 3, len(y)), dtype=np.uint8)
        savemat(str(folder / f"{split}_32x32.mat"), {"X": x, "y": np.array(y, dtype=np.uint8)[:, None]})
    return {split: [str(d % 10) for d in y] for split, y in digits.items()}


# --- image files -------------------------------------------------------------------------------------------


def write_gtsrb(root: Path, class_ids=(0, 2, 14), per_class: int = 3, test_per_class: int = 2) -> dict[str, list[int]]:
    """Training/<ClassId>/*.ppm (plus the per-folder GT CSV the archive has), Final_Test/Images/*.ppm and
    GT-final_test.csv (';'-separated, ClassId column). Returns ClassIds, not names (GTSRB is numbered)."""
    base = root / "gtsrb"
    train = []
    for class_id in class_ids:
        folder = base / "GTSRB" / "Training" / f"{class_id:05d}"
        for i in range(per_class):
            _image(folder / f"00000_{i:05d}.ppm", (30 + 7 * i, 34 + 5 * i), seed=100 * class_id + i, fmt="PPM")
            train.append(class_id)
        (folder / f"GT-{class_id:05d}.csv").write_text("Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId\n")
    rows, test = ["Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId"], []
    for n, class_id in enumerate([c for c in class_ids for _ in range(test_per_class)]):
        name = f"{n:05d}.ppm"
        _image(base / "GTSRB" / "Final_Test" / "Images" / name, (40, 38), seed=9000 + n, fmt="PPM")
        rows.append(f"{name};40;38;5;5;35;33;{class_id}")
        test.append(class_id)
    (base / "GT-final_test.csv").write_text("\n".join(rows) + "\n")
    return {"train": train, "test": test}


def write_dtd(root: Path, classes=("banded", "polka-dotted", "zigzagged")) -> dict[str, list[str]]:
    """images/<class>/<class>_NNNN.jpg and labels/{train,val,test}1.txt (lines "class/file.jpg")."""
    data = root / "dtd" / "dtd"
    lists = {"train": [], "val": [], "test": []}
    for c, name in enumerate(classes):
        for i, split in enumerate(("train", "train", "val", "test")):
            file = f"{name}_{i:04d}.jpg"
            _image(data / "images" / name / file, (50 + 10 * i, 40), seed=10 * c + i, fmt="JPEG")
            lists[split].append(f"{name}/{file}")
    (data / "labels").mkdir(parents=True, exist_ok=True)
    for split, lines in lists.items():
        (data / "labels" / f"{split}1.txt").write_text("\n".join(lines) + "\n")
    train = sorted(lists["train"] + lists["val"])  # the literature's train: train + val of the partition
    return {"train": [line.split("/")[0] for line in train], "test": [line.split("/")[0] for line in sorted(lists["test"])]}


EUROSAT_FOLDERS = {"AnnualCrop": "annual crop land", "Forest": "forest", "SeaLake": "lake or sea"}


def write_eurosat(root: Path, per_class: int = 4) -> dict[str, list[str]]:
    folder = root / "eurosat" / "2750"
    found = []
    for c, name in enumerate(EUROSAT_FOLDERS):
        for i in range(per_class):
            _image(folder / name / f"{name}_{i + 1}.jpg", (64, 64), seed=10 * c + i, fmt="JPEG")
            found.append((str(folder / name / f"{name}_{i + 1}.jpg"), EUROSAT_FOLDERS[name]))
    return {"train": [label for _, label in sorted(found)]}


SUN397_CLASSES = {"/a/abbey": "abbey", "/a/apartment_building/outdoor": "apartment building outdoor", "/b/bakery/shop": "bakery shop"}


def write_sun397(root: Path, per_class: int = 3) -> dict[str, list[str]]:
    """SUN397/ClassName.txt, SUN397/<letter>/<class>/sun_*.jpg and Partitions/{Training,Testing}_01.txt (the first
    image of each class in Training, the second in Testing, the rest in neither)."""
    base = root / "SUN397"
    base.mkdir(parents=True, exist_ok=True)
    (base / "ClassName.txt").write_text("\n".join(SUN397_CLASSES) + "\n")
    training, testing, every = [], [], []
    for c, (raw, _) in enumerate(SUN397_CLASSES.items()):
        for i in range(per_class):
            relative = f"{raw}/sun_{'abc'[c]}{i:03d}.jpg"
            _image(base / relative.lstrip("/"), (60 + 5 * i, 45), seed=10 * c + i, fmt="JPEG")
            every.append((str(base / relative.lstrip("/")), SUN397_CLASSES[raw]))
            (training if i == 0 else testing if i == 1 else []).append(relative)
    (base / "Partitions").mkdir()
    (base / "Partitions" / "Training_01.txt").write_text("\n".join(training) + "\n")
    (base / "Partitions" / "Testing_01.txt").write_text("\n".join(testing) + "\n")
    name = {relative: SUN397_CLASSES[relative.rsplit("/", 1)[0]] for relative in training + testing}
    return {
        "train": [name[r] for r in sorted(training, key=lambda r: str(base / r.lstrip("/")))],
        "test": [name[r] for r in sorted(testing, key=lambda r: str(base / r.lstrip("/")))],
        "all": [label for _, label in sorted(every)],
    }


CARS_NAMES = ["AM General Hummer SUV 2000", "Ram C/V Cargo Van Minivan 2012", "smart fortwo Convertible 2012"]


def write_cars(root: Path) -> dict[str, list[str]]:
    """devkit/cars_meta.mat (class_names), devkit/cars_train_annos.mat and cars_test_annos_withlabels.mat
    (struct arrays with bbox, 1-based class and fname), cars_train/*.jpg, cars_test/*.jpg."""
    from scipy.io import savemat

    base = root / "stanford_cars"
    (base / "devkit").mkdir(parents=True, exist_ok=True)
    savemat(str(base / "devkit" / "cars_meta.mat"), {"class_names": np.array(CARS_NAMES, dtype=object)[None, :]})
    fields = [("bbox_x1", "O"), ("bbox_y1", "O"), ("bbox_x2", "O"), ("bbox_y2", "O"), ("class", "O"), ("fname", "O")]
    expected = {}
    for split, classes, annotations_file in (
        ("train", [1, 2, 3, 3, 1], base / "devkit" / "cars_train_annos.mat"),
        ("test", [2, 3, 1], base / "cars_test_annos_withlabels.mat"),
    ):
        records = np.zeros((1, len(classes)), dtype=fields)
        for i, c in enumerate(classes):
            fname = f"{i + 1:05d}.jpg"
            _image(base / f"cars_{split}" / fname, (70, 40 + i), seed=100 * len(split) + i, fmt="JPEG")
            records[0, i] = (1, 1, 60, 30, c, fname)
        savemat(str(annotations_file), {"annotations": records})
        expected[split] = [CARS_NAMES[c - 1] for c in classes]  # fnames are numbered in order, so path order
    return expected


RESISC45_CLASSES = {"airplane": "airplane", "sea_ice": "sea ice", "thermal_power_station": "thermal power station"}


def write_resisc45(root: Path) -> dict[str, list[str]]:
    """NWPU-RESISC45/<class>/<class>_NNN.jpg and resisc45-{train,val,test}.txt (file names, one a line)."""
    base = root / "resisc45"
    lists = {"train": [], "val": [], "test": []}
    found = {"train": [], "test": []}
    for c, folder in enumerate(RESISC45_CLASSES):
        for i, split in enumerate(("train", "train", "val", "test")):
            name = f"{folder}_{i + 1:03d}.jpg"
            path = base / "NWPU-RESISC45" / folder / name
            _image(path, (64, 64), seed=10 * c + i, fmt="JPEG")
            lists[split].append(name)
            if split in found:
                found[split].append((str(path), RESISC45_CLASSES[folder]))
    for split, names in lists.items():
        (base / f"resisc45-{split}.txt").write_text("\n".join(names) + "\n")
    return {split: [label for _, label in sorted(pairs)] for split, pairs in found.items()}


IMAGENET_WNIDS = {"n01440764": "tench", "n01443537": "goldfish", "n15075141": "toilet paper"}


def write_imagenet(root: Path, train: bool = True) -> dict[str, list[str]]:
    """imagenet/{train,val}/<wnid>/*.JPEG (the ImageFolder layout torchvision.datasets.ImageNet also leaves)."""
    expected = {}
    for split, per_class in (("train", 3), ("val", 2)):
        if split == "train" and not train:
            continue
        pairs = []
        for c, wnid in enumerate(IMAGENET_WNIDS):
            for i in range(per_class):
                path = root / "imagenet" / split / wnid / f"{wnid}_{i}.JPEG"
                _image(path, (80, 60 + 3 * i), seed=100 * c + i + (50 if split == "val" else 0), fmt="JPEG")
                pairs.append((str(path), IMAGENET_WNIDS[wnid]))
        expected["train" if split == "train" else "test"] = [label for _, label in sorted(pairs)]
    return expected


WRITERS = {
    "cifar10": write_cifar10, "cifar100": write_cifar100, "mnist": write_mnist, "svhn": write_svhn,
    "gtsrb": write_gtsrb, "dtd": write_dtd, "eurosat": write_eurosat, "sun397": write_sun397, "cars": write_cars,
    "resisc45": write_resisc45, "imagenet": write_imagenet,
}  # fmt: skip
