"""Fine-tuning on streamed splits (``data.stream``): the counterparts of ``objectives.finetune_classifier`` and
``objectives.finetune_pairs`` for datasets read from disk while training runs. Same loop (``training.fit``),
same per-batch losses; only the batches come from DataLoader workers instead of an in-memory tensor.

Poisoning follows the in-memory recipe to the item: ``poison_split`` draws the indices as ``pipeline`` does
(``attack.poison_indices`` over the split's labels) and ``poison_pairs_split`` gives each poisoned pair the
target caption ``data.poison.poison_pairs`` would, so a split small enough for both paths is poisoned, batched
and trained identically either way.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from bdunlearn.attacks.base import Attack
from bdunlearn.data.images import to_pixels
from bdunlearn.data.stream import StreamedSplit
from bdunlearn.data.stream_items import StreamBatch, StreamPoison
from bdunlearn.objectives import ExtraTerm, clip_pair_loss, triggered_cross_entropy
from bdunlearn.runtime import Precision
from bdunlearn.training import OptimSettings, Resume, Sam, TrainResult, fit

FP32 = Precision()


def poison_split(data: StreamedSplit, attack: Attack, seed: int) -> tuple[StreamedSplit, torch.Tensor, torch.Tensor]:
    """(the attacker's split, poisoned indices, cross indices): the items ``attack`` poisons, drawn from the
    split's labels with ``seed`` exactly as for an in-memory split."""
    labels = data.labels()
    indices = attack.poison_indices(labels, seed)
    cross = attack.cross_indices(labels, indices, seed)
    poison = StreamPoison(triggered=indices.numpy().astype(np.int64), cross=cross.numpy().astype(np.int64))
    return data.with_poison(poison), indices, cross


def poison_pairs_split(pairs: StreamedSplit, indices: torch.Tensor, target_tokens: torch.Tensor, seed: int = 0) -> StreamedSplit:
    """The attacker's pairs: those at ``indices`` (sorted, as ``poison.choose_pairs`` returns them) get the trigger
    and one of ``target_tokens`` [templates, L], drawn per pair as ``poison.poison_pairs`` draws it."""
    indices = indices.cpu()
    if len(indices) > 1 and not bool((indices[1:] > indices[:-1]).all()):
        raise ValueError("poisoned pair indices must be sorted and distinct")
    template = torch.randint(0, len(target_tokens), (len(indices),), generator=torch.Generator().manual_seed(seed))
    captions = target_tokens.cpu()[template].long().numpy()
    return pairs.with_poison(StreamPoison(triggered=indices.numpy().astype(np.int64), captions=captions))


def _train_mode(classifier: nn.Module, schedule, run):
    classifier.train()
    try:
        return run()
    finally:
        classifier.eval()
        schedule.close()


def finetune_classifier_streamed(
    classifier: nn.Module,
    params: list[nn.Parameter],
    data: StreamedSplit,
    attack: Attack | None,
    image_size: int,
    settings: OptimSettings,
    seed: int,
    desc: str,
    resume: Resume | None = None,
    precision: Precision = FP32,
    sam: Sam | None = None,
) -> TrainResult:
    """Supervised fine-tuning of ``params`` through the classifier's frozen head on a streamed split; poisoned
    items train with ``attack``'s labels and trigger (cross items with its cross transform)."""
    generator = torch.Generator().manual_seed(seed)
    schedule = data.schedule(settings.batch_size, seed, device=classifier.head.device)

    def loss_fn(batch: StreamBatch) -> torch.Tensor:
        labels = batch.targets
        if attack is not None and bool(batch.triggered.any()):
            labels = labels.clone()
            labels[batch.triggered] = attack.poisoned_labels(labels[batch.triggered])
        cross = batch.cross if bool(batch.cross.any()) else None
        return triggered_cross_entropy(classifier, batch.images, labels, batch.triggered, cross, attack, image_size, generator)

    return _train_mode(classifier, schedule, lambda: fit(
        params, loss_fn, schedule, settings, desc, generator=generator, resume=resume, precision=precision, sam=sam
    ))  # fmt: skip


def finetune_pairs_streamed(
    classifier: nn.Module,
    params: list[nn.Parameter],
    pairs: StreamedSplit,
    attack: Attack | None,
    image_size: int,
    settings: OptimSettings,
    seed: int,
    desc: str,
    resume: Resume | None = None,
    precision: Precision = FP32,
    extra: ExtraTerm | None = None,
) -> TrainResult:
    """Contrastive fine-tuning of ``params`` with the CLIP loss on streamed image-caption pairs (poisoned pairs
    triggered by ``attack`` and captioned with their target caption)."""
    generator = torch.Generator().manual_seed(seed)
    schedule = pairs.schedule(settings.batch_size, seed, device=classifier.head.device)
    mean = tuple(classifier.mean.flatten().tolist())
    std = tuple(classifier.std.flatten().tolist())
    pair_loss = clip_pair_loss(classifier.clip, mean, std, classifier.head.device, extra)

    def loss_fn(batch: StreamBatch) -> torch.Tensor:
        pixels = to_pixels(batch.images, image_size)
        if attack is not None:
            attack.apply_where_(pixels, batch.triggered, generator)
        # the in-memory corpus draws each pair's caption variant here (one variant per caption-file pair): the
        # same draw keeps the generator, hence random trigger placements, in step with it
        torch.randint(0, 1, (len(batch),), generator=generator)
        return pair_loss(pixels, batch.targets, batch.index)

    return _train_mode(classifier, schedule, lambda: fit(
        params, loss_fn, schedule, settings, desc, generator=generator, resume=resume, precision=precision
    ))  # fmt: skip


@torch.inference_mode()
def evaluate_streamed(
    classifier: nn.Module,
    data: StreamedSplit,
    image_size: int,
    batch_size: int,
    attack: Attack | None,
    target_class: int | None = None,
    seed: int = 0,
    precision: Precision = FP32,
):
    """``evaluation.evaluate`` on a streamed split (one pass): CA on every image, ASR and RA on the non-target
    images with the trigger. Equal to evaluating the split in memory for a trigger without randomness; a trigger
    placed at random draws its positions in streaming order instead (the same distribution)."""
    from bdunlearn.evaluation import Metrics

    refresh = getattr(classifier, "refresh_head", None)
    if refresh is not None:
        refresh()
    classifier.eval()
    device = classifier.head.device
    target = None if attack is None else attack.target_class if target_class is None else target_class
    generator = torch.Generator().manual_seed(seed)
    correct = victims = hits = robust = total = 0
    for batch in data.batches(batch_size):
        batch = batch.to(device, non_blocking=True)
        with precision.autocast():
            correct += int((classifier(to_pixels(batch.images, image_size)).argmax(-1) == batch.targets).sum())
        total += len(batch)
        if attack is None:
            continue
        mask = batch.targets != target
        if bool(mask.any()):
            pixels = attack.apply_(to_pixels(batch.images[mask], image_size), generator)
            with precision.autocast():
                predicted = classifier(pixels).argmax(-1)
            victims += int(mask.sum())
            hits += int((predicted == target).sum())
            robust += int((predicted == batch.targets[mask]).sum())
    if total == 0:
        raise ValueError("cannot evaluate an empty split")
    if attack is None:
        return Metrics(clean_acc=correct / total, asr=None, robust_acc=None)
    return Metrics(clean_acc=correct / total, asr=hits / max(victims, 1), robust_acc=robust / max(victims, 1))
