"""Where and how tensors run: the device, mixed precision, and the matmul backends."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@dataclass(frozen=True)
class Precision:
    """Autocast settings for forward passes; ``dtype=None`` means plain fp32."""

    device_type: str = "cpu"
    dtype: torch.dtype | None = None

    def autocast(self):
        return torch.autocast(self.device_type, dtype=self.dtype) if self.dtype is not None else nullcontext()

    @property
    def name(self) -> str:
        return "fp32" if self.dtype is None else str(self.dtype).removeprefix("torch.")


def resolve_precision(name: str, device: torch.device) -> Precision:
    """``auto``: bf16 autocast on CUDA (weights and optimizer stay fp32), fp32 elsewhere."""
    if name == "fp32" or (name == "auto" and device.type != "cuda"):
        return Precision(device.type, None)
    return Precision(device.type, torch.bfloat16)


def configure_backends(device: torch.device) -> None:
    """TF32 tensor-core matmuls for the fp32 parts on Ampere and newer GPUs."""
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
