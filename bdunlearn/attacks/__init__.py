"""Backdoor attacks: one module per attack, all sharing the interface in ``base``."""

from bdunlearn.attacks.badnets import BadNets
from bdunlearn.attacks.base import Attack

REGISTRY: dict[str, type[Attack]] = {"badnets": BadNets}


def build(cfg) -> Attack:
    """The attack named by ``cfg.name``, built from the remaining keys of its config."""
    params = {k: v for k, v in vars(cfg).items() if k != "name"}
    return REGISTRY[cfg.name](**params)
