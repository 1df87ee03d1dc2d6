"""The losses the one fit loop minimises and the fine-tunes built on them: cross-entropy through the frozen
zero-shot head on (triggered) labelled images, and the CLIP loss on (triggered) image-caption pairs."""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from bdunlearn import distributed
from bdunlearn.attacks.base import Attack
from bdunlearn.data.images import BatchSchedule, to_pixels
from bdunlearn.data.poison import TriggerableSet
from bdunlearn.runtime import Precision
from bdunlearn.training import FP32, OptimSettings, Resume, Sam, TrainResult, fit

log = logging.getLogger(__name__)


def margin_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The best other class's logit minus the label's: unlike cross-entropy it does not flatten out once the label
    wins, so a model that already predicts the label still gets a gradient towards a larger margin."""
    label_logits = logits.gather(1, labels[:, None]).squeeze(1)
    others = logits.masked_fill(F.one_hot(labels, logits.shape[1]).bool(), float("-inf")).amax(dim=1)
    return (others - label_logits).mean()


CRITERIA = {"ce": F.cross_entropy, "margin": margin_loss}


def classification_loss(
    classifier: nn.Module, data: TriggerableSet, attack: Attack | None, image_size: int, generator: torch.Generator, criterion: str = "ce"
) -> Callable[[torch.Tensor], torch.Tensor]:
    """Cross-entropy of ``classifier`` on batches of ``data``; flagged samples get ``attack``'s trigger (and
    cross samples its cross transform)."""

    def loss_fn(index: torch.Tensor) -> torch.Tensor:
        cross = data.cross[index] if data.cross is not None else None
        return triggered_cross_entropy(
            classifier, data.images[index], data.labels[index], data.triggered[index], cross, attack, image_size, generator, criterion
        )

    return loss_fn


def triggered_cross_entropy(
    classifier: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    triggered: torch.Tensor,
    cross: torch.Tensor | None,
    attack: Attack | None,
    image_size: int,
    generator: torch.Generator,
    criterion: str = "ce",
) -> torch.Tensor:
    """Cross-entropy (or another ``CRITERIA`` loss) of ``classifier`` on one batch of uint8 ``images``: those flagged in ``triggered`` get
    ``attack``'s trigger, those flagged in ``cross`` its cross transform (in-memory and streamed batches alike)."""
    pixels = to_pixels(images, image_size)
    if attack is not None:
        attack.apply_where_(pixels, triggered, generator)
    if attack is not None and cross is not None and bool(cross.any()):
        pixels[cross] = attack.apply_cross(pixels[cross], generator)
    return CRITERIA[criterion](classifier(pixels), labels)


def finetune_classifier(
    classifier: nn.Module,
    params: list[nn.Parameter],
    data: TriggerableSet,
    attack: Attack | None,
    image_size: int,
    settings: OptimSettings,
    seed: int,
    desc: str,
    resume: Resume | None = None,
    precision: Precision = FP32,
    compile_model: bool = False,
    sam: Sam | None = None,
    criterion: str = "ce",
) -> TrainResult:
    """Supervised fine-tuning of ``params`` with the classifier's frozen head (optionally ``torch.compile``d)."""
    generator = torch.Generator().manual_seed(seed)
    model = torch.compile(classifier) if compile_model else classifier
    loss_fn = classification_loss(model, data, attack, image_size, generator, criterion)
    return fit_classifier(classifier, params, loss_fn, len(data), settings, seed, desc, generator, resume, precision, sam)


def fit_classifier(
    classifier: nn.Module,
    params: list[nn.Parameter],
    loss_fn: Callable[[torch.Tensor], torch.Tensor],
    num_samples: int,
    settings: OptimSettings,
    seed: int,
    desc: str,
    generator: torch.Generator,
    resume: Resume | None = None,
    precision: Precision = FP32,
    sam: Sam | None = None,
) -> TrainResult:
    """``fit`` over ``num_samples`` indexed samples with the classifier in training mode, back in eval mode after."""
    schedule = BatchSchedule(num_samples, settings.batch_size, seed, device=classifier.head.device)
    classifier.train()
    try:
        return fit(params, loss_fn, schedule, settings, desc, generator=generator, resume=resume, precision=precision, sam=sam)
    finally:
        classifier.eval()


