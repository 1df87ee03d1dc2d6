"""BTI-DBF (Xu et al., ICLR 2024, "Towards Reliable and Efficient Backdoor Trigger Inversion via Decoupling
Benign Features"): trigger inversion by a generator, after separating benign from backdoor features.

The features are a feature map, as in the original (a ResNet's last convolutional stage): the tokens entering
residual block ``feature_block`` of the ViT image tower, [tokens, width] per image; the blocks after it, the
projection and the frozen zero-shot head play the original's "features to output".

1. **Decoupling benign features.** A soft mask m over the feature map (tanh-parametrised, in [0, 1]) is
   trained on the defender's *labelled* clean pool so that the masked features m ⊙ z still give the true
   class while the complement (1 − m) ⊙ z does not: min_m CE(f(m ⊙ z), y) − CE(f((1 − m) ⊙ z), y).
   m ⊙ z are the benign features; (1 − m) ⊙ z the rest, where a backdoor must live.
2. **Inverting the trigger.** A generator G (a convolutional U-Net of ``levels`` downsamplings whose output is
   added to its input) is trained so that G(x) stays close to x in pixels and in the benign features while
   its other features move as far as possible from those of x: while MSE(G(x), x) > the pixel budget or the
   benign-feature MSE > ``benign_bound``, minimise MSE(G(x), x) (back inside the budget, the original's rule);
   otherwise minimise − MSE((1 − m) ⊙ z', (1 − m) ⊙ z) + ``benign_weight`` · MSE(m ⊙ z', m ⊙ z). Feature MSEs
   are divided by the clean benign features' mean square, so ``benign_bound`` does not depend on the model's
   scale. The inverted trigger is x ↦ G(x).

**A ladder of pixel budgets** (``norm_bounds``, smallest first; the original has one, ``norm_bound``). Step 2 runs
once per budget, from the same initial G, and each generator is a *candidate*; the inversion stage judges them
in that order and keeps the first whose verdict is "backdoored" (the last one when none is), so the record
names the smallest budget at which a backdoor was found. Why: on the 16 px tiny CLIP no single budget suits
the three default triggers (their pixel MSEs: blended 0.009, BadNets 0.031, WaNet 0.056). Under a budget far
above a trigger's cost the generator finds textures and strokes that also fool theta_pre (so the reference check
cannot confirm them); under one below WaNet's cost it cannot express the warp (measured on the development
models: docs/unknown-attacks.md).

The target estimate is the majority class of theta_b on G(x) over the pool (as for every inversion); the
detection statistic is G's flip rate, the share of pool images whose label is not that class that theta_b
sends to it through G (``score >= detection_threshold`` → backdoored). BTI-DBF itself has no detection
statistic; this one is the project's: a universal trigger sends (nearly) every image to the target (the default
triggers' ASR on test is 0.94-1.00), so a generator that flips fewer than ``detection_threshold`` 0.9 of the pool
has not found one. The default verdict (``detection: both``) also asks the reference check of ``reference.py``:
on a clean model the generator finds natural edits (strokes that turn digits into 7s) that theta_pre follows too.

**G starts near, not at, the identity** (``init_scale``). The original pre-trains G to reconstruct its input; this
module starts G as the identity plus a seeded small random change (its last layer's weights ~ N(0, init_scale²),
biases 0). Starting *exactly* at the identity, as earlier versions did, puts G on a saddle: every feature MSE and
its gradient are exactly zero there, so the first step was decided by rounding differences between the model's
fused (no-grad) and unfused attention kernels, and the inverted trigger changed with the CPU, the thread count
and the library version (measured: docs/unknown-attacks.md).

Deviations from the official code, to fit a 16 px tiny CLIP on two CPU cores: no reconstruction pre-training of
G (above); G is narrower (``width`` 16, the original 32) and shallower (2 levels, the original 4); budgets are
steps (``mask_steps``, ``generator_steps``) rather than epochs; the generator kept is the last one (the budget
is enforced on training batches, as in the original, so the whole pool's MSE can end above the budget; the
record's ``inversion_details.pool_pixel_mse`` says by how much); the ladder of budgets (above). One addition
(``pool_colours``): G's change is projected onto the colour subspace the pool's pixels span. On colour data
that is all of RGB and changes nothing; on grayscale data stored as RGB (digits, MNIST, Fashion-MNIST) it keeps
G(x) gray. Without it, G wins by tinting the gray digits: colour is a feature no digit uses, so the decoupling
puts it among the "other" features, and a tint moves them further than any trigger (docs/unknown-attacks.md).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from bdunlearn.config import checks
from bdunlearn.data.images import BatchSchedule, index_batches
from bdunlearn.inversion.base import (
    InversionConfig,
    InversionContext,
    InversionResult,
    check_common,
    estimate_target,
    flip_rate,
    frozen,
)
from bdunlearn.inversion.bti_dbf_nets import (  # noqa: F401 (re-exported)
    Generator,
    GeneratorTrigger,
    TokenFeatures,
    colour_projection,
)

log = logging.getLogger(__name__)


@dataclass
class BtiDbfConfig(InversionConfig):
    """BTI-DBF (Xu et al. 2024): decouple benign features (a mask over the tokens entering a residual block of the
    image tower, trained on the labelled clean pool), then train a generator G so that G(x) stays close to x in
    pixels and in the benign features while the other features move away, once per pixel budget (norm_bounds,
    smallest first; the first candidate judged backdoored is kept). Statistic: G's flip rate on the pool towards
    the estimated target. Verdict (detection): by default both that and the reference check."""

    name: str = "bti_dbf"
    feature_block: int = -1  # the features are the tokens entering this residual block of the image tower
    mask_steps: int = 300  # step 1: benign-feature mask
    mask_lr: float = 0.01  # Adam's learning rate for the mask
    generator_steps: int = 400  # step 2: the generator
    generator_lr: float = 1e-3  # Adam's learning rate for the generator
    batch_size: int = 64  # pool images per step
    width: int = 16  # channels of the generator's first level (each level below has twice as many)
    levels: int = 2  # the generator's downsamplings (the U-Net's depth)
    init_scale: float = 1e-3  # std of G's last-layer weights at the start (G starts near the identity, not on it)
    pool_colours: bool = True  # G's change stays in the colour subspace of the pool's pixels (gray for gray data)
    # pixel budgets (largest MSE between G(x) and x), smallest first: one generator, one candidate trigger each
    norm_bounds: list[float] = field(default_factory=lambda: [0.01, 0.02, 0.04])
    benign_bound: float = 1.0  # largest benign-feature MSE, as a fraction of the benign features' mean square
    benign_weight: float = 0.01  # weight of the benign-feature MSE in the generator's loss
    detection_threshold: float = 0.9  # flip rate at or above this → backdoored (docs/unknown-attacks.md)
    detection: str = "both"  # flip rate >= detection_threshold and transfer < reference_threshold | statistic | reference


Config = BtiDbfConfig


def check(cfg: BtiDbfConfig) -> None:
    check_common(cfg)
    for key in ("mask_steps", "generator_steps", "batch_size", "width", "levels"):
        checks.require(getattr(cfg, key) >= 1, f"inversion.{key}={getattr(cfg, key)}: must be at least 1")
    checks.require(cfg.mask_lr > 0 and cfg.generator_lr > 0, "inversion.mask_lr and inversion.generator_lr must be positive")
    bounds = list(cfg.norm_bounds)
    checks.require(
        bool(bounds) and all(b > 0 for b in bounds) and all(a < b for a, b in zip(bounds, bounds[1:])),
        f"inversion.norm_bounds={bounds}: give one or more positive pixel budgets, smallest first (e.g. [0.01,0.02,0.04])",
    )
    checks.require(cfg.init_scale > 0, f"inversion.init_scale={cfg.init_scale}: must be positive (0 puts G on a saddle)")
    checks.require(cfg.benign_bound > 0, f"inversion.benign_bound={cfg.benign_bound}: must be positive")
    checks.require(cfg.benign_weight >= 0, f"inversion.benign_weight={cfg.benign_weight}: must be >= 0")
    checks.fraction(cfg.detection_threshold, "inversion.detection_threshold", allow_zero=False)


def check_model(cfg: BtiDbfConfig, model_name: str) -> None:
    """The feature map lives in a ViT image tower: ``feature_block`` must name one of its residual blocks."""
    from bdunlearn.models.architectures import architecture

    layers = architecture(model_name)["vision_cfg"].get("layers")
    checks.require(isinstance(layers, int), f"inversion=bti_dbf needs a ViT image tower; model {model_name} has a ResNet one")
    checks.require(
        -layers <= cfg.feature_block < layers,
        f"inversion.feature_block={cfg.feature_block}: model {model_name}'s image tower has {layers} residual blocks "
        f"(use {-layers}..{layers - 1}; -1 is the last)",
    )


def is_detected(score: float, cfg: BtiDbfConfig) -> bool:
    """A generator that sends most of the pool to one class within a small pixel budget: backdoored."""
    return score >= cfg.detection_threshold


def rebuild(tensors: dict[str, torch.Tensor], cfg: BtiDbfConfig) -> GeneratorTrigger:
    model = Generator(cfg.width, levels=cfg.levels)
    model.load_state_dict({k.removeprefix("generator."): v.cpu() for k, v in tensors.items()})
    return GeneratorTrigger(model)


def decouple(context: InversionContext, cfg: BtiDbfConfig, features: TokenFeatures, generator: torch.Generator) -> tuple[torch.Tensor, dict]:
    """Step 1: the benign-feature mask over the feature map (tokens x width), in [0, 1]."""
    device = context.pool.images.device
    with torch.no_grad():
        shape = features.of(context.pixels(torch.arange(1))).shape[1:]
    param = torch.randn(shape, generator=generator).to(device).requires_grad_(True)
    optimizer = torch.optim.Adam([param], lr=cfg.mask_lr)
    schedule = BatchSchedule(len(context.pool), cfg.batch_size, cfg.seed, device=device)
    benign_loss = other_loss = float("nan")
    for step in range(cfg.mask_steps):
        index = schedule(step)
        pixels = context.pixels(index)
        labels = context.pool.labels[index.to(context.pool.labels.device)]
        mask = torch.tanh(param) / 2 + 0.5
        with context.precision.autocast():
            benign = F.cross_entropy(features(pixels, mask).float(), labels)
            other = F.cross_entropy(features(pixels, 1 - mask).float(), labels)
        optimizer.zero_grad(set_to_none=True)
        (benign - other).backward()
        optimizer.step()
        benign_loss, other_loss = benign.item(), other.item()
    mask = (torch.tanh(param) / 2 + 0.5).detach()
    return mask, {"benign_ce": benign_loss, "other_ce": other_loss, "mask_mean": float(mask.mean())}


def train_generator(
    context: InversionContext, cfg: BtiDbfConfig, features: TokenFeatures, mask: torch.Tensor, norm_bound: float
) -> tuple[Generator, dict]:
    """Step 2: G(x) close to x in pixels (MSE <= ``norm_bound``) and in the benign features, far from x in the
    other features. Every budget starts from the same G (the seed's)."""
    device = context.pool.images.device
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = Generator(cfg.width, levels=cfg.levels, init_scale=cfg.init_scale).to(device)
    if cfg.pool_colours:
        model.colours.copy_(colour_projection(context))
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.generator_lr)
    schedule = BatchSchedule(len(context.pool), cfg.batch_size, cfg.seed + 1, device=device)
    with torch.no_grad(), context.precision.autocast():  # the scale the benign bound is relative to
        benign_scale = float((mask * features.of(context.pixels(schedule(0))).float()).pow(2).mean())
    model.train()
    last = {}
    for step in tqdm(range(cfg.generator_steps), desc=f"bti_dbf: generator (budget {norm_bound:g})", leave=False, disable=None):
        clean = context.pixels(schedule(step))
        poisoned = model(clean)
        with context.precision.autocast():
            with torch.no_grad():
                clean_z = features.of(clean).float()
            poisoned_z = features.of(poisoned).float()
        pixel = F.mse_loss(poisoned, clean)
        benign = F.mse_loss(mask * poisoned_z, mask * clean_z) / benign_scale
        other = F.mse_loss((1 - mask) * poisoned_z, (1 - mask) * clean_z) / benign_scale
        pixel_mse, benign_mse = pixel.item(), benign.item()
        if pixel_mse > norm_bound or benign_mse > cfg.benign_bound:
            loss = pixel  # back inside the budget first (the original's rule)
        else:
            loss = -other + cfg.benign_weight * benign
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        last = {"pixel_mse": pixel_mse, "benign_feature_mse": benign_mse, "other_feature_mse": other.item()}
    return model.eval(), last


