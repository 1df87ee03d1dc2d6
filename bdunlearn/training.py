"""The one fine-tuning loop used by every stage (pretraining, the attack, TBAR's trigger fine-tune, defenses)."""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from bdunlearn import distributed
from bdunlearn.atomic import atomic_path
from bdunlearn.attacks.base import Attack
from bdunlearn.data.images import BatchSchedule, to_pixels
from bdunlearn.data.poison import TriggerableSet
from bdunlearn.errors import TrainingDiverged, UserError
from bdunlearn.runtime import Precision

log = logging.getLogger(__name__)
FP32 = Precision()


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
    seconds: float  # every sitting's, when the fine-tune was resumed (sittings saved before this was kept: not counted)
    losses: list[float] = field(default_factory=list)
    resumed_from: int = 0  # the step a resumed fine-tune continued from (0: it ran in one sitting)

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


@dataclass
class Sam:
    """Sharpness-aware minimisation: each step first moves the weights by ``rho`` along the loss gradient
    (scaled per weight by |w| + 0.01 when ``adaptive``, as ASAM), then takes the optimizer step with the gradient
    found there, from the original weights."""

    rho: float
    adaptive: bool = False


ASAM_ETA = 0.01  # keeps weights at zero perturbable (Kwon et al., 2021)


@torch.no_grad()
def sam_ascent(params: list[nn.Parameter], rho: float, adaptive: bool = False) -> list[torch.Tensor | None]:
    """Move ``params`` in place to the (approximate) worst point within radius ``rho``; returns each move.

    Plain SAM: e = rho * g / ||g|| (global L2 norm over all gradients). Adaptive (ASAM): with T = |w| + 0.01
    per weight, e = rho * T^2 g / ||T g||, so that ||e / T|| = rho.
    """
    scales = [p.abs() + ASAM_ETA if adaptive else None for p in params]
    scaled = [(g * t if t is not None else g) if (g := p.grad) is not None else None for p, t in zip(params, scales, strict=True)]
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in scaled if g is not None]))
    moves = []
    for p, g, t in zip(params, scaled, scales, strict=True):
        if g is None:
            moves.append(None)
            continue
        e = (g * t if t is not None else g) * (rho / (norm + 1e-12))
        p.add_(e)
        moves.append(e)
    return moves


@torch.no_grad()
def _undo(params: list[nn.Parameter], moves: list[torch.Tensor | None]) -> None:
    for p, e in zip(params, moves, strict=True):
        if e is not None:
            p.sub_(e)


@dataclass
class Resume:
    """Where a fine-tune keeps its resumable state, and how often (in steps) it is saved."""

    path: Path
    every: int


def _save_state(resume: Resume, step, params, optimizer, scheduler, generator, losses, fingerprint, seconds) -> None:
    state = {
        "fingerprint": fingerprint,
        "step": step,
        "seconds": seconds,
        "params": [p.detach().cpu() for p in params],
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "generator": generator.get_state() if generator is not None else None,
        "losses": losses,
    }
    tmp = atomic_path(resume.path)
    try:
        torch.save(state, tmp)
        os.replace(tmp, resume.path)
    finally:
        tmp.unlink(missing_ok=True)


