"""Small range checks shared by every config section; each failure is a one-line UserError."""

from __future__ import annotations

from typing import Any

from bdunlearn.errors import UserError


def require(condition: bool, message: str) -> None:
    if not condition:
        raise UserError(message)


def fraction(value: float, key: str, *, allow_zero: bool = True, allow_one: bool = True) -> None:
    low_ok = value >= 0 if allow_zero else value > 0
    high_ok = value <= 1 if allow_one else value < 1
    low, high = "[" if allow_zero else "(", "]" if allow_one else ")"
    require(low_ok and high_ok, f"{key}={value} is out of range; it must lie in {low}0, 1{high}")


def choice(value: Any, options: tuple, key: str) -> None:
    require(value in options, f"{key}={value!r}; choose one of {', '.join(map(str, options))}")


def optim(cfg: Any, where: str) -> None:
    """steps, batch_size, lr, weight_decay, warmup_steps of a fine-tuning section."""
    require(cfg.steps >= 1, f"{where}.steps={cfg.steps}: must be at least 1")
    require(cfg.batch_size >= 1, f"{where}.batch_size={cfg.batch_size}: must be at least 1")
    require(cfg.lr > 0, f"{where}.lr={cfg.lr}: must be positive")
    require(cfg.weight_decay >= 0, f"{where}.weight_decay={cfg.weight_decay}: must be non-negative")
    require(cfg.warmup_steps >= 0, f"{where}.warmup_steps={cfg.warmup_steps}: must be non-negative")