@torch.no_grad()
def objective_terms(context: InversionContext, features: TokenFeatures, mask: torch.Tensor, apply) -> dict:
    """What step 2 weighs, for any pixel map ``apply`` (G, or a real attack's trigger) over the whole pool: pixel
    MSE, benign-feature MSE and other-feature MSE (both relative to the clean benign features' mean square, as in
    training). G maximises ``other_feature_mse`` within the pixel and benign budgets."""
    pixel = benign = other = scale = 0.0
    count = 0
    for index in index_batches(len(context.pool), context.batch_size):
        clean = context.pixels(index)
        moved = apply(clean)
        with context.precision.autocast():
            clean_z, moved_z = features.of(clean).float(), features.of(moved).float()
        change = moved_z - clean_z
        pixel += float(((moved - clean) ** 2).sum())
        benign += float(((mask * change) ** 2).sum())
        other += float((((1 - mask) * change) ** 2).sum())
        scale += float(((mask * clean_z) ** 2).sum())
        count += clean.numel()
    return {"pixel_mse": pixel / count, "benign_feature_mse": benign / scale, "other_feature_mse": other / scale}


@torch.no_grad()
def pool_pixel_mse(context: InversionContext, trigger: GeneratorTrigger) -> float:
    total, count = 0.0, 0
    for index in index_batches(len(context.pool), context.batch_size):
        clean = context.pixels(index)
        total += float(((trigger.apply(clean) - clean) ** 2).sum())
        count += clean.numel()
    return total / max(1, count)


