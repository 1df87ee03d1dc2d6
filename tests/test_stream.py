"""Streamed splits: the same pixels and batches as the in-memory path, poisoning by stable index whatever the
worker count, exact resumption, one-line errors; and the storage rule."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from bdunlearn.data import shards as shard_io
from bdunlearn.data import stream
from bdunlearn.data.decoded import FileList, decode
from bdunlearn.data.images import BatchSchedule
from bdunlearn.data.storage import choose_storage, decoded_bytes
from bdunlearn.data.stream_items import StreamPoison
from bdunlearn.errors import UserError

SIZE = 12


def _image_files(folder, count: int, classes: int = 3) -> FileList:
    """PNG and JPEG files of varied sizes, so decoding resizes and crops."""
    rng = np.random.default_rng(0)
    paths, labels = [], []
    for i in range(count):
        h, w = 10 + i % 7, 14 + i % 5
        pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        path = folder / f"img{i:03d}.{'png' if i % 2 else 'jpg'}"
        Image.fromarray(pixels).save(path)
        paths.append(str(path))
        labels.append(i % classes)
    return FileList(tuple(paths), tuple(labels))


def _shards(folder, files: FileList, maxcount: int) -> str:
    def samples():
        for path, label in zip(files.paths, files.labels, strict=True):
            yield path.rsplit(".", 1)[1], open(path, "rb").read(), label

    shard_io.write_shards(samples(), folder / "shards", maxcount, "classes", ("a", "b", "c"))
    return str(folder / "shards")


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> FileList:
    return _image_files(tmp_path_factory.mktemp("images"), 30)


@pytest.mark.parametrize("workers", [0, 2])
def test_file_stream_draws_the_in_memory_batches(files, workers):
    memory = decode(files, SIZE, dataset="t", split="train", root="/", num_workers=0, cache_dir=None)
    split = stream.from_file_list(files, SIZE, num_workers=workers)
    steps = BatchSchedule(len(files), 8, seed=3)
    schedule = split.schedule(8, seed=3)
    for step in range(9):  # crosses two epoch boundaries (3 batches of 8 per pass)
        batch = schedule(step)
        assert torch.equal(batch.index, steps(step))
        assert torch.equal(batch.images, memory.images[steps(step)])
        assert torch.equal(batch.targets, memory.labels[steps(step)])
    resumed = split.schedule(8, seed=3)(7)  # a resumed fine-tune opens the stream at its step
    assert torch.equal(resumed.index, steps(7))
    schedule.close()


def test_shard_poisoning_is_by_index_whatever_the_worker_count(files, tmp_path):
    memory = decode(files, SIZE, dataset="t", split="train", root="/", num_workers=0, cache_dir=None)
    folder = _shards(tmp_path, files, maxcount=4)  # 8 shards, the last one short
    poisoned = np.array([1, 5, 6, 17, 29])
    split = stream.from_shards(folder, SIZE).with_poison(StreamPoison(triggered=poisoned))
    for workers in (0, 1, 3):
        seen = {}
        for batch in replace(split, num_workers=workers).batches(5):
            for i, index in enumerate(batch.index.tolist()):
                seen[index] = bool(batch.triggered[i])
                assert torch.equal(batch.images[i], memory.images[index])
                assert int(batch.targets[i]) == files.labels[index]
        assert sorted(seen) == list(range(len(files)))
        assert sorted(i for i, flag in seen.items() if flag) == poisoned.tolist()


def test_shard_training_stream_flags_poison_and_resumes_exactly(files, tmp_path):
    folder = _shards(tmp_path, files, maxcount=3)  # 10 shards
    poisoned = np.array([0, 2, 11, 28])
    split = stream.from_shards(folder, SIZE, num_workers=2, shuffle_buffer=4).with_poison(StreamPoison(triggered=poisoned))
    schedule = split.schedule(6, seed=1)
    batches = [schedule(step) for step in range(12)]  # 72 items: every sample more than twice
    drawn = torch.cat([b.index for b in batches])
    assert set(drawn.tolist()) == set(range(len(files)))
    flagged = torch.cat([b.triggered for b in batches])
    assert torch.equal(flagged, torch.isin(drawn, torch.from_numpy(poisoned)))
    resumed = split.schedule(6, seed=1)
    for step in (7, 8, 11):
        batch = resumed(step) if step != 11 else split.schedule(6, seed=1)(11)
        assert torch.equal(batch.index, batches[step].index)
        assert torch.equal(batch.images, batches[step].images)
    schedule.close()
    resumed.close()


def test_subsets_keep_in_memory_numbering(files, tmp_path):
    folder = _shards(tmp_path, files, maxcount=7)
    part = np.array([25, 3, 10, 9])  # split order, as a permutation carves it
    by_shards = stream.from_shards(folder, SIZE, num_workers=0).subset(torch.from_numpy(part)).to_memory()
    by_files = stream.from_file_list(files, SIZE, num_workers=0).subset(part).to_memory()
    whole = decode(files, SIZE, dataset="t", split="train", root="/", num_workers=0, cache_dir=None).subset(torch.from_numpy(part))
    for got in (by_shards, by_files):
        assert torch.equal(got.images, whole.images) and torch.equal(got.labels, whole.labels)


def test_caption_shards_carry_tokens_and_target_captions(tmp_path, files):
    def samples():
        for i, path in enumerate(files.paths[:12]):
            yield "png" if path.endswith("png") else "jpg", open(path, "rb").read(), f"caption number {i}"

    shard_io.write_shards(samples(), tmp_path / "pairs", 4, "captions")
    tokenize = lambda texts: torch.tensor([[len(t), sum(map(ord, t)) % 97] for t in texts])  # noqa: E731
    target = np.array([[7, 7], [8, 8]])
    split = stream.from_shards(str(tmp_path / "pairs"), SIZE, tokenizer=tokenize, num_workers=0)
    split = split.with_poison(StreamPoison(triggered=np.array([2, 9]), captions=target))
    rows = {int(i): (t.tolist(), bool(f)) for b in split.batches(5) for i, t, f in zip(b.index, b.targets, b.triggered, strict=True)}
    assert rows[2] == ([7, 7], True) and rows[9] == ([8, 8], True)
    assert rows[3] == (tokenize(["caption number 3"])[0].tolist(), False)
    corpus = split.to_corpus()
    assert len(corpus) == 12 and corpus.caption_tokens[9, 0].tolist() == [8, 8] and corpus.triggered.nonzero().flatten().tolist() == [2, 9]
    assert torch.equal(corpus.images, stream.from_file_list(FileList(files.paths[:12], (0,) * 12), SIZE, 0).to_memory().images)


def test_an_unreadable_image_is_one_line(tmp_path, files):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    listing = FileList((*files.paths[:3], str(broken)), (0, 1, 2, 0))
    with pytest.raises(UserError, match=r"cannot decode image .*broken\.jpg"):
        list(stream.from_file_list(listing, SIZE, num_workers=0).batches(4))


def test_too_few_shards_for_the_processes_is_a_user_error(tmp_path, files, monkeypatch):
    folder = _shards(tmp_path, files, maxcount=30)  # one shard
    monkeypatch.setattr(stream.distributed, "world_size", lambda: 2)
    with pytest.raises(UserError, match="1 shards cannot feed 2 processes"):
        stream.from_shards(folder, SIZE).schedule(4, seed=0)(0)


def test_shards_without_a_manifest_are_counted_from_their_headers(tmp_path, files):
    folder = _shards(tmp_path, files, maxcount=8)
    (tmp_path / "shards" / shard_io.MANIFEST).unlink()
    (tmp_path / "shards" / shard_io.LABELS).unlink()
    split = stream.from_shards(folder, SIZE)
    assert len(split) == len(files) and split.labels().tolist() == list(files.labels)


def test_storage_rule():
    image = decoded_bytes(1, 224)
    assert choose_storage("auto", 1000, 224, budget_bytes=1000 * image) == "memory"
    assert choose_storage("auto", 1001, 224, budget_bytes=1000 * image) == "stream"
    assert choose_storage("memory", 10**9, 224) == "memory"
    assert choose_storage("stream", 1, 8) == "stream"
    assert choose_storage("auto", 1, 8) == "memory"  # against this machine's memory
    with pytest.raises(UserError, match="dataset.storage='disk'"):
        choose_storage("disk", 1, 8)


def test_streamed_splits_are_the_in_memory_splits(files):
    from bdunlearn.data.datasets import RawDataset
    from bdunlearn.data.splits import make_splits

    cfg = SimpleNamespace(seed=5, test_fraction=0.2, val_fraction=0.1, defense_fraction=0.1, max_val_samples=None)
    memory = make_splits(RawDataset(decode(files, SIZE, dataset="t", split="train", root="/", num_workers=0, cache_dir=None), None), cfg)
    streamed = stream.streamed_splits(stream.from_file_list(files, SIZE, num_workers=0), None, cfg)
    for name, part in streamed.items():
        got = part.to_memory()
        assert torch.equal(got.images, getattr(memory, name).images) and torch.equal(got.labels, getattr(memory, name).labels), name
