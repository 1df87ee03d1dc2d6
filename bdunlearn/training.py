"""The one fine-tuning loop used by every stage (pretraining, the attack, TBAR's trigger fine-tune, defenses)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from bdunlearn.attacks.base import Attack
from bdunlearn.data.images import endless_batches, to_pixels
from bdunlearn.data.poison import TriggerableSet
from bdunlearn.errors import TrainingDiverged, UserError


@dataclass
class OptimSettings:
    steps: int
    batch_size: int
    lr: float
    weight_decay: float = 0.1
    warmup_steps: int = 0


@dataclass
class TrainResult:
    steps: int
    seconds: float
    losses: list[float] = field(default_factory=list)

    @property
    def final_loss(self) -> float:
        tail = self.losses[-10:]
        return sum(tail) / len(tail) if tail else float("nan")


def warmup_cosine(warmup_steps: int, total_steps: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    return factor


def make_optimizer(params: Iterable[nn.Parameter], lr: float, weight_decay: float) -> torch.optim.Optimizer:
    params = [p for p in params if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]  # gains, biases, logit scale: no weight decay (as open_clip)
    fused = bool(params) and params[0].is_cuda
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, fused=fused)


def fit(
    params: list[nn.Parameter],
    loss_fn: Callable[[torch.Tensor], torch.Tensor],
    batches: Iterator[torch.Tensor],
    settings: OptimSettings,
    desc: str,
) -> TrainResult:
    """AdamW with linear warm-up and cosine decay for ``settings.steps`` steps over ``batches``.

    ``loss_fn`` maps one batch (of sample indices) to a scalar loss. A NaN/inf loss raises TrainingDiverged.
    """
    optimizer = make_optimizer(params, settings.lr, settings.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(settings.warmup_steps, settings.steps))
    losses: list[float] = []
    start = time.perf_counter()
    progress = tqdm(range(settings.steps), desc=desc, leave=False, dynamic_ncols=True, mininterval=0.5, disable=None)
    for step in progress:
        loss = loss_fn(next(batches))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        value = loss.item() if step % 10 == 0 or step == settings.steps - 1 else None
        if value is not None:
            if not math.isfinite(value):
                raise TrainingDiverged(desc, step)
            losses.append(value)
            progress.set_postfix(loss=f"{value:.3f}", refresh=False)
    progress.close()
    return TrainResult(steps=settings.steps, seconds=time.perf_counter() - start, losses=losses)


def classification_loss(
    classifier: nn.Module, data: TriggerableSet, attack: Attack | None, image_size: int, generator: torch.Generator
) -> Callable[[torch.Tensor], torch.Tensor]:
    """Cross-entropy of ``classifier`` on batches of ``data``; flagged samples get ``attack``'s trigger (and
    cross samples its cross transform)."""

    def loss_fn(index: torch.Tensor) -> torch.Tensor:
        pixels = to_pixels(data.images[index], image_size)
        flagged = data.triggered[index]
        if attack is not None and bool(flagged.any()):
            pixels[flagged] = attack.apply(pixels[flagged], generator)
        if attack is not None and data.cross is not None:
            crossed = data.cross[index]
            if bool(crossed.any()):
                pixels[crossed] = attack.apply_cross(pixels[crossed], generator)
        return F.cross_entropy(classifier(pixels), data.labels[index])

    return loss_fn


def finetune_classifier(
    classifier: nn.Module,
    params: list[nn.Parameter],
    data: TriggerableSet,
    attack: Attack | None,
    image_size: int,
    settings: OptimSettings,
    seed: int,
    desc: str,
) -> TrainResult:
    """Supervised fine-tuning of ``params`` with the classifier's frozen head."""
    generator = torch.Generator().manual_seed(seed)
    device = data.labels.device
    batches = endless_batches(len(data), settings.batch_size, generator, device=device)
    classifier.train()
    result = fit(params, classification_loss(classifier, data, attack, image_size, generator), batches, settings, desc)
    classifier.eval()
    return result


def contrastive_loss(
    clip: nn.Module,
    images: torch.Tensor,
    captions: Callable[[torch.Tensor], torch.Tensor],
    image_size: int,
    mean: tuple[float, ...],
    std: tuple[float, ...],
) -> Callable[[torch.Tensor], torch.Tensor]:
    """open_clip's symmetric CLIP loss on batches of uint8 ``images`` and the caption tokens ``captions(index)``."""
    from open_clip.loss import ClipLoss

    loss = ClipLoss()
    mean_t = torch.tensor(mean, device=images.device).view(1, -1, 1, 1)
    std_t = torch.tensor(std, device=images.device).view(1, -1, 1, 1)

    def loss_fn(index: torch.Tensor) -> torch.Tensor:
        pixels = (to_pixels(images[index], image_size) - mean_t) / std_t
        image_features = clip.encode_image(pixels, normalize=True)
        text_features = clip.encode_text(captions(index), normalize=True)
        return loss(image_features, text_features, clip.logit_scale.exp())

    return loss_fn


def trainable_parameters(model: nn.Module, prefix: str) -> dict[str, nn.Parameter]:
    """Unfreeze the parameters whose names start with ``prefix`` (e.g. "visual"), freeze the rest."""
    chosen = {}
    for name, param in model.named_parameters():
        param.requires_grad_(name.startswith(prefix))
        if param.requires_grad:
            chosen[name] = param
    if not chosen:
        raise UserError(f"no parameter name starts with {prefix!r}; use e.g. 'visual' (image tower) or '' (all)")
    return chosen
