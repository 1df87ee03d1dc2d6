"""``bdunlearn-data``: shards from class folders and caption files; fetch through a mirror laid out like the
download hosts and through a Hugging Face cache laid out like the hub's, read back by the project's loaders;
one-line errors (unknown name, offline, unreachable, checksum mismatch)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from bdunlearn.data import cli, fetch, stream
from bdunlearn.data import shards as shard_io

CONF = Path(__file__).resolve().parent.parent / "conf" / "dataset"


def _png(value: int, size=(9, 7)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (value, 255 - value, 3)).save(buffer, format="PNG")
    return buffer.getvalue()


def _run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bdunlearn.data.cli", *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **(env or {})})  # fmt: skip


def _one_line_error(done: subprocess.CompletedProcess, *fragments: str) -> None:
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bdunlearn-data: error: "), done.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def _dataset_cfg(name: str, root: Path):
    raw = OmegaConf.to_container(OmegaConf.load(CONF / f"{name}.yaml"))
    return SimpleNamespace(**{**raw, "root": str(root), "download": False, "class_folders": raw.get("class_folders")})


# --- shards -------------------------------------------------------------------------------------------------


def test_class_folders_become_shuffled_shards_with_a_manifest(tmp_path, capsys):
    for c, name in enumerate(("cat", "dog")):
        (tmp_path / "src" / name).mkdir(parents=True)
        for i in range(5):
            (tmp_path / "src" / name / f"{i}.png").write_bytes(_png(40 * c + i))
    assert cli.main(["shards", str(tmp_path / "src"), str(tmp_path / "out"), "--maxcount", "3"]) == 0
    assert "10 classes samples in 4 shards" in capsys.readouterr().out
    split = stream.from_shards(str(tmp_path / "out"), 8, num_workers=0)
    assert split.source.shards.class_names == ("cat", "dog") and split.source.shards.counts == (3, 3, 3, 1)
    labels = split.labels()
    assert sorted(labels.tolist()) == [0] * 5 + [1] * 5 and labels.tolist() != sorted(labels.tolist())  # shuffled
    images = split.to_memory().images
    assert all(int(images[i, 0, 0, 0]) in range(40 * labels[i], 40 * labels[i] + 5) for i in range(10))


def test_a_caption_csv_becomes_caption_shards(tmp_path):
    (tmp_path / "img").mkdir()
    rows = ["filepath,title"]
    for i in range(4):
        (tmp_path / "img" / f"{i}.png").write_bytes(_png(i))
        rows.append(f"img/{i}.png,a picture of {i}")
    (tmp_path / "pairs.csv").write_text("\n".join(rows) + "\n")
    assert cli.main(["shards", str(tmp_path / "pairs.csv"), str(tmp_path / "out"), "--keep-order"]) == 0
    shards = shard_io.open_shards(tmp_path / "out")
    samples = list(shard_io.iter_samples(shards.path(0)))
    assert shards.kind == "captions" and [s["txt"].decode() for s in samples] == [f"a picture of {i}" for i in range(4)]
    assert samples[2]["png"] == (tmp_path / "img" / "2.png").read_bytes()  # stored as is, not re-encoded


def test_shards_refuse_a_used_folder_and_a_missing_source(tmp_path, capsys):
    _one_line_error(_run("shards", str(tmp_path / "nothing"), str(tmp_path / "out")), "does not exist")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "shard-000000.tar").write_bytes(b"")
    with pytest.raises(SystemExit) as stop:
        cli.main(["shards", str(tmp_path / "nothing"), str(tmp_path / "out")])
    assert stop.value.code == 2 and "already holds shards" in capsys.readouterr().err


# --- fetch: errors --------------------------------------------------------------------------------------------


def test_unknown_dataset_lists_the_choices():
    _one_line_error(_run("fetch", "imagenet21k"), "cannot fetch 'imagenet21k'", "choose one of", "cars, cifar10")
    _one_line_error(_run("fetch", "imagenet"), "image-net.org")


def test_offline_and_unreachable_fail_in_one_line(tmp_path):
    _one_line_error(_run("fetch", "mnist", "--root", str(tmp_path), env={"HF_HUB_OFFLINE": "1"}), "offline (HF_HUB_OFFLINE=1)")
    done = _run("fetch", "svhn", "--root", str(tmp_path), "--mirror", "http://127.0.0.1:9", env={"HF_HUB_OFFLINE": "0"})
    _one_line_error(done, "cannot download http://127.0.0.1:9/ufldl.stanford.edu/housenumbers/train_32x32.mat")
    empty_cache = {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub")}
    _one_line_error(_run("fetch", "resisc45", "--root", str(tmp_path), env=empty_cache), "cannot fetch tanganke/resisc45@refs/convert/parquet")


@pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist").is_dir(), reason="Debian's dataset-fashion-mnist")
def test_a_recompressed_copy_fails_the_pinned_checksum(tmp_path):
    """Debian ships Fashion-MNIST recompressed: same images, other bytes than the upstream archives."""
    host = tmp_path / "mirror" / "fashion-mnist.s3-website.eu-central-1.amazonaws.com"
    host.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte.gz",):
        (host / name).symlink_to(Path("/usr/share/datasets/fashion-mnist") / name)
    done = _run("fetch", "fashion_mnist", "--root", str(tmp_path / "data"), "--mirror", str(tmp_path / "mirror"))
    _one_line_error(done, "sha256 mismatch for file://", "expected 3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84")
    assert not list((tmp_path / "data").rglob("*.partial"))


# --- fetch: URL sources through a mirror ----------------------------------------------------------------------


def _pin(monkeypatch, name: str, mirror: Path, contents: dict[str, bytes]) -> None:
    """Place ``contents`` (URL → bytes) in ``mirror`` as <host>/<path>, and pin their checksums for ``name``."""
    files = []
    for url, data in contents.items():
        path = mirror / url.split("://", 1)[1]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        files.append(fetch.UrlFile(url, hashlib.sha256(data).hexdigest()))
    monkeypatch.setitem(fetch.SOURCES, name, fetch.Source(tuple(files), fetch.SOURCES[name].lay_out, "1 kB"))


def _idx(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes())


def test_mnist_through_a_mirror_is_read_by_its_loader(tmp_path, monkeypatch):
    from bdunlearn.data import arrays

    rng = np.random.default_rng(0)
    images = {"train": rng.integers(0, 256, (6, 28, 28)), "t10k": rng.integers(0, 256, (2, 28, 28))}
    contents = {}
    for split, pixels in images.items():
        contents[f"{fetch.MNIST}{split}-images-idx3-ubyte.gz"] = _idx(pixels)
        contents[f"{fetch.MNIST}{split}-labels-idx1-ubyte.gz"] = _idx(np.arange(len(pixels)) % 10)
    _pin(monkeypatch, "mnist", tmp_path / "mirror", contents)
    assert cli.main(["fetch", "mnist", "--root", str(tmp_path / "data"), "--mirror", str(tmp_path / "mirror")]) == 0
    cfg = _dataset_cfg("mnist", tmp_path / "data")
    assert arrays.mnist_missing(cfg) is None
    train = arrays.mnist(cfg, "train")
    assert torch.equal(train.images[:, 0], torch.from_numpy(images["train"].astype(np.uint8))) and train.labels.tolist() == list(range(6))
    assert not (tmp_path / "data" / ".downloads").exists()


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _ppm(value: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (15, 16), (value, value, value)).save(buffer, format="PPM")
    return buffer.getvalue()


def test_gtsrb_through_a_mirror_is_read_by_its_loader(tmp_path, monkeypatch):
    from bdunlearn.data import files

    train = {f"GTSRB/Training/{c:05d}/00000_0000{i}.ppm": _ppm(10 * c + i) for c in (0, 42) for i in range(2)}
    test = {f"GTSRB/Final_Test/Images/0000{i}.ppm": _ppm(i) for i in range(3)}
    truth = "Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId\n" + "".join(
        f"0000{i}.ppm;15;16;1;1;14;15;{c}\n" for i, c in enumerate((7, 0, 42))
    )
    _pin(monkeypatch, "gtsrb", tmp_path / "mirror", {
        f"{fetch.GTSRB}GTSRB-Training_fixed.zip": _zip(train),
        f"{fetch.GTSRB}GTSRB_Final_Test_Images.zip": _zip(test),
        f"{fetch.GTSRB}GTSRB_Final_Test_GT.zip": _zip({"GT-final_test.csv": truth.encode()}),
    })  # fmt: skip
    assert cli.main(["fetch", "gtsrb", "--root", str(tmp_path / "data"), "--mirror", str(tmp_path / "mirror")]) == 0
    cfg = _dataset_cfg("gtsrb", tmp_path / "data")
    assert files.gtsrb_missing(cfg) is None
    assert files.gtsrb(cfg, "train").labels == (0, 0, 42, 42) and files.gtsrb(cfg, "test").labels == (7, 0, 42)


# --- fetch: Hugging Face sources through a cache laid out as huggingface_hub lays it out ------------------------


def _parquet(rows: list[tuple[bytes, str | None, int]], names: list[str]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    features = {"image": {"_type": "Image"}, "label": {"names": names, "_type": "ClassLabel"}}
    image = pa.array([{"bytes": b, "path": p} for b, p, _ in rows], type=pa.struct([("bytes", pa.binary()), ("path", pa.string())]))
    table = pa.table({"image": image, "label": pa.array([label for *_, label in rows], type=pa.int64())})
    table = table.replace_schema_metadata({b"huggingface": json.dumps({"info": {"features": features}}).encode()})
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def _hub_cache(cache: Path, repo: str, revision: str, files: dict[str, bytes]) -> dict[str, Path]:
    """A Hugging Face cache entry as huggingface_hub writes one: blobs named by sha256, a snapshot of symlinks,
    the revision's ref."""
    folder = cache / f"datasets--{repo.replace('/', '--')}"
    commit = hashlib.sha1(repo.encode()).hexdigest()
    (folder / "refs" / revision).parent.mkdir(parents=True, exist_ok=True)
    (folder / "refs" / revision).write_text(commit)
    blobs = {}
    for name, data in files.items():
        blob = folder / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = folder / "snapshots" / commit / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
        blobs[name] = blob
    return blobs


