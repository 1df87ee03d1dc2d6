"""No defense: the backdoored model is returned unchanged."""

from bdunlearn.defenses.base import DefenseInputs, DefenseOutcome


def defend(inputs: DefenseInputs, cfg) -> DefenseOutcome:
    return DefenseOutcome(state=inputs.backdoored, samples=0)
