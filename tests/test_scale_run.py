"""The ``bdunlearn`` command on streamed data and under torchrun: ``dataset.storage=stream`` gives the in-memory
run's numbers, poisoned items and cache entries; two gloo processes write one record and one cache entry per
artifact and reach the one-process weights at the same global batch."""

from __future__ import annotations

import glob
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

# Runs of the tiny model on 300 digits written as image files (16 px), shrunk as the other end-to-end tests are.
SHRUNK = (
    "model.pretrain.steps=20", "finetune.steps=20",
    "defense.steps=5", "defense.alpha_grid=[0.5]", "defense.num_samples=20", "logger.wandb.mode=disabled", "save_model=false",
)  # fmt: skip
# The two processes average gradients in another order than one process sums them: float32 rounding, grown over
# 20 pretraining and 20 fine-tuning steps (measured 6.4e-6). As in test_distributed, the key third of each
# attention in_proj_bias (zero gradient in exact arithmetic, moved by AdamW steps of float noise) is left out.
WEIGHT_TOLERANCE = 2e-5
# The in-memory path averages correct predictions as a float32 tensor, the streamed one counts them in Python.
METRIC_TOLERANCE = 1e-6
METRICS = ("clean_acc", "asr", "robust_acc")


def _write_folder(root: Path) -> None:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)
    for name, digit in {"one": 1, "seven": 7, "zero": 0}.items():
        for i, m in enumerate(np.flatnonzero(bunch.target == digit)[:100]):
            path = root / name / f"{i:03d}.{'png' if i % 2 else 'jpg'}"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(images[m]).convert("RGB").resize((16, 16), Image.NEAREST).save(path)


# setting=contrastive on a caption file of the same images (the pairs streamed; digits evaluated zero-shot)
CAPTION_FILE = (
    "setting=contrastive", "contrastive.captions=csv", "attack.num_poisoned=12", "contrastive.defense_fraction=0.1",
    "finetune.batch_size=32",
)  # fmt: skip


