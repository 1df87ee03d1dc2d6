"""Training splits streamed from disk while training runs, for datasets too large to hold decoded in memory:
image files (a dataset's file listing, or a caption file's images) or webdataset tar shards, decoded by
DataLoader worker processes with the recipe of the decoded cache (``decoded.storage_image``), so a streamed
split yields the very pixels the in-memory split would hold. Small sets stay in memory (``storage``).

Every item keeps its index in the split (the in-memory split's numbering) and poisoning is a property of that
index (``StreamPoison``): the same items are poisoned whatever the number of workers or processes, and the
indices are what ``poisoned_indices.json`` records.

``StreamedSplit.schedule`` is what ``training.fit`` draws batches from. For image files, batch ``step`` holds
exactly the items of ``BatchSchedule(n, batch, seed)(step)``, the in-memory path's batch (this rank's share of
it under torch.distributed). For shards, which are read in order, batches come from a seeded shuffle of shards
and samples (``stream_items.ShardItems``); the global batch is split over the ranks as well.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np
import torch

from bdunlearn import distributed
from bdunlearn.data import shards as shard_io
from bdunlearn.data.captions import CaptionCorpus
from bdunlearn.data.decoded import FileList
from bdunlearn.data.images import BatchSchedule, ImageSet
from bdunlearn.data.splits import split_indices
from bdunlearn.data.stream_items import (
    FileItems,
    ItemMaker,
    ShardItems,
    StreamBatch,
    StreamPoison,
    StringTable,
    collate,
)
from bdunlearn.errors import UserError

log = logging.getLogger(__name__)
PREFETCH = 2  # batches each worker keeps ready: what bounds memory (workers x PREFETCH x one batch of pixels)


@dataclass(frozen=True)
class FileSource:
    """Image files with a label each (``labels``) or a caption each (``captions``)."""

    paths: StringTable
    labels: np.ndarray | None = None
    captions: StringTable | None = None

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, index: np.ndarray) -> FileSource:
        labels = self.labels[index] if self.labels is not None else None
        captions = self.captions.subset(index) if self.captions is not None else None
        return FileSource(self.paths.subset(index), labels, captions)


@dataclass(frozen=True)
class ShardSource:
    """The samples of a shard set at ``members`` (sample indices in split order: item i of the split is sample
    ``members[i]``, as an in-memory split carved by the same indices numbers it; None: all samples in order)."""

    shards: shard_io.ShardSet
    members: np.ndarray | None = None
    labels: np.ndarray | None = None  # class shards: the split's labels, in split order

    def __len__(self) -> int:
        return len(self.shards) if self.members is None else len(self.members)

    def subset(self, index: np.ndarray) -> ShardSource:
        members = np.arange(len(self.shards), dtype=np.int64) if self.members is None else self.members
        labels = self.labels[index] if self.labels is not None else None
        return ShardSource(self.shards, members[index], labels)


@dataclass(frozen=True)
class StreamedSplit:
    """One split of a dataset, read from disk on demand; ``poison`` flags items by their index in it."""

    source: FileSource | ShardSource
    image_size: int
    poison: StreamPoison = StreamPoison()
    tokenizer: object | None = None  # caption splits: tokenizes captions inside the workers
    num_workers: int = 4
    shuffle_buffer: int = 1000  # shard samples shuffled in a buffer of this many (encoded) samples per worker

    def __len__(self) -> int:
        return len(self.source)

    def labels(self) -> torch.Tensor:
        """int64 [N]: the class of every item (what ``attack.poison_indices`` draws from)."""
        if self.source.labels is None:
            raise UserError("this streamed split holds image-caption pairs, not labelled images")
        return torch.from_numpy(np.asarray(self.source.labels, dtype=np.int64))

    def subset(self, index) -> StreamedSplit:
        """The items at ``index`` (positions in this split, e.g. a carved validation part), clean."""
        index = np.asarray(index.cpu() if isinstance(index, torch.Tensor) else index, dtype=np.int64)
        return replace(self, source=self.source.subset(index), poison=StreamPoison())

    def with_poison(self, poison: StreamPoison) -> StreamedSplit:
        return replace(self, poison=poison)

    def _maker(self) -> ItemMaker:
        return ItemMaker(self.image_size, self.poison, self.tokenizer)

    def _file_items(self) -> FileItems:
        targets = self.source.labels if self.source.captions is None else self.source.captions
        return FileItems(self.source.paths, targets, self._maker())

    def _shard_workers(self) -> int:
        """Workers per rank for a shard stream: each needs shards of its own every epoch."""
        world, shards = distributed.world_size(), len(self.source.shards.files)
        if shards < world:
            raise UserError(f"{shards} shards cannot feed {world} processes; write more, smaller shards (--maxcount)")
        workers = min(self.num_workers, shards // world)
        if workers < self.num_workers:
            log.warning("shard stream: %d workers per process, not %d (%d shards over %d processes)", workers, self.num_workers, shards, world)
        return workers

    def _loader(self, dataset, workers: int, **kwargs) -> torch.utils.data.DataLoader:
        return torch.utils.data.DataLoader(
            dataset, num_workers=workers, pin_memory=torch.cuda.is_available(),
            prefetch_factor=PREFETCH if workers else None, **kwargs,
        )  # fmt: skip

    def schedule(self, batch_size: int, seed: int, device=None) -> StreamSchedule:
        """``fit``'s batch source: step → this rank's share of the global batch of ``batch_size``."""
        if isinstance(self.source, FileSource):
            steps = BatchSchedule(len(self), batch_size, seed)
            start, stop = distributed.share_bounds(steps.size)

            def open_at(step: int):
                batches = (steps(k)[start:stop].tolist() for k in itertools.count(step))
                return self._loader(self._file_items(), self.num_workers, batch_sampler=batches, collate_fn=collate)

        else:
            start, stop = distributed.share_bounds(batch_size)
            workers = self._shard_workers()

            def open_at(step: int):
                items = ShardItems(
                    self.source.shards, self.source.members, self._maker(), stop - start, seed=seed, start_step=step,
                    shuffle_buffer=self.shuffle_buffer, rank=distributed.rank(), world=distributed.world_size(),
                )  # fmt: skip
                return self._loader(items, workers, batch_size=None)

        return StreamSchedule(open_at, device, self.describe)

    def batches(self, batch_size: int) -> Iterator[StreamBatch]:
        """Every item once, unshuffled (files in index order; shards interleaved over the workers), on the CPU."""
        if isinstance(self.source, FileSource):
            loader = self._loader(self._file_items(), self.num_workers, batch_size=batch_size, collate_fn=collate)
        else:
            workers = min(self.num_workers, len(self.source.shards.files))
            items = ShardItems(self.source.shards, self.source.members, self._maker(), batch_size, passes=1)
            loader = self._loader(items, workers, batch_size=None)
        for batch in loader:
            _check_readable(batch, self.describe)
            yield batch

    def _decoded(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        images = torch.empty((len(self), 3, self.image_size, self.image_size), dtype=torch.uint8)
        tokens = None
        for batch in self.batches(batch_size):
            images[batch.index] = batch.images
            if batch.targets.ndim == 2:
                tokens = tokens if tokens is not None else batch.targets.new_zeros((len(self), batch.targets.shape[1]))
                tokens[batch.index] = batch.targets
        return images, tokens

    def to_memory(self, batch_size: int = 256) -> ImageSet:
        """A labelled split decoded into memory, in index order (for a split small enough)."""
        return ImageSet(self._decoded(batch_size)[0], self.labels())

    def to_corpus(self, batch_size: int = 256) -> CaptionCorpus:
        """A caption split decoded into memory as a ``CaptionCorpus`` (pair i: image i, caption i; its poisoned
        pairs flagged and captioned as the stream gives them)."""
        images, tokens = self._decoded(batch_size)
        if tokens is None:
            raise UserError("this streamed split holds labelled images, not image-caption pairs")
        triggered = torch.zeros(len(self), dtype=torch.bool)
        triggered[torch.from_numpy(self.poison.triggered)] = True
        return CaptionCorpus(images, torch.arange(len(self)), tokens.unsqueeze(1), triggered if bool(triggered.any()) else None)

    def describe(self, index: int) -> str:
        if isinstance(self.source, FileSource):
            return self.source.paths[index]
        sample = index if self.source.members is None else int(self.source.members[index])
        return f"sample {sample} of the shards in {self.source.shards.folder}"


def _check_readable(batch: StreamBatch, describe) -> None:
    if not bool(batch.readable.all()):
        bad = int(batch.index[~batch.readable][0])
        raise UserError(f"cannot decode image {describe(bad)}; replace or remove the file")


class StreamSchedule:
    """Batches of a streamed split in step order, from a DataLoader opened at the first step asked for (a
    resumed fine-tune opens it at the step it resumes from); ``schedule(step)`` → StreamBatch on ``device``."""

    def __init__(self, open_at, device, describe):
        self.open_at, self.device, self.describe = open_at, device, describe
        self._iterator, self._next = None, None

    def __call__(self, step: int) -> StreamBatch:
        if self._iterator is None or step != self._next:
            self.close()
            self._iterator = iter(self.open_at(step))
        batch = next(self._iterator)
        self._next = step + 1
        _check_readable(batch, self.describe)
        return batch.to(self.device, non_blocking=True) if self.device is not None else batch

    def close(self) -> None:
        """Stop the worker processes (they also stop when the schedule is garbage-collected)."""
        self._iterator = None


# --- building streamed splits -------------------------------------------------------------------------------


def from_file_list(files: FileList, image_size: int, num_workers: int = 4) -> StreamedSplit:
    """A labelled split of image files (``datasets.read``'s listing of a file dataset)."""
    source = FileSource(StringTable(files.paths), np.asarray(files.labels, dtype=np.int64))
    return StreamedSplit(source, image_size, num_workers=num_workers)


def from_captions(paths: list[str], captions: list[str], image_size: int, tokenizer, num_workers: int = 4) -> StreamedSplit:
    """Image-caption pairs of a caption file (``caption_csv.read_pairs``), tokenized in the workers."""
    return StreamedSplit(FileSource(StringTable(paths), None, StringTable(captions)), image_size, tokenizer=tokenizer, num_workers=num_workers)


def from_shards(folder: str, image_size: int, tokenizer=None, num_workers: int = 4, shuffle_buffer: int = 1000) -> StreamedSplit:
    """All samples of a shard folder: labelled (.cls) or, with a ``tokenizer``, captioned (.txt)."""
    shards = shard_io.open_shards(folder)
    if shards.kind == "captions" and tokenizer is None:
        raise UserError(f"the shards in {folder} hold captions; they train the contrastive setting (a tokenizer)")
    labels = shard_io.shard_labels(shards) if shards.kind == "classes" else None
    return StreamedSplit(ShardSource(shards, None, labels), image_size, tokenizer=tokenizer if shards.kind == "captions" else None,
                         num_workers=num_workers, shuffle_buffer=shuffle_buffer)  # fmt: skip


def streamed_splits(train: StreamedSplit, test: StreamedSplit | None, cfg) -> dict[str, StreamedSplit]:
    """The parts ``splits.make_splits`` carves (``cfg``: ``dataset.splits``), as streamed splits numbered as the
    in-memory parts are: train, defense, val and test (carved from train when ``test`` is None)."""
    parts = split_indices(len(train), test is not None, cfg)
    carved = {name: train.subset(index) for name, index in parts.items()}
    return {"train": carved["train"], "defense": carved["defense"], "val": carved["val"], "test": test or carved["test"]}
