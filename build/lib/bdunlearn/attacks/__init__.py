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


# Config keys that say how much data is poisoned rather than what the trigger is: not the attack object's.
DATA_KEYS = ("num_poisoned",)


def build(cfg) -> Attack:
    """The attack named by ``cfg.name``, built from the remaining keys of its config (less ``DATA_KEYS``)."""
    params = {k: v for k, v in vars(cfg).items() if k != "name" and k not in DATA_KEYS}
    return REGISTRY[cfg.name](**params)