def _load_state(resume: Resume, params, optimizer, scheduler, generator, fingerprint) -> tuple[int, list[float], float]:
    """Restore a saved state into the live objects; (step, losses, seconds spent so far), or (0, [], 0.0) if there is
    none or it belongs to other settings."""
    if not resume.path.is_file():
        return 0, [], 0.0
    try:
        state = torch.load(resume.path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a torn or foreign file: start over rather than fail
        log.warning("ignoring unreadable resume state %s (%s)", resume.path, exc)
        return 0, [], 0.0
    shapes_match = len(state["params"]) == len(params) and all(
        saved.shape == live.shape for saved, live in zip(state["params"], params, strict=True)
    )
    if state.get("fingerprint") != fingerprint or not shapes_match:
        log.warning("ignoring resume state %s: it was saved by different settings", resume.path)
        return 0, [], 0.0
    with torch.no_grad():
        for saved, live in zip(state["params"], params, strict=True):
            live.copy_(saved)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["torch_rng"])
    if state["cuda_rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    if generator is not None and state["generator"] is not None:
        generator.set_state(state["generator"])
    log.info("resuming from step %d (%s)", state["step"], resume.path)
    return state["step"], list(state["losses"]), float(state.get("seconds", 0.0))


def fit(
    params: list[nn.Parameter],
    loss_fn: Callable[[torch.Tensor], torch.Tensor],
    schedule: BatchSchedule | Callable[[int], object],
    settings: OptimSettings,
    desc: str,
    *,
    generator: torch.Generator | None = None,
    resume: Resume | None = None,
    precision: Precision = FP32,
    sam: Sam | None = None,
) -> TrainResult:
    """AdamW with linear warm-up and cosine decay for ``settings.steps`` steps of ``loss_fn(schedule(step))``.

    ``generator`` is the stage's own source of randomness (augmentation, random trigger placement); with
    ``resume``, parameters, optimizer, scheduler, RNG states and losses are saved every ``resume.every``
    steps, and a fine-tune started again continues from the last save to the same result as an
    uninterrupted one. The loss is computed under ``precision``'s autocast (bf16 on GPUs by default); the
    backward pass and the AdamW update run outside it, on fp32 weights. A NaN/inf loss raises TrainingDiverged
    naming the step. With ``sam``, every step takes two forward/backward passes on the same batch indices
    (sharpness-aware minimisation); the recorded loss is the one at the unperturbed weights.

    Under torch.distributed (``distributed.init_from_env``) every rank runs this loop on its share of the
    global batch: a ``BatchSchedule``'s index batches are cut to the rank's share here (a streamed schedule
    gives per-rank batches itself); the ranks start from rank 0's weights, gradients are averaged over the
    ranks before each step, the recorded losses are the ranks' mean, and only rank 0 saves the state.
    """
    if isinstance(schedule, BatchSchedule):
        schedule = distributed.rank_share(schedule)
    distributed.broadcast_parameters(params)
    optimizer = make_optimizer(params, settings.lr, settings.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(settings.warmup_steps, settings.steps))
    fingerprint = json.dumps({**asdict(settings), "sam": asdict(sam) if sam else None}, sort_keys=True)
    first, losses, earlier = _load_state(resume, params, optimizer, scheduler, generator, fingerprint) if resume else (0, [], 0.0)
    pending: list[torch.Tensor] = []  # losses not yet copied to the host (one sync per chunk, not per step)

    def flush(last_step: int) -> None:
        values = distributed.mean_over_ranks(torch.stack(pending)).tolist() if pending else []
        for offset, value in enumerate(values):
            if not math.isfinite(value):
                raise TrainingDiverged(desc, last_step - len(values) + 1 + offset)
        losses.extend(values)
        pending.clear()
        if values:
            progress.set_postfix(loss=f"{values[-1]:.3f}", refresh=False)

    start = time.perf_counter()
    quiet = None if distributed.is_main() else True  # one progress bar per run, not per rank
    progress = tqdm(range(first, settings.steps), desc=desc, leave=False, dynamic_ncols=True, mininterval=0.5, disable=quiet)
    for step in progress:
        batch = schedule(step)
        with precision.autocast():
            loss = loss_fn(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        distributed.average_gradients(params)
        if sam is not None:
            moves = sam_ascent(params, sam.rho, sam.adaptive)
            optimizer.zero_grad(set_to_none=True)
            with precision.autocast():
                loss_fn(batch).backward()
            distributed.average_gradients(params)
            _undo(params, moves)
        optimizer.step()
        scheduler.step()
        pending.append(loss.detach())
        done = step + 1
        if len(pending) == 10 or done == settings.steps:
            flush(step)
        if resume and resume.every and done % resume.every == 0 and done < settings.steps:
            flush(step)
            if distributed.is_main():
                _save_state(resume, done, params, optimizer, scheduler, generator, losses, fingerprint, earlier + time.perf_counter() - start)
    progress.close()
    if resume and distributed.is_main():
        resume.path.unlink(missing_ok=True)
    return TrainResult(steps=settings.steps, seconds=earlier + time.perf_counter() - start, losses=losses, resumed_from=first)


def classification_loss(
    classifier: nn.Module, data: TriggerableSet, attack: Attack | None, image_size: int, generator: torch.Generator
) -> Callable[[torch.Tensor], torch.Tensor]:
    """Cross-entropy of ``classifier`` on batches of ``data``; flagged samples get ``attack``'s trigger (and
    cross samples its cross transform)."""

    def loss_fn(index: torch.Tensor) -> torch.Tensor:
        cross = data.cross[index] if data.cross is not None else None
        return triggered_cross_entropy(
            classifier, data.images[index], data.labels[index], data.triggered[index], cross, attack, image_size, generator
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
) -> torch.Tensor:
    """Cross-entropy of ``classifier`` on one batch of uint8 ``images``: those flagged in ``triggered`` get
    ``attack``'s trigger, those flagged in ``cross`` its cross transform (in-memory and streamed batches alike)."""
    pixels = to_pixels(images, image_size)
    if attack is not None:
        attack.apply_where_(pixels, triggered, generator)
    if attack is not None and cross is not None and bool(cross.any()):
        pixels[cross] = attack.apply_cross(pixels[cross], generator)
    return F.cross_entropy(classifier(pixels), labels)


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
) -> TrainResult:
    """Supervised fine-tuning of ``params`` with the classifier's frozen head (optionally ``torch.compile``d)."""
    generator = torch.Generator().manual_seed(seed)
    model = torch.compile(classifier) if compile_model else classifier
    loss_fn = classification_loss(model, data, attack, image_size, generator)
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


def parameter_patterns(spec: str) -> list[str]:
    """The comma-separated patterns of a ``params`` setting ("" or only commas: every parameter)."""
    return [p.strip() for p in spec.split(",") if p.strip()] or [""]


def selects(name: str, patterns: list[str]) -> bool:
    """Whether a parameter name is chosen: a pattern with a wildcard (``*?[``) is an ``fnmatch`` glob over the
    whole name, any other pattern a name prefix ("visual" is the image tower)."""
    return any(fnmatchcase(name, p) if any(c in p for c in "*?[") else name.startswith(p) for p in patterns)


def selected_names(model: nn.Module, spec: str, key: str = "params") -> list[str]:
    """Names of the parameters ``spec`` selects (comma-separated prefixes or globs, see ``selects``); a spec that
    selects nothing is a UserError naming ``key``."""
    patterns = parameter_patterns(spec)
    names = [name for name, _ in model.named_parameters() if selects(name, patterns)]
    if not names:
        raise UserError(
            f"{key}={spec!r} selects no parameter; use a name prefix such as 'visual' (image tower) or '' (all), "
            "or globs such as 'visual.transformer.resblocks.*.attn.*'"
        )
    return names


def trainable_parameters(model: nn.Module, spec: str) -> dict[str, nn.Parameter]:
    """Unfreeze the parameters ``spec`` selects (see ``selected_names``), freeze the rest."""
    names = set(selected_names(model, spec))
    chosen = {}
    for name, param in model.named_parameters():
        param.requires_grad_(name in names)
        if param.requires_grad:
            chosen[name] = param
    return chosen