def test_resisc45_and_cars_from_the_hub_cache_are_read_by_their_loaders(tmp_path):
    from bdunlearn.data import files

    resisc = _dataset_cfg("resisc45", tmp_path / "data").class_names
    _hub_cache(tmp_path / "hub", "tanganke/resisc45", fetch.PARQUET, {
        "default/train/0000.parquet": _parquet([(_png(1), "airplane_001.jpg", 0), (_png(2), None, 2)], resisc),
        "default/train/0001.parquet": _parquet([(_png(3), "beach_007.jpg", 4)], resisc),
        "default/test/0000.parquet": _parquet([(_png(4), "airport_010.jpg", 1)], resisc),
    })  # fmt: skip
    cars = _dataset_cfg("cars", tmp_path / "data").class_names
    _hub_cache(tmp_path / "hub", "tanganke/stanford_cars", fetch.PARQUET, {
        "default/train/0000.parquet": _parquet([(_png(5), None, 0), (_png(6), None, 195)], cars),
        "default/test/0000.parquet": _parquet([(_png(7), None, 17), (_png(8), None, 3)], cars),  # torchvision needs 2+
    })  # fmt: skip
    hub = {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub")}
    for name in ("resisc45", "cars"):
        done = _run("fetch", name, "--root", str(tmp_path / "data"), env=hub)
        assert done.returncode == 0, done.stderr
    cfg = _dataset_cfg("resisc45", tmp_path / "data")
    assert files.resisc45_missing(cfg) is None
    train = files.resisc45(cfg, "train")
    assert train.labels == (0, 2, 4) and Path(train.paths[0]).name == "airplane_001.jpg"  # in path order
    assert files.resisc45(cfg, "test").labels == (1,)
    cfg = _dataset_cfg("cars", tmp_path / "data")
    assert files.cars_missing(cfg) is None
    assert files.cars(cfg, "train").labels == (0, 195) and files.cars(cfg, "test").labels == (17, 3)


def test_a_damaged_hub_file_fails_its_checksum(tmp_path):
    names = _dataset_cfg("resisc45", tmp_path).class_names
    blobs = _hub_cache(tmp_path / "hub", "tanganke/resisc45", fetch.PARQUET, {
        "default/train/0000.parquet": _parquet([(_png(1), None, 0)], names),
        "default/test/0000.parquet": _parquet([(_png(2), None, 1)], names),
    })  # fmt: skip
    blob = blobs["default/test/0000.parquet"]
    blob.write_bytes(blob.read_bytes()[:-5] + b"xxxxx")
    done = _run("fetch", "resisc45", "--root", str(tmp_path / "data"), env={"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub")})
    _one_line_error(done, "sha256 mismatch for tanganke/resisc45/default/test/0000.parquet", f"expected {blob.name}")
