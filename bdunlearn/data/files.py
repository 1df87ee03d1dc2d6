"""Datasets that ship as image files: each function lists one official split as paths and labels.

torchvision's dataset classes read the layout where torchvision has one (GTSRB, DTD, EuroSAT, SUN397, Stanford
Cars); RESISC45 and ImageNet, which it does not cover in their usual on-disk form, are read as class folders
(torchvision's ImageFolder helpers). Nothing is decoded here: ``decoded.decode`` turns a listing into pixels.
Where each dataset lives under ``dataset.root`` is documented in docs/datasets.md and in each ``*_missing``.
"""

from __future__ import annotations

from pathlib import Path

from torchvision import datasets as tv
from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

from bdunlearn.data.classnames import label_lookup, underscores_to_spaces, verbatim
from bdunlearn.data.classnames import sun397 as sun397_rule
from bdunlearn.data.decoded import FileList
from bdunlearn.errors import UserError


def _root(cfg) -> Path:
    return Path(cfg.root).expanduser()


def _listing(cfg, samples: list[tuple[str, str]], rule) -> FileList:
    """(path, raw class name) pairs → FileList in path order (directory walks differ between file systems,
    and the splits are carved by position) with labels in the config's class order."""
    if not samples:
        raise UserError(f"dataset={cfg.name}: no images found under {_root(cfg)}; check dataset.root")
    samples = sorted((str(path), raw) for path, raw in samples)
    raw_names = sorted({raw for _, raw in samples})
    lookup = dict(zip(raw_names, label_lookup(raw_names, cfg, rule), strict=True))
    return FileList(tuple(path for path, _ in samples), tuple(lookup[raw] for _, raw in samples))


def _torchvision(cfg, cls, **kwargs):
    """A torchvision dataset object; its own errors (a layout it cannot parse) become one-line UserErrors."""
    try:
        return cls(str(_root(cfg)), download=bool(cfg.download), **kwargs)
    except (OSError, ValueError, KeyError, IndexError, TypeError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"dataset={cfg.name}: cannot read the files under {_root(cfg)} ({first[:200]}); "
                        "check the layout (docs/datasets.md)") from exc  # fmt: skip


# --- GTSRB -------------------------------------------------------------------------------------------------


def gtsrb(cfg, split: str) -> FileList:
    data = _torchvision(cfg, tv.GTSRB, split=split)
    if split == "train":  # torchvision numbers the class folders in sorted order; the folder name is the ClassId
        pairs = sorted((str(path), int(Path(path).parent.name)) for path, _ in data._samples)
    else:  # the ClassId column of GT-final_test.csv
        pairs = sorted((str(path), int(label)) for path, label in data._samples)
    if not pairs:
        raise UserError(f"dataset=gtsrb: no images found under {_root(cfg) / 'gtsrb'}; check dataset.root")
    bad = sorted({c for _, c in pairs if not 0 <= c < len(cfg.class_names)})
    if bad:
        raise UserError(f"dataset=gtsrb: ClassId {bad[0]} under {_root(cfg)} has no entry in dataset.class_names")
    return FileList(tuple(path for path, _ in pairs), tuple(label for _, label in pairs))


def gtsrb_missing(cfg) -> str | None:
    base = _root(cfg) / "gtsrb"
    if cfg.download or ((base / "GTSRB" / "Training").is_dir() and (base / "GTSRB" / "Final_Test" / "Images").is_dir()
                        and (base / "GT-final_test.csv").is_file()):  # fmt: skip
        return None
    return (
        f"dataset=gtsrb: no GTSRB under {base} (GTSRB/Training/<ClassId>/*.ppm, GTSRB/Final_Test/Images/*.ppm, "
        "GT-final_test.csv); set dataset.root to the folder holding gtsrb/, or dataset.download=true with internet "
        "(torchvision fetches it from https://sid.erda.dk/public/archives/daaeac0d7ce1152aea9b61d9f1e19370/)"
    )


# --- DTD ---------------------------------------------------------------------------------------------------