ExtraTerm = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def contrastive_loss(
    clip: nn.Module,
    images: torch.Tensor,
    captions: Callable[[torch.Tensor], torch.Tensor],
    image_size: int,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    *,
    attack: Attack | None = None,
    triggered: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    extra: ExtraTerm | None = None,
) -> Callable[[torch.Tensor], torch.Tensor]:
    """open_clip's symmetric CLIP loss on batches of uint8 ``images`` and the caption tokens ``captions(index)``.

    Images flagged in ``triggered`` [N] get ``attack``'s trigger in place (pixel space, before normalisation);
    ``extra(pixels, index, image_features, text_features)`` adds a defense's own term (CleanCLIP's in-modal loss).
    """
    pair_loss = clip_pair_loss(clip, mean, std, images.device, extra)

    def loss_fn(index: torch.Tensor) -> torch.Tensor:
        pixels = to_pixels(images[index], image_size)
        if attack is not None and triggered is not None:
            attack.apply_where_(pixels, triggered[index], generator)
        return pair_loss(pixels, captions(index), index)

    return loss_fn


def clip_pair_loss(
    clip: nn.Module, mean: tuple[float, ...], std: tuple[float, ...], device, extra: ExtraTerm | None = None
) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
    """``f(pixels, tokens, index)``: open_clip's CLIP loss of pixel-space images in [0, 1] (triggered already) and
    their caption tokens, plus ``extra``; under torch.distributed the loss of the whole global batch."""
    from open_clip.loss import ClipLoss

    loss = ClipLoss(**distributed.clip_loss_options())
    mean_t = torch.tensor(mean, device=device).view(1, -1, 1, 1)
    std_t = torch.tensor(std, device=device).view(1, -1, 1, 1)

    def pair_loss(pixels: torch.Tensor, tokens: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        image_features = clip.encode_image((pixels - mean_t) / std_t, normalize=True)
        text_features = clip.encode_text(tokens, normalize=True)
        value = loss(image_features, text_features, clip.logit_scale.exp())
        return value + extra(pixels, index, image_features, text_features) if extra is not None else value

    return pair_loss


def pairs_loss(classifier: nn.Module, pairs, attack: Attack | None, image_size: int, generator: torch.Generator, extra: ExtraTerm | None = None):
    """``contrastive_loss`` of ``classifier.clip`` on a ``CaptionCorpus`` (its flagged pairs triggered by ``attack``)."""
    mean = tuple(classifier.mean.flatten().tolist())
    std = tuple(classifier.std.flatten().tolist())
    return contrastive_loss(
        classifier.clip, pairs.images, pairs.sampler(generator), image_size, mean, std,
        attack=attack, triggered=pairs.triggered, generator=generator, extra=extra,
    )  # fmt: skip


def finetune_pairs(
    classifier: nn.Module,
    params: list[nn.Parameter],
    pairs,
    attack: Attack | None,
    image_size: int,
    settings: OptimSettings,
    seed: int,
    desc: str,
    resume: Resume | None = None,
    precision: Precision = FP32,
) -> TrainResult:
    """Contrastive fine-tuning of ``params`` on image–caption ``pairs`` (the contrastive setting's
    ``finetune_classifier``): the same loop, the CLIP loss instead of cross-entropy through the head."""
    generator = torch.Generator().manual_seed(seed)
    loss_fn = pairs_loss(classifier, pairs, attack, image_size, generator)
    return fit_classifier(classifier, params, loss_fn, len(pairs), settings, seed, desc, generator, resume, precision)
