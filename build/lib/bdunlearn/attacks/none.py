"""No attack: the attacker's fine-tune on clean data. Gives the clean reference model and the CA upper bound."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bdunlearn.attacks.base import Attack, AttackConfig
from bdunlearn.config import checks


@dataclass
class NoAttackConfig(AttackConfig):
    """No attack: the attacker's fine-tune on clean data (the clean reference model, CA upper bound). No trigger,
    so ASR and RA are null in the run record; defenses that need a trigger (tbar) are refused."""

    name: str = "none"
    poison_rate: float = 0.0  # nothing is poisoned


class NoAttack(Attack):
    Config = NoAttackConfig
    has_trigger = False

    @classmethod
    def check(cls, cfg: NoAttackConfig, num_classes: int, image_size: int | None) -> None:
        checks.require(cfg.poison_rate == 0, f"attack.poison_rate={cfg.poison_rate}: attack=none poisons nothing; leave it at 0")

    def apply(self, pixels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return pixels.clone()

    def apply_(self, pixels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return pixels

    def poison_indices(self, labels: torch.Tensor, seed: int) -> torch.Tensor:
        return torch.empty(0, dtype=torch.long)