def dtd(cfg, split: str) -> FileList:
    """The literature's DTD: train = train + val of the partition, test = its test split."""
    parts = ("train", "val") if split == "train" else ("test",)
    samples = []
    for part in parts:
        data = _torchvision(cfg, tv.DTD, split=part, partition=cfg.partition or 1)
        samples += [(path, data.classes[label]) for path, label in zip(data._image_files, data._labels, strict=True)]
    return _listing(cfg, samples, underscores_to_spaces)


def dtd_missing(cfg) -> str | None:
    data = _root(cfg) / "dtd" / "dtd"
    labels = data / "labels"
    partition = cfg.partition or 1
    if cfg.download or ((data / "images").is_dir()
                        and all((labels / f"{s}{partition}.txt").is_file() for s in ("train", "val", "test"))):  # fmt: skip
        return None
    return (
        f"dataset=dtd: no DTD under {data} (images/<class>/*.jpg, labels/train{partition}.txt, val{partition}.txt, "
        f"test{partition}.txt); set dataset.root to the folder holding dtd/dtd/, or dataset.download=true with "
        "internet (torchvision fetches https://www.robots.ox.ac.uk/~vgg/data/dtd/download/dtd-r1.0.1.tar.gz)"
    )


# --- EuroSAT (RGB) -----------------------------------------------------------------------------------------


def eurosat(cfg, split: str) -> FileList:
    data = _torchvision(cfg, tv.EuroSAT)
    return _listing(cfg, [(path, data.classes[label]) for path, label in data.samples], verbatim)


def eurosat_missing(cfg) -> str | None:
    folder = _root(cfg) / "eurosat" / "2750"
    if cfg.download or folder.is_dir():
        return None
    return (
        f"dataset=eurosat: no EuroSAT under {folder} (<ClassName>/*.jpg); set dataset.root to the folder holding "
        "eurosat/2750/, or dataset.download=true with internet (torchvision fetches "
        "https://huggingface.co/datasets/torchgeo/eurosat/resolve/main/EuroSAT.zip)"
    )


# --- SUN397 ------------------------------------------------------------------------------------------------


def _sun397_partition_file(cfg, split: str) -> Path | None:
    name = f"{'Training' if split == 'train' else 'Testing'}_{cfg.partition:02d}.txt"
    for folder in (_root(cfg) / "SUN397" / "Partitions", _root(cfg) / "SUN397"):
        if (folder / name).is_file():
            return folder / name
    return None


def sun397(cfg, split: str) -> FileList | None:
    """All images (no official test split), or with ``dataset.partition`` the Training/Testing lists of that
    partition of the authors' ten (50 + 50 images per class; partition 1 is the literature's split)."""
    if cfg.partition is None and split == "test":
        return None
    data = _torchvision(cfg, tv.SUN397)
    samples = [(path, data.classes[label]) for path, label in zip(data._image_files, data._labels, strict=True)]
    if cfg.partition is not None:
        listing = _sun397_partition_file(cfg, split)
        if listing is None:
            raise UserError(sun397_missing(cfg) or f"dataset=sun397: no partition {cfg.partition} lists")
        listed = {line.strip() for line in listing.read_text().splitlines() if line.strip()}
        base = _root(cfg) / "SUN397"
        samples = [(path, raw) for path, raw in samples if "/" + Path(path).relative_to(base).as_posix() in listed]
    return _listing(cfg, samples, sun397_rule)


def sun397_missing(cfg) -> str | None:
    base = _root(cfg) / "SUN397"
    if not (base / "ClassName.txt").is_file():
        if cfg.download:
            return None
        return (
            f"dataset=sun397: no SUN397 under {base} (ClassName.txt, <letter>/<class>/sun_*.jpg); set dataset.root "
            "to the folder holding SUN397/, or dataset.download=true with internet (torchvision fetches "
            "http://vision.princeton.edu/projects/2010/SUN/SUN397.tar.gz)"
        )
    if cfg.partition is not None and any(_sun397_partition_file(cfg, s) is None for s in ("train", "test")):
        return (
            f"dataset=sun397: no Training_{cfg.partition:02d}.txt / Testing_{cfg.partition:02d}.txt in {base} "
            f"or {base / 'Partitions'}; unzip https://vision.princeton.edu/projects/2010/SUN/download/Partitions.zip "
            "there, or set dataset.partition=null to carve test from all images"
        )
    return None


