"""The plug-in kinds (attack, defense, inversion): one Protocol each, one registration style.

Each kind is a ``REGISTRY`` dict in its package's ``__init__`` mapping the config group option (``attack=badnets``)
to the plug-in; the plug-in's ``Config`` dataclass is that option's schema and holds its defaults, registered
in Hydra's ConfigStore under the group by :func:`register_configs`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from hydra.core.config_store import ConfigStore


@runtime_checkable
class AttackPlugin(Protocol):
    """An ``Attack`` subclass (bdunlearn/attacks/base.py): built from its Config's keys."""

    Config: type
    has_trigger: bool
    clean_label: bool

    def check(self, cfg: Any, num_classes: int, image_size: int | None) -> None: ...


@runtime_checkable
class DefensePlugin(Protocol):
    """A defense module: ``defend(DefenseInputs, cfg) -> DefenseOutcome``."""

    Config: type

    def check(self, cfg: Any) -> None: ...

    def defend(self, inputs: Any, cfg: Any) -> Any: ...


@runtime_checkable
class InversionPlugin(Protocol):
    """A trigger-inversion module (bdunlearn/inversion/__init__.py says what each function returns)."""

    Config: type

    def check(self, cfg: Any) -> None: ...

    def invert(self, context: Any, cfg: Any) -> list: ...

    def rebuild(self, tensors: dict, cfg: Any) -> Any: ...

    def is_detected(self, score: float, cfg: Any) -> bool: ...


@dataclass(frozen=True)
class Plugins:
    attacks: dict[str, AttackPlugin]
    defenses: dict[str, DefensePlugin]
    inversions: dict[str, InversionPlugin]

    def groups(self) -> dict[str, dict[str, Any]]:
        return {"attack": self.attacks, "defense": self.defenses, "inversion": self.inversions}


@functools.cache
def registry() -> Plugins:
    from bdunlearn import attacks, defenses, inversion

    return Plugins(attacks.REGISTRY, defenses.REGISTRY, inversion.REGISTRY)


@functools.cache
def register_configs() -> None:
    """Every config schema in Hydra's ConfigStore: the run's and each plug-in's, as its group's options."""
    from bdunlearn.config.store import register_run_schema

    register_run_schema()
    store = ConfigStore.instance()
    for group, plugins in registry().groups().items():
        for name, plugin in plugins.items():
            store.store(group=group, name=name, node=plugin.Config)
