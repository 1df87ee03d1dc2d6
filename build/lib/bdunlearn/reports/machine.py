"""One line describing the machine figures were measured on (CPU model and cores, GPU if any, torch)."""

from __future__ import annotations

import os
import platform


def describe() -> str:
    import torch

    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    parts = [f"{cpu}, {os.cpu_count()} cores", f"torch {torch.__version__}"]
    if torch.cuda.is_available():
        parts.insert(1, torch.cuda.get_device_name())
    else:
        parts.insert(1, "no GPU")
    return "; ".join(parts)

