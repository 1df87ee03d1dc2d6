"""FT-SAM (Zhu et al., ICCV 2023): clean fine-tuning with sharpness-aware minimisation.

Every step perturbs the weights to the worst point within radius ``rho`` and descends with the gradient
found there; FT-SAM argues that a radius larger than SAM's usual 0.05 shrinks the backdoor-related weights.
``adaptive`` uses ASAM's scale-invariant radius (relative to |w|).
"""

from __future__ import annotations

from dataclasses import dataclass

from bdunlearn.config import checks
from bdunlearn.data.poison import clean
from bdunlearn.defenses import finetuning
from bdunlearn.defenses.base import DefenseInputs, DefenseOutcome
from bdunlearn.objectives import classification_loss
from bdunlearn.training import Sam


@dataclass
class FtSamConfig(finetuning.FinetuneDefenseConfig):
    """FT-SAM: clean fine-tuning with sharpness-aware minimisation (two passes per step)."""

    name: str = "ft_sam"
    rho: float = 2.0  # SAM's radius: how far each step first moves the weights towards the worst point
    adaptive: bool = True  # ASAM's radius relative to |w| + 0.01 (false: plain SAM, use rho ~ 0.05)


Config = FtSamConfig


def check(cfg: FtSamConfig) -> None:
    finetuning.check(cfg)
    checks.require(cfg.rho > 0, f"defense.rho={cfg.rho}: the SAM radius must be positive")


def defend(inputs: DefenseInputs, cfg: FtSamConfig) -> DefenseOutcome:
    def make_loss(samples, generator):
        return classification_loss(inputs.classifier, clean(samples), None, inputs.image_size, generator)

    sam = Sam(rho=cfg.rho, adaptive=cfg.adaptive)
    return finetuning.finetune_from_backdoored(inputs, cfg, make_loss, "ft_sam: clean SAM fine-tune", sam=sam)