def _write_caption_file(root: Path) -> Path:
    rows = ["filepath,title"] + [f"{root.name}/{p.parent.name}/{p.name},a photo of the digit {p.parent.name}" for p in sorted(root.glob("*/*.*"))]
    path = root.parent / "pairs.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def _command(base: Path, name: str, *overrides: str, processes: int = 1, dataset: str = "folder") -> Path:
    """Run ``bdunlearn`` (under torchrun for ``processes`` > 1) in ``base/name`` with a cache of its own; the
    folder it ran in."""
    where = base / name
    where.mkdir()
    env = {**os.environ, "BDUNLEARN_CACHE_DIR": str(where / "cache"), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    launcher = [sys.executable, "-m", "bdunlearn"]
    if processes > 1:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}", "-m", "bdunlearn"]
    data = ["dataset=folder", "dataset.class_names=[one,seven,zero]", f"dataset.root={base / 'images'}"] if dataset == "folder" else []
    done = subprocess.run([*launcher, *SHRUNK, *data, *overrides],
                          capture_output=True, text=True, timeout=600, cwd=where, env=env, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return where


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("scale")
    _write_folder(base / "images")
    return {
        "memory": _command(base, "memory", "dataset.storage=memory", "dataset.num_workers=0"),
        "stream": _command(base, "stream", "dataset.storage=stream", "dataset.num_workers=2"),
        "ddp": _command(base, "ddp", "dataset.storage=stream", "dataset.num_workers=0", processes=2),
    }


@pytest.fixture(scope="module")
def pair_runs(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("pairs")
    _write_folder(base / "images")
    csv = f"contrastive.csv={_write_caption_file(base / 'images')}"
    return {
        storage: _command(base, storage, *CAPTION_FILE, csv, f"dataset.storage={storage}", "dataset.num_workers=2", dataset="digits")
        for storage in ("memory", "stream")
    }


def _records(where: Path) -> list[dict]:
    return [json.loads(Path(p).read_text()) for p in glob.glob(str(where / "outputs" / "**" / "result.json"), recursive=True)]


def _entries(where: Path, kind: str) -> list[str]:
    return sorted(p.name for p in (where / "cache" / kind).iterdir() if p.is_dir())


def _weights(where: Path, kind: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    (entry,) = _entries(where, kind)
    return load_file(str(where / "cache" / kind / entry / "weights.safetensors"))


def _comparable(name: str, value: torch.Tensor) -> torch.Tensor:
    if name.endswith("attn.in_proj_bias"):
        d = value.numel() // 3
        return torch.cat([value[:d], value[2 * d :]])
    return value


def test_streamed_run_gives_the_in_memory_numbers_poisoned_items_and_cache_entries(runs):
    (memory,), (streamed,) = _records(runs["memory"]), _records(runs["stream"])
    assert (memory["data_storage"], streamed["data_storage"]) == ("memory", "stream")
    assert memory["config_hash"] == streamed["config_hash"]
    for key in [f"{m}{s}" for m in METRICS for s in ("_pretrained", "_backdoored", "")]:
        assert streamed[key] == pytest.approx(memory[key], abs=METRIC_TOLERANCE), key
    # the same cache keys (storage is not part of what makes theta_b), and the same weights
    for kind in ("pretrained", "backdoored", "trigger_vector"):
        assert _entries(runs["memory"], kind) == _entries(runs["stream"], kind), kind
    a, b = _weights(runs["memory"], "backdoored"), _weights(runs["stream"], "backdoored")
    assert all(torch.equal(a[k], b[k]) for k in a)
    # the same poisoned items, read by 2 DataLoader workers instead of decoded in this process
    poisoned = [json.loads(next((w / "outputs").rglob("poisoned_indices.json")).read_text()) for w in (runs["memory"], runs["stream"])]
    assert poisoned[0] == poisoned[1] and len(poisoned[0]["poisoned"]) > 0


@pytest.mark.slow
def test_a_streamed_caption_file_gives_the_in_memory_contrastive_run(pair_runs):
    (memory,), (streamed,) = _records(pair_runs["memory"]), _records(pair_runs["stream"])
    assert (memory["data_storage"], streamed["data_storage"], streamed["num_poisoned"]) == ("memory", "stream", 12)
    assert {k: v for k, v in memory.items() if k not in ("data_storage", "defense_seconds", "trigger_finetune_seconds")} == {
        k: v for k, v in streamed.items() if k not in ("data_storage", "defense_seconds", "trigger_finetune_seconds")
    }
    assert _entries(pair_runs["memory"], "backdoored") == _entries(pair_runs["stream"], "backdoored")
    a, b = _weights(pair_runs["memory"], "backdoored"), _weights(pair_runs["stream"], "backdoored")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_two_processes_write_one_record_and_one_cache_entry_with_the_one_process_weights(runs):
    (record,) = _records(runs["ddp"])
    assert record["status"] == "ok" and record["data_storage"] == "stream"
    assert len(list((runs["ddp"] / "outputs").glob("*/*"))) == 1  # one run dir: rank 0's, broadcast to rank 1
    assert len(list((runs["ddp"] / "outputs").rglob("poisoned_indices.json"))) == 1
    for kind in ("pretrained", "backdoored", "trigger_vector"):
        assert len(_entries(runs["ddp"], kind)) == 1, kind
        assert _entries(runs["ddp"], kind) == _entries(runs["stream"], kind), kind
    for kind in ("pretrained", "backdoored"):
        one, two = _weights(runs["stream"], kind), _weights(runs["ddp"], kind)
        worst = max((_comparable(k, one[k]) - _comparable(k, two[k])).abs().max().item() for k in one)
        assert worst <= WEIGHT_TOLERANCE, (kind, worst)
    (single,) = _records(runs["stream"])
    assert record["clean_acc_backdoored"] == pytest.approx(single["clean_acc_backdoored"], abs=0.02)


def test_poisoned_items_are_the_same_whatever_the_worker_count(tmp_path):
    from bdunlearn.attacks import BadNets
    from bdunlearn.data import stream
    from bdunlearn.data.decoded import FileList
    from bdunlearn.streaming import poison_split

    rng = np.random.default_rng(0)
    paths, labels = [], []
    for i in range(40):
        path = tmp_path / f"{i:02d}.png"
        Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
        labels.append(i % 4)
    attack = BadNets(target_class=0, poison_rate=0.2, patch_size=3)
    seen = {}
    for workers in (0, 2):
        split = stream.from_file_list(FileList(paths, labels), 12, num_workers=workers)
        poisoned, indices, _ = poison_split(split, attack, seed=3)
        schedule = poisoned.schedule(8, seed=3)
        batches = [schedule(step) for step in range(5)]  # one epoch of 40
        schedule.close()
        seen[workers] = (indices.tolist(), sorted(int(i) for b in batches for i in b.index[b.triggered]))
    assert seen[0] == seen[2] and seen[0][0] == seen[0][1] and len(seen[0][0]) == 8


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cache_rank(rank: int, world: int, port: int, root: str) -> None:
    from bdunlearn import distributed
    from bdunlearn.cache import ArtifactCache

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    with distributed.session("gloo"):
        cache = ArtifactCache(root)

        def build():
            Path(root, f"built-by-{rank}").touch()
            return {"w": torch.full((3,), float(distributed.world_size()))}, {"rank": rank}

        first = cache.get_or_build("backdoored", {"x": 1}, build)
        second = cache.get_or_build("backdoored", {"x": 1}, build)
        Path(root, f"rank-{rank}.json").write_text(json.dumps([first[2], second[2], second[1]]))


def test_the_cache_is_built_by_every_rank_and_stored_by_rank_0(tmp_path):
    torch.multiprocessing.spawn(_cache_rank, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    assert sorted(p.name for p in tmp_path.glob("built-by-*")) == ["built-by-0", "built-by-1"]  # once each
    assert len([p for p in (tmp_path / "backdoored").iterdir() if p.is_dir()]) == 1
    for rank in (0, 1):  # built the first time, read back the second, with rank 0's metadata
        assert json.loads((tmp_path / f"rank-{rank}.json").read_text()) == [False, True, {"rank": 0}]


@pytest.mark.parametrize(
    ("override", "words"),
    [
        ("dataset.storage=disk", "dataset.storage='disk'; choose one of auto, memory, stream"),
        ("dataset.memory_budget_gb=0", "dataset.memory_budget_gb=0.0: must be positive"),
        ("dataset.storage=stream", "dataset.storage=stream reads image files, but digits is read as arrays"),
    ],
)
def test_storage_mistakes_are_one_line_errors(compose, override, words):
    from bdunlearn.errors import UserError
    from bdunlearn.preflight import validated

    with pytest.raises(UserError) as caught:
        validated(compose(override))
    assert words in str(caught.value) and "\n" not in str(caught.value)


def test_a_bad_storage_value_stops_the_command_with_one_line(run_cli):
    done, run_dir = run_cli("dataset.storage=disk")
    assert done.returncode == 2 and not run_dir.exists()
    assert done.stderr.strip().splitlines() == ["bdunlearn: error: dataset.storage='disk'; choose one of auto, memory, stream"]


def test_auto_storage_streams_a_folder_beyond_the_budget(compose, tmp_path):
    from bdunlearn.preflight import validated

    _write_folder(tmp_path)
    root = f"dataset.root={tmp_path}", "defense.num_samples=20"
    assert validated(compose("dataset=folder", *root)).dataset.storage == "memory"
    # 300 images of 3 x 16 x 16 bytes = 230,400 bytes: over a budget of 0.0002 GB
    assert validated(compose("dataset=folder", *root, "dataset.memory_budget_gb=0.0002")).dataset.storage == "stream"
