"""The run's splits, held in memory or streamed from disk (``dataset.storage``, resolved at preflight).

``memory``: every split decoded once (through the decoded cache) and moved to the device. ``stream``: the
training and test splits stay on disk and are read by DataLoader workers while a fine-tune or an evaluation
runs (``data.stream``), numbered as the in-memory splits are, so the same items are poisoned and the same
batches drawn either way. Only datasets of image files can be streamed; arrays are small enough to hold. A
user's shards (``dataset=shards``) are always streamed, numbered in shard order and batched from a shuffle buffer.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from bdunlearn.data import datasets, stream
from bdunlearn.data.images import ImageSet
from bdunlearn.data.splits import Splits, make_splits
from bdunlearn.data.storage import choose_storage
from bdunlearn.errors import UserError

GB = 10**9


def streamed(split) -> bool:
    return isinstance(split, stream.StreamedSplit)


def resolve_storage(cfg, device=None, pairs: int | None = None, image_size: int | None = None):
    """``cfg`` (a dataset config) with ``storage`` ``memory`` or ``stream``: ``auto`` compares the decoded size of
    the training images (or of a caption file's ``pairs``, at ``image_size``) with ``memory_budget_gb`` (null: a
    quarter of the host's and the GPU's memory). Shards always stream: read in order, they are batched from a
    shuffle buffer, not as an in-memory split is, so the choice must not depend on the host's free memory."""
    if pairs is None and not datasets.is_decoded(cfg):
        if cfg.storage == "stream":
            raise UserError(
                f"dataset.storage=stream reads image files, but {cfg.name} is read as arrays (small enough to hold); "
                "use dataset.storage=memory or auto"
            )
        return replace(cfg, storage="memory")
    if datasets.is_sharded(cfg):  # validate() refuses storage=memory for shards
        return replace(cfg, storage="stream")
    items = pairs if pairs is not None else datasets.train_size(cfg)[0]
    budget = None if cfg.memory_budget_gb is None else int(cfg.memory_budget_gb * GB)
    size = cfg.image_size or image_size
    return replace(cfg, storage=choose_storage(cfg.storage, items, size, budget_bytes=budget, device=device))


def load_splits(cfg, cache_dir) -> Splits:
    """The dataset's splits: in memory (on the CPU), or streamed when ``cfg.storage`` is ``stream`` (arrays are
    always held: there ``stream`` is the contrastive setting's choice for its caption file)."""
    if cfg.storage != "stream" or not datasets.is_decoded(cfg):
        return make_splits(datasets.load(cfg, cache_dir), cfg.splits)
    datasets.check_available(cfg)
    test = _streamed(cfg, "test") if datasets.has_official_test(cfg) else None
    return Splits(**stream.streamed_splits(_streamed(cfg, "train"), test, cfg.splits))


def _streamed(cfg, split: str) -> stream.StreamedSplit:
    """One official split streamed: a listing of image files, or a shard set (``dataset=shards``)."""
    if datasets.is_sharded(cfg):
        return stream.from_shards(datasets.read(cfg, split).folder, cfg.image_size, num_workers=cfg.num_workers)
    return stream.from_file_list(datasets.read(cfg, split), cfg.image_size, cfg.num_workers)


def on_device(splits: Splits, device) -> Splits:
    """The splits a run works with: in-memory splits on ``device``; of streamed ones, the training and test splits
    stay streamed while the defender's pool and validation are decoded into memory, because defenses and trigger
    inversions draw random batches from the pool and TBAR evaluates validation once per alpha (both are small)."""

    def held(split) -> ImageSet:
        return (split.to_memory() if streamed(split) else split).to(device)

    train, test = (s if streamed(s) else s.to(device) for s in (splits.train, splits.test))
    return Splits(train=train, defense=held(splits.defense), val=held(splits.val), test=test)


def first_images(split, mask_of_labels, count: int) -> torch.Tensor:
    """uint8 images of the first ``count`` items whose labels ``mask_of_labels`` accepts (a preview's images)."""
    labels = split.labels() if streamed(split) else split.labels
    chosen = torch.nonzero(mask_of_labels(labels.cpu())).flatten()[:count]
    return split.subset(chosen).to_memory().images if streamed(split) else split.images[chosen.to(split.images.device)]