def invert(context: InversionContext, cfg: BtiDbfConfig) -> list[InversionResult]:
    """One candidate trigger per pixel budget, smallest budget first (the decoupling mask is shared)."""
    started = time.perf_counter()
    generator = torch.Generator().manual_seed(cfg.seed)
    features = TokenFeatures(context.classifier, cfg.feature_block)
    num_classes = context.classifier.head.shape[0]
    with frozen(context.classifier.clip):
        mask, mask_meta = decouple(context, cfg, features, generator)
    mask_meta = {f"mask_{k}" if not k.startswith("mask") else k: v for k, v in mask_meta.items()}
    candidates = []
    for norm_bound in cfg.norm_bounds:
        with frozen(context.classifier.clip):
            model, generator_meta = train_generator(context, cfg, features, mask, norm_bound)
        trigger = GeneratorTrigger(model)
        target, share, _ = estimate_target(context, trigger, num_classes)
        trigger.target_class = target
        score = flip_rate(context, trigger, target)
        meta = {
            "norm_bound": norm_bound,
            **mask_meta,
            **generator_meta,
            "pool_pixel_mse": pool_pixel_mse(context, trigger),
            "flip_rate": score,
            "target_share": share,
            "seconds": time.perf_counter() - started,  # since the inversion started (the mask included)
        }
        log.info(
            "bti_dbf: budget %g: flip rate %.3f towards class %d, pixel MSE %.4f, benign-mask mean %.2f, %.1fs",
            norm_bound, score, target, meta["pool_pixel_mse"], mask_meta["mask_mean"], meta["seconds"],
        )  # fmt: skip
        candidates.append(InversionResult(trigger=trigger, score=score, detected=is_detected(score, cfg), meta=meta))
    return candidates
