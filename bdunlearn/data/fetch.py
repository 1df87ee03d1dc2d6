"""``bdunlearn-data fetch NAME``: download one of the paper's datasets and lay it out where its loader reads it.

Sources are the ones torchvision downloads from (archives pinned here by sha256, from torchvision's own dataset
definitions) and the Hugging Face hub (the task-arithmetic sets torchvision cannot download, as FusionBench
reads them: ``tanganke/stanford_cars``, ``tanganke/resisc45``; EuroSAT's archive as torchvision fetches it).
Every file is checked against its sha256 before it is used: the pinned value, or for hub files the sha256 the
hub announces for the file (its blob name in the Hugging Face cache); a mismatch is a one-line error.

``--mirror`` reads the URL sources from a copy laid out as ``MIRROR/<host>/<path>`` (a folder or another
URL), through the same code; hub files come through the Hugging Face cache (``HF_HUB_CACHE``,
``HF_HUB_OFFLINE=1`` to use only what is cached). Nothing here can work without a network or a copy: that
fails in one line, before anything is written.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import shutil
import tarfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bdunlearn.errors import UserError

CHUNK = 1 << 20
TIMEOUT_S = 30


@dataclass(frozen=True)
class UrlFile:
    url: str
    sha256: str


@dataclass(frozen=True)
class HubFiles:
    """Files of a Hugging Face dataset repository at ``revision`` matching ``patterns``."""

    repo: str
    patterns: tuple[str, ...]
    revision: str = "main"


@dataclass(frozen=True)
class Source:
    files: tuple[UrlFile, ...] | HubFiles
    lay_out: Callable[[list[Path], Path], None]  # (verified files, dataset.root) → the loader's layout
    size: str  # download size, for the user


def _gunzip_into(folder: str) -> Callable[[list[Path], Path], None]:
    def lay_out(files: list[Path], root: Path) -> None:
        target = root / folder
        target.mkdir(parents=True, exist_ok=True)
        for path in files:
            with gzip.open(path, "rb") as src, open(target / path.name.removesuffix(".gz"), "wb") as dst:
                shutil.copyfileobj(src, dst, CHUNK)

    return lay_out


def _extract_into(folder: str) -> Callable[[list[Path], Path], None]:
    def lay_out(files: list[Path], root: Path) -> None:
        target = root / folder
        target.mkdir(parents=True, exist_ok=True)
        for path in files:
            if zipfile.is_zipfile(path):
                with zipfile.ZipFile(path) as archive:
                    archive.extractall(target)
            else:
                with tarfile.open(path) as archive:  # the "data" filter refuses links and paths out of target
                    archive.extractall(target, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))

    return lay_out


def _copy_into(folder: str) -> Callable[[list[Path], Path], None]:
    def lay_out(files: list[Path], root: Path) -> None:
        (root / folder).mkdir(parents=True, exist_ok=True)
        for path in files:
            shutil.copyfile(path, root / folder / path.name)

    return lay_out


def _hub_layout(name: str) -> Callable[[list[Path], Path], None]:
    def lay_out(files: list[Path], root: Path) -> None:
        from bdunlearn.data import hub_layout

        getattr(hub_layout, name)(files, root)

    return lay_out


MNIST = "https://ossci-datasets.s3.amazonaws.com/mnist/"
FASHION = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
GTSRB = "https://sid.erda.dk/public/archives/daaeac0d7ce1152aea9b61d9f1e19370/"
PARQUET = "refs/convert/parquet"  # the hub's own parquet export of a dataset repository

SOURCES: dict[str, Source] = {
    "mnist": Source((
        UrlFile(MNIST + "train-images-idx3-ubyte.gz", "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
        UrlFile(MNIST + "train-labels-idx1-ubyte.gz", "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
        UrlFile(MNIST + "t10k-images-idx3-ubyte.gz", "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
        UrlFile(MNIST + "t10k-labels-idx1-ubyte.gz", "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
    ), _gunzip_into("MNIST/raw"), "12 MB"),
    "fashion_mnist": Source((
        UrlFile(FASHION + "train-images-idx3-ubyte.gz", "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"),
        UrlFile(FASHION + "train-labels-idx1-ubyte.gz", "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"),
        UrlFile(FASHION + "t10k-images-idx3-ubyte.gz", "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"),
        UrlFile(FASHION + "t10k-labels-idx1-ubyte.gz", "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"),
    ), _gunzip_into("FashionMNIST/raw"), "30 MB"),
    "cifar10": Source((UrlFile("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                               "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"),), _extract_into("."), "163 MB"),
    "cifar100": Source((UrlFile("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
                                "85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7"),), _extract_into("."), "161 MB"),
    "svhn": Source((
        UrlFile("http://ufldl.stanford.edu/housenumbers/train_32x32.mat", "435e94d69a87fde4fd4d7f3dd208dfc32cb6ae8af2240d066de1df7508d083b8"),
        UrlFile("http://ufldl.stanford.edu/housenumbers/test_32x32.mat", "cdce80dfb2a2c4c6160906d0bd7c68ec5a99d7ca4831afa54f09182025b6a75b"),
    ), _copy_into("svhn"), "246 MB"),
    "dtd": Source((UrlFile("https://www.robots.ox.ac.uk/~vgg/data/dtd/download/dtd-r1.0.1.tar.gz",
                           "e42855a52a4950a3b59612834602aa253914755c95b0cff9ead6d07395f8e205"),), _extract_into("dtd"), "625 MB"),
    "gtsrb": Source((
        UrlFile(GTSRB + "GTSRB-Training_fixed.zip", "df4144942083645bd60b594de348aa6930126c3e0e5de09e39611630abf8455a"),
        UrlFile(GTSRB + "GTSRB_Final_Test_Images.zip", "48ba6fab7e877eb64eaf8de99035b0aaecfbc279bee23e35deca4ac1d0a837fa"),
        UrlFile(GTSRB + "GTSRB_Final_Test_GT.zip", "f94e5a7614d75845c74c04ddb26b8796b9e483f43541dd95dd5b726504e16d6d"),
    ), _extract_into("gtsrb"), "273 MB"),
    "eurosat": Source(HubFiles("torchgeo/eurosat", ("EuroSAT.zip",), "c877bcd43f099cd0196738f714544e355477f3fd"),
                      _extract_into("eurosat"), "94 MB"),
    "cars": Source(HubFiles("tanganke/stanford_cars", ("default/train/*.parquet", "default/test/*.parquet"), PARQUET),
                   _hub_layout("cars"), "2 GB"),
    "resisc45": Source(HubFiles("tanganke/resisc45", ("default/train/*.parquet", "default/test/*.parquet"), PARQUET),
                       _hub_layout("resisc45"), "0.4 GB"),
}  # fmt: skip

NOT_FETCHABLE = {
    "imagenet": "ImageNet needs an account at https://image-net.org/download.php (docs/datasets.md)",
    "sun397": "SUN397's partition lists (Partitions.zip) have no checksum pinned here; docs/datasets.md says where to get them",
    "digits": "scikit-learn ships digits; nothing to fetch",
}


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _mirrored(url: str, mirror: str | None) -> str:
    """``url`` read from ``mirror`` (a folder or a URL prefix holding <host>/<path>), or ``url`` itself."""
    if not mirror:
        return url
    rest = re.sub(r"^[a-z]+://", "", url)
    if re.match(r"^[a-z]+://", mirror):
        return mirror.rstrip("/") + "/" + rest
    return Path(mirror).expanduser().resolve().joinpath(rest).as_uri()


def download(file: UrlFile, folder: Path, mirror: str | None = None) -> Path:
    """``file`` in ``folder`` with its sha256 checked (a verified copy already there is kept)."""
    target = folder / file.url.rsplit("/", 1)[1]
    if target.is_file() and sha256_file(target) == file.sha256:
        return target
    url = _mirrored(file.url, mirror)
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes") and not url.startswith("file:"):
        raise UserError(f"offline (HF_HUB_OFFLINE=1): cannot download {url}; unset it, or pass --mirror DIR holding <host>/<path> copies")
    partial = target.with_name(target.name + ".partial")
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response, open(partial, "wb") as out:  # noqa: S310 - http(s)/file URLs only
            while chunk := response.read(CHUNK):
                digest.update(chunk)
                out.write(chunk)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        partial.unlink(missing_ok=True)
        reason = getattr(exc, "reason", None) or exc
        raise UserError(f"cannot download {url} ({str(reason).splitlines()[0][:160]}); check the network, or pass --mirror") from exc
    if digest.hexdigest() != file.sha256:
        partial.unlink(missing_ok=True)
        raise UserError(f"sha256 mismatch for {url}: got {digest.hexdigest()}, expected {file.sha256}; the copy is damaged or changed")
    os.replace(partial, target)
    return target


def _hub_sha(path: Path) -> tuple[str, str] | None:
    """(algorithm, expected digest) a file of the Hugging Face cache is named by: its blob is the sha256 the hub
    announced (large files) or the git blob sha1 (small files)."""
    blob = Path(os.path.realpath(path))
    if blob.parent.name != "blobs":
        return None
    if re.fullmatch(r"[0-9a-f]{64}", blob.name):
        return "sha256", blob.name
    if re.fullmatch(r"[0-9a-f]{40}", blob.name):
        return "git-sha1", blob.name
    return None


def _digest(path: Path, algorithm: str) -> str:
    if algorithm == "sha256":
        return sha256_file(path)
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())  # noqa: S324 - git's object id, not security
    digest.update(path.read_bytes())
    return digest.hexdigest()


def hub_download(files: HubFiles) -> list[Path]:
    """The repository files matching ``files.patterns`` through the Hugging Face cache, each verified."""
    from huggingface_hub import snapshot_download

    where = f"{files.repo}@{files.revision}"
    try:
        folder = Path(snapshot_download(files.repo, repo_type="dataset", revision=files.revision, allow_patterns=list(files.patterns)))
    except Exception as exc:  # offline, unreachable, missing repo or revision: all mean "not obtainable here"
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise UserError(f"cannot fetch {where} from the Hugging Face hub ({type(exc).__name__}: {first}); "
                        "check the network, or fill HF_HUB_CACHE from a machine that has one") from exc  # fmt: skip
    found = sorted(p for pattern in files.patterns for p in folder.glob(pattern))
    if not found:
        raise UserError(f"{where} has no files matching {', '.join(files.patterns)} in {folder}")
    for path in found:
        expected = _hub_sha(path)
        if expected is None:
            raise UserError(f"cannot verify {path}: it is not a blob of the Hugging Face cache")
        algorithm, value = expected
        actual = _digest(path, algorithm)
        if actual != value:
            raise UserError(f"{algorithm} mismatch for {files.repo}/{path.relative_to(folder)}: got {actual}, expected {value}; delete it from the cache")
    return found


def fetch(name: str, root: str | Path, mirror: str | None = None, keep_downloads: bool = False) -> Path:
    """Download dataset ``name``, verify it and lay it out under ``root`` (``dataset.root``)."""
    if name not in SOURCES:
        hint = f" ({NOT_FETCHABLE[name]})" if name in NOT_FETCHABLE else ""
        raise UserError(f"cannot fetch {name!r}{hint}; choose one of {', '.join(sorted(SOURCES))}")
    source = SOURCES[name]
    base = Path(root).expanduser()
    downloads = base / ".downloads" / name
    if isinstance(source.files, HubFiles):
        paths = hub_download(source.files)
    else:
        downloads.mkdir(parents=True, exist_ok=True)
        paths = [download(file, downloads, mirror) for file in source.files]
    source.lay_out(paths, base)
    if not keep_downloads:
        shutil.rmtree(downloads, ignore_errors=True)
        if downloads.parent.is_dir() and not any(downloads.parent.iterdir()):
            downloads.parent.rmdir()
    return base
