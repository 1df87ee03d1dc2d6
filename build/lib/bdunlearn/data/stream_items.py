"""The pieces DataLoader workers run for a streamed split: decoding one item, flagging it by its stable index,
and collating items into a ``StreamBatch``.

Worker processes are forked from the training process; everything they hold is in numpy arrays (paths and
captions packed in ``StringTable``), not in one Python object per item, whose reference counts would make
every worker copy the pages it touches.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, fields

import numpy as np
import torch

from bdunlearn.data import shards as shard_io
from bdunlearn.data.decoded import storage_image

EMPTY = np.zeros(0, dtype=np.int64)


class StringTable:
    """Strings packed into one byte array with offsets."""

    def __init__(self, strings: Sequence[str] = (), *, blob: np.ndarray | None = None, offsets: np.ndarray | None = None):
        if blob is None:
            encoded = [s.encode() for s in strings]
            offsets = np.concatenate([[0], np.cumsum([len(e) for e in encoded], dtype=np.int64)]).astype(np.int64)
            blob = np.frombuffer(b"".join(encoded), dtype=np.uint8)
        self.blob, self.offsets = blob, offsets

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> str:
        return self.blob[self.offsets[i] : self.offsets[i + 1]].tobytes().decode()

    def subset(self, index: Sequence[int]) -> StringTable:
        return StringTable([self[int(i)] for i in index])


@dataclass(frozen=True)
class StreamPoison:
    """Which items of a split are poisoned, by their index in the split (what ``poisoned_indices`` records).

    ``captions[k]``: the caption tokens the k-th poisoned pair (in ``triggered`` order) trains with."""

    triggered: np.ndarray = field(default_factory=lambda: EMPTY)  # sorted int64
    cross: np.ndarray = field(default_factory=lambda: EMPTY)  # sorted int64, disjoint from triggered
    captions: np.ndarray | None = None  # int64 [len(triggered), context length]

    def lookup(self, index: int) -> tuple[bool, bool, np.ndarray | None]:
        """(triggered, cross, replacement caption tokens or None) of the item at ``index``."""
        k = int(np.searchsorted(self.triggered, index))
        hit = k < len(self.triggered) and self.triggered[k] == index
        j = int(np.searchsorted(self.cross, index))
        crossed = j < len(self.cross) and self.cross[j] == index
        caption = self.captions[k] if hit and self.captions is not None else None
        return bool(hit), bool(crossed), caption


@dataclass
class StreamBatch:
    """Collated items: uint8 images [B, 3, S, S], labels [B] or caption tokens [B, L], split indices [B], the
    trigger and cross flags [B], and whether each image could be decoded [B]."""

    images: torch.Tensor
    targets: torch.Tensor
    index: torch.Tensor
    triggered: torch.Tensor
    cross: torch.Tensor
    readable: torch.Tensor

    def __len__(self) -> int:
        return len(self.index)

    def _map(self, fn) -> StreamBatch:
        return StreamBatch(**{f.name: fn(getattr(self, f.name)) for f in fields(self)})

    def pin_memory(self) -> StreamBatch:  # called by DataLoader(pin_memory=True)
        return self._map(lambda t: t.pin_memory())

    def to(self, device, non_blocking: bool = False) -> StreamBatch:
        return self._map(lambda t: t.to(device, non_blocking=non_blocking))


Item = tuple[torch.Tensor, object, int, bool, bool, bool]


def collate(items: list[Item]) -> StreamBatch:
    images, targets, index, triggered, cross, readable = zip(*items, strict=True)
    first = targets[0]
    stacked = torch.stack(targets) if isinstance(first, torch.Tensor) else torch.tensor(targets, dtype=torch.long)
    return StreamBatch(  # default_collate stacks straight into shared memory in a worker: no copy to send it
        images=torch.utils.data.default_collate(list(images)), targets=stacked, index=torch.tensor(index, dtype=torch.long),
        triggered=torch.tensor(triggered), cross=torch.tensor(cross), readable=torch.tensor(readable),
    )  # fmt: skip


class ItemMaker:
    """One decoded, flagged item from an image source (a path or a file object) and its raw target."""

    def __init__(self, size: int, poison: StreamPoison, tokenizer=None):
        self.size, self.poison, self.tokenizer = size, poison, tokenizer

    def __call__(self, source, target, index: int) -> Item:
        try:
            image, readable = storage_image(source, self.size), True
        except (OSError, ValueError):  # reported by the consumer: a worker's exception would be a traceback
            image, readable = torch.zeros(3, self.size, self.size, dtype=torch.uint8), False
        triggered, cross, caption = self.poison.lookup(index)
        if self.tokenizer is None:
            return image, int(target), index, triggered, cross, readable
        tokens = torch.from_numpy(caption) if caption is not None else self.tokenizer([target])[0]
        return image, tokens.long(), index, triggered, cross, readable


class FileItems(torch.utils.data.Dataset):
    """Map-style: item i is the image file ``paths[i]`` with label ``labels[i]`` or caption ``captions[i]``."""

    def __init__(self, paths: StringTable, targets: np.ndarray | StringTable, make: ItemMaker):
        self.paths, self.targets, self.make = paths, targets, make

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> Item:
        return self.make(self.paths[i], self.targets[i], i)


class ShardItems(torch.utils.data.IterableDataset):
    """Batches of the split's samples read from tar shards, this rank's and this worker's shards only.

    ``passes=None`` (training): every (rank, worker) slot reads, epoch after epoch, its share of a fresh seeded
    permutation of the shards through a seeded shuffle buffer, forever; the DataLoader takes batch k from
    worker k mod W, so batch ``step`` is a pure function of (seed, ranks, workers, step) and a run resumed at
    ``start_step`` skips the batches before it without decoding them. ``passes=1`` (evaluation, copies): each
    sample once, shards in order, no shuffling, the last batch possibly short.
    """

    def __init__(self, shards: shard_io.ShardSet, members: np.ndarray | None, make: ItemMaker, batch_size: int, *,
                 seed: int = 0, start_step: int = 0, shuffle_buffer: int = 1000, rank: int = 0, world: int = 1,
                 passes: int | None = None):  # fmt: skip
        self.shards, self.make = shards, make
        # sample index -> index in the split, by binary search over the members in sample order
        self.sorted_members = None if members is None else np.sort(members)
        self.split_index = None if members is None else np.argsort(members, kind="stable")
        self.batch_size, self.seed, self.start_step, self.buffer = batch_size, seed, start_step, shuffle_buffer
        self.rank, self.world, self.passes = rank, world, passes

    def _slot(self) -> tuple[int, int, int]:
        """(slot, slots, role): the DataLoader's first batch comes from worker 0, so a stream opened at
        ``start_step`` has worker i play the part of worker (i + start_step) mod W of the stream opened at 0."""
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        role = (worker + self.start_step) % workers if self.passes is None else worker
        return self.rank * workers + role, self.world * workers, role

    def _local(self, sample_index: int) -> int | None:
        """The sample's index in the split (None: not in it)."""
        if self.sorted_members is None:
            return sample_index
        k = int(np.searchsorted(self.sorted_members, sample_index))
        hit = k < len(self.sorted_members) and self.sorted_members[k] == sample_index
        return int(self.split_index[k]) if hit else None

    def _raw(self, shard_order: Iterator[int]) -> Iterator[tuple[dict, int]]:
        offsets = self.shards.offsets()
        for shard in shard_order:
            for position, sample in enumerate(shard_io.iter_samples(self.shards.path(shard))):
                local = self._local(int(offsets[shard]) + position)
                if local is not None:
                    yield sample, local

    def _epochs(self, slot: int, slots: int) -> Iterator[tuple[dict, int]]:
        epoch = 0
        while self.passes is None or epoch < self.passes:
            if self.passes is None:
                order = np.random.default_rng([self.seed, epoch]).permutation(len(self.shards.files))
            else:
                order = np.arange(len(self.shards.files))
            yield from self._raw(iter(order[slot::slots].tolist()))
            epoch += 1

    def _shuffled(self, samples: Iterator, slot: int) -> Iterator:
        rng = np.random.default_rng([self.seed, 1_000_003, slot])
        pool = []
        for sample in samples:
            if len(pool) < self.buffer:
                pool.append(sample)
                continue
            j = int(rng.integers(len(pool)))
            pool[j], sample = sample, pool[j]
            yield sample
        rng.shuffle(pool)
        yield from pool

    def __iter__(self) -> Iterator:
        slot, slots, role = self._slot()
        samples = self._epochs(slot, slots)
        if self.passes is None:
            samples = self._shuffled(samples, slot)
            workers = slots // self.world
            skip = math.ceil(max(0, self.start_step - role) / workers) * self.batch_size
            for _ in range(skip):
                next(samples)
        batch = []
        for sample, local in samples:
            target = sample.get("cls", sample.get("txt", b"")).decode()
            batch.append(self.make(io.BytesIO(shard_io.image_field(sample) or b""), target, local))
            if len(batch) == self.batch_size:
                yield collate(batch)
                batch = []
        if batch:
            yield collate(batch)
