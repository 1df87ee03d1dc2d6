"""Backdoor attacks: one module per attack (conf/attack/<name>.yaml), all sharing the interface in ``base``."""

from bdunlearn.attacks.badclip import BadClip
from bdunlearn.attacks.badnets import BadNets
from bdunlearn.attacks.base import Attack, PrepareContext
from bdunlearn.attacks.blended import Blended
from bdunlearn.attacks.none import NoAttack
from bdunlearn.attacks.sig import Sig
from bdunlearn.attacks.wanet import WaNet

REGISTRY: dict[str, type[Attack]] = {
    "badnets": BadNets,
    "blended": Blended,
    "wanet": WaNet,
    "sig": Sig,
    "badclip": BadClip,
    "none": NoAttack,
}

__all__ = ["REGISTRY", "Attack", "BadClip", "BadNets", "Blended", "NoAttack", "PrepareContext", "Sig", "WaNet", "build"]


def build(cfg) -> Attack:
    """The attack named by ``cfg.name``, built from the remaining keys of its config."""
    params = {k: v for k, v in vars(cfg).items() if k != "name"}
    return REGISTRY[cfg.name](**params)
