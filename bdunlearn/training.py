"""The one fine-tuning loop used by every stage (pretraining, the attack, TBAR's trigger fine-tune, defenses)."""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from bdunlearn import distributed
from bdunlearn.atomic import atomic_path
from bdunlearn.data.images import BatchSchedule
from bdunlearn.errors import TrainingDiverged
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
    optimizer: str = "adamw"  # adamw | sgd (plain gradient steps: no momentum, no normalisation of small gradients)


@dataclass
class TrainResult:
    steps: int
    seconds: float  # every sitting's, when the fine-tune was resumed (sittings saved before this was kept: not counted)
    losses: list[float] = field(default_factory=list)
    resumed_from: int = 0  # the step a resumed fine-tune continued from (0: it ran in one sitting)
    start_grad_norm: float | None = None  # L2 norm of the first step's gradient (None: resumed past it)

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


OPTIMIZERS = ("adamw", "sgd")


def make_optimizer(params: Iterable[nn.Parameter], lr: float, weight_decay: float, kind: str = "adamw") -> torch.optim.Optimizer:
    params = [p for p in params if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]  # gains, biases, logit scale: no weight decay (as open_clip)
    fused = bool(params) and params[0].is_cuda
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if kind == "sgd":
        return torch.optim.SGD(groups, lr=lr)
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
    optimizer = make_optimizer(params, settings.lr, settings.weight_decay, settings.optimizer)
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

    start, start_grad_norm = time.perf_counter(), None
    quiet = None if distributed.is_main() else True  # one progress bar per run, not per rank
    progress = tqdm(range(first, settings.steps), desc=desc, leave=False, dynamic_ncols=True, mininterval=0.5, disable=quiet)
    for step in progress:
        batch = schedule(step)
        with precision.autocast():
            loss = loss_fn(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        distributed.average_gradients(params)
        if step == 0:  # how steep the loss is where the fine-tune starts (a diagnostic; one sync, once)
            start_grad_norm = float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params if p.grad is not None])))
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
    seconds = earlier + time.perf_counter() - start
    return TrainResult(steps=settings.steps, seconds=seconds, losses=losses, resumed_from=first, start_grad_norm=start_grad_norm)
