"""The two settings a run can be in (``setting=``), each owning its theta_b stage and its own checks."""

from __future__ import annotations

from types import ModuleType
from typing import Any, Protocol

from bdunlearn.settings import classification, contrastive


class Setting(Protocol):
    REBUILDS_HEAD: bool  # whether the zero-shot head is rebuilt from the text tower at every evaluation

    def check(self, cfg: Any, plugins: Any) -> None: ...

    def training_items(self, cfg: Any) -> int: ...

    def prepare_data(self, ctx: Any) -> Any: ...

    def obtain_backdoored(self, ctx: Any, resume: Any) -> tuple[dict, bool, dict]: ...


REGISTRY: dict[str, ModuleType] = {"classification": classification, "contrastive": contrastive}
