"""State-dict arithmetic: the only place weights are added, subtracted or scaled.

A task vector ``tau = theta_finetuned - theta_base`` covers floating-point tensors only; integer buffers
(e.g. position ids, attention masks) are never part of a vector and are always taken from the base.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

StateDict = dict[str, torch.Tensor]


def floating_keys(state: StateDict) -> list[str]:
    return [k for k, v in state.items() if v.is_floating_point()]


def subtract(finetuned: StateDict, base: StateDict, keys: Iterable[str] | None = None) -> StateDict:
    """``finetuned - base`` over ``keys`` (default: every floating-point tensor of ``finetuned``)."""
    keys = floating_keys(finetuned) if keys is None else list(keys)
    missing = [k for k in keys if k not in base]
    if missing:
        raise KeyError(f"{len(missing)} tensors missing from the base state dict, e.g. {missing[0]!r}")
    vector = {}
    for k in keys:
        if not finetuned[k].is_floating_point():
            raise TypeError(f"{k!r} is not floating point and cannot be part of a task vector")
        if finetuned[k].shape != base[k].shape:
            raise ValueError(f"shape mismatch for {k!r}: {tuple(finetuned[k].shape)} vs {tuple(base[k].shape)}")
        vector[k] = finetuned[k].detach() - base[k].detach().to(finetuned[k].device)
    return vector


def add(base: StateDict, vector: StateDict, alpha: float = 1.0) -> StateDict:
    """``base + alpha * vector`` as a new state dict; tensors outside the vector are shared with ``base``."""
    unknown = [k for k in vector if k not in base]
    if unknown:
        raise KeyError(f"task vector has {len(unknown)} tensors the model lacks, e.g. {unknown[0]!r}")
    out = dict(base)
    for k, v in vector.items():
        out[k] = base[k] + alpha * v.to(device=base[k].device, dtype=base[k].dtype)
    return out


def scale(vector: StateDict, alpha: float) -> StateDict:
    return {k: alpha * v for k, v in vector.items()}


def dot(a: StateDict, b: StateDict) -> float:
    common = [k for k in a if k in b]
    return float(sum((a[k].double() * b[k].double().to(a[k].device)).sum() for k in common))


def norm(vector: StateDict) -> float:
    return dot(vector, vector) ** 0.5


def cosine(a: StateDict, b: StateDict) -> float:
    """Cosine similarity of two task vectors over the tensors they share (0 if either is zero)."""
    denominator = norm(a) * norm(b)
    return dot(a, b) / denominator if denominator > 0 else 0.0


def project_out(vector: StateDict, direction: StateDict) -> StateDict:
    """``vector`` minus its component along ``direction`` (over the tensors they share; unchanged if
    ``direction`` is zero)."""
    squared = dot(direction, direction)
    return add(vector, {k: v for k, v in direction.items() if k in vector}, -dot(vector, direction) / squared) if squared > 0 else dict(vector)


def clone(state: StateDict) -> StateDict:
    return {k: v.detach().clone() for k, v in state.items()}
