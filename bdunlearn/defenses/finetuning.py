"""What the fine-tuning defenses share: their config, the draw of their clean samples (images, or image-caption
pairs in the contrastive setting), and the run of the one training loop (``training.fit``) from theta_b with a
defense-specific loss."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from bdunlearn import task_vectors
from bdunlearn.config import checks
from bdunlearn.data.captions import CaptionCorpus
from bdunlearn.data.images import ImageSet
from bdunlearn.defenses.base import DefenseConfig, DefenseInputs, DefenseOutcome
from bdunlearn.objectives import fit_classifier
from bdunlearn.params import trainable_parameters
from bdunlearn.training import OptimSettings, Sam

LossFactory = Callable[[ImageSet, torch.Generator], Callable[[torch.Tensor], torch.Tensor]]


@dataclass
class FinetuneDefenseConfig(DefenseConfig):
    num_samples: int = 250  # clean samples drawn from the defender's pool (the data budget)
    params: str = "visual"  # parameter-name prefix that is fine-tuned
    steps: int = 300  # optimizer steps of the defense's fine-tune
    batch_size: int = 64  # samples per step
    lr: float = 1e-3  # AdamW's peak learning rate (linear warm-up, then cosine decay)
    weight_decay: float = 0.1  # AdamW's decoupled weight decay
    warmup_steps: int = 20  # steps of linear warm-up


def check(cfg: FinetuneDefenseConfig) -> None:
    checks.require(cfg.num_samples >= 1, f"defense.num_samples={cfg.num_samples}: must be at least 1")
    checks.optim(cfg, "defense")


def draw_samples(pool: ImageSet | CaptionCorpus, count: int, seed: int) -> ImageSet | CaptionCorpus:
    """``count`` samples of the pool (images, or image-caption pairs), the same ones for every defense run with this seed."""
    chosen = torch.randperm(len(pool), generator=torch.Generator().manual_seed(seed))[:count]
    return pool.subset(chosen)


def finetune_from_backdoored(
    inputs: DefenseInputs, cfg: FinetuneDefenseConfig, make_loss: LossFactory, desc: str, sam: Sam | None = None
) -> DefenseOutcome:
    """Fine-tune theta_b's ``cfg.params`` on ``cfg.num_samples`` clean pool samples with ``make_loss`` (in the
    contrastive setting: clean pairs of ``inputs.pairs``)."""
    samples = draw_samples(inputs.pairs if inputs.contrastive else inputs.pool, cfg.num_samples, inputs.seed)
    clip = inputs.classifier.clip
    clip.load_state_dict(inputs.backdoored)
    params = trainable_parameters(clip, cfg.params)
    torch.manual_seed(inputs.seed)  # augmentations that draw from the global RNG
    generator = torch.Generator().manual_seed(inputs.seed)
    settings = OptimSettings(cfg.steps, cfg.batch_size, cfg.lr, cfg.weight_decay, cfg.warmup_steps)
    result = fit_classifier(
        inputs.classifier, list(params.values()), make_loss(samples, generator), len(samples), settings,
        seed=inputs.seed, desc=desc, generator=generator, precision=inputs.precision, sam=sam,
    )  # fmt: skip
    return DefenseOutcome(
        state=task_vectors.clone(clip.state_dict()),
        samples=len(samples),
        extras={"finetune_seconds": result.seconds, "finetune_loss": result.final_loss},
    )