def sun397_has_test(cfg) -> bool:
    return cfg.partition is not None


# --- Stanford Cars -----------------------------------------------------------------------------------------


def cars(cfg, split: str) -> FileList:
    data = _torchvision(cfg, tv.StanfordCars, split=split)
    return _listing(cfg, [(path, data.classes[label]) for path, label in data._samples], verbatim)


def cars_missing(cfg) -> str | None:
    base = _root(cfg) / "stanford_cars"
    needed = ("devkit/cars_meta.mat", "devkit/cars_train_annos.mat", "cars_test_annos_withlabels.mat", "cars_train", "cars_test")
    if all((base / name).exists() for name in needed):
        return None
    return (
        f"dataset=cars: no Stanford Cars under {base} ({', '.join(needed)}); torchvision can no longer download "
        "it (https://github.com/pytorch/vision/issues/7545): get those files (e.g. a Kaggle mirror of Stanford "
        "Cars) and set dataset.root to the folder holding stanford_cars/"
    )


# --- Class folders: RESISC45, ImageNet ---------------------------------------------------------------------


def _class_folders(cfg, folder: Path, keep=None) -> list[tuple[str, str]]:
    """(path, class folder name) for every image in ``folder/<class>/``; ``keep(path)`` filters files."""
    classes, class_to_idx = find_classes(str(folder))
    extensions = None if keep else IMG_EXTENSIONS
    pairs = make_dataset(str(folder), class_to_idx, extensions=extensions, is_valid_file=keep, allow_empty=True)
    return [(path, classes[label]) for path, label in pairs]


RESISC45_SPLITS = "https://storage.googleapis.com/remote_sensing_representations/resisc45-{train,val,test}.txt"


def resisc45(cfg, split: str) -> FileList:
    """NWPU-RESISC45 in class folders, split by the lists the literature uses (torchgeo's, 18,900 / 6,300)."""
    base = _root(cfg) / "resisc45"
    names = {line.strip() for line in (base / f"resisc45-{split}.txt").read_text().splitlines() if line.strip()}
    samples = _class_folders(cfg, base / "NWPU-RESISC45", keep=lambda path: Path(path).name in names)
    return _listing(cfg, samples, underscores_to_spaces)


def resisc45_missing(cfg) -> str | None:
    base = _root(cfg) / "resisc45"
    if (base / "NWPU-RESISC45").is_dir() and all((base / f"resisc45-{s}.txt").is_file() for s in ("train", "test")):
        return None
    return (
        f"dataset=resisc45: no RESISC45 under {base} (NWPU-RESISC45/<class>/*.jpg, resisc45-train.txt, "
        "resisc45-test.txt); unpack NWPU-RESISC45.rar (https://gcheng-nwpu.github.io/#Datasets) there, fetch "
        f"the split lists from {RESISC45_SPLITS}, and set dataset.root to the folder holding resisc45/"
    )


def imagenet(cfg, split: str) -> FileList:
    """ILSVRC-2012 as ``imagenet/train/<wnid>/*.JPEG`` and ``imagenet/val/<wnid>/*.JPEG`` (val is the test split)."""
    folder = _root(cfg) / "imagenet" / ("train" if split == "train" else "val")
    return _listing(cfg, _class_folders(cfg, folder), verbatim)


def imagenet_missing(cfg, need_train: bool = True) -> str | None:
    base = _root(cfg) / "imagenet"
    if (base / "val").is_dir() and ((base / "train").is_dir() or not need_train):
        return None
    needed = "train/<wnid>/*.JPEG and val/<wnid>/*.JPEG" if need_train else "val/<wnid>/*.JPEG"
    return (
        f"dataset=imagenet: no ImageNet under {base} ({needed}); download ILSVRC2012_img_val.tar (and "
        "ILSVRC2012_img_train.tar) from https://image-net.org/download.php, sort val into class folders "
        "(torchvision.datasets.ImageNet(root) does it given ILSVRC2012_devkit_t12.tar.gz), and set dataset.root "
        "to the folder holding imagenet/"
    )


def imagenet_test_missing(cfg) -> str | None:
    return imagenet_missing(cfg, need_train=False)
