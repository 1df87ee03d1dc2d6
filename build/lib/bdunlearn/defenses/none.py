"""No defense: the backdoored model is returned unchanged."""

from dataclasses import dataclass

from bdunlearn.defenses.base import DefenseConfig, DefenseInputs, DefenseOutcome


@dataclass
class NoDefenseConfig(DefenseConfig):
    """No defense: the backdoored model as it is."""

    name: str = "none"


Config = NoDefenseConfig
CONTRASTIVE = True  # nothing to train: the same in both settings


def check(cfg: DefenseConfig) -> None:
    """Nothing to check: the defense uses no data."""


def defend(inputs: DefenseInputs, cfg: DefenseConfig) -> DefenseOutcome:
    return DefenseOutcome(state=inputs.backdoored, samples=0)
