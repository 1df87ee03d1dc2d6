"""Whether a dataset is decoded once and held in memory or streamed from disk (``dataset.storage``).

The rule for ``auto``: hold it in memory when its decoded pixels (uint8, N x 3 x S x S, the size the in-memory
path keeps, on the host and again on the GPU) fit in a quarter of the memory available, on the host and, when
training on a GPU, on the GPU; stream it otherwise. A quarter leaves room for the model, its optimizer state,
activations, the evaluation sets and the page cache. ``memory`` and ``stream`` force the choice.
"""

from __future__ import annotations

import os
from pathlib import Path

from bdunlearn.errors import UserError

CHOICES = ("auto", "memory", "stream")
MEMORY_SHARE = 0.25


def decoded_bytes(num_images: int, image_size: int, channels: int = 3) -> int:
    """What ``num_images`` images take decoded at ``image_size`` (uint8)."""
    return int(num_images) * channels * int(image_size) ** 2


def _cgroup_limit() -> int | None:
    """The container's memory limit (cgroup v2, then v1), if one is set."""
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 1 << 60:
            return int(text)
    return None


def host_memory() -> int:
    """Bytes this process may use: the machine's available memory, or the container's limit if lower."""
    try:
        with open("/proc/meminfo") as handle:
            info = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in handle if line.split()}
        available = info.get("MemAvailable", info.get("MemTotal"))
    except (OSError, ValueError, IndexError):
        available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    limit = _cgroup_limit()
    return min(available, limit) if limit else available


def memory_budget(device=None) -> int:
    """Bytes of decoded pixels ``auto`` holds in memory: a quarter of the host's (and the GPU's) memory."""
    budget = MEMORY_SHARE * host_memory()
    if device is not None and str(device).startswith("cuda"):
        import torch

        budget = min(budget, MEMORY_SHARE * torch.cuda.get_device_properties(torch.device(device)).total_memory)
    return int(budget)


def choose_storage(storage: str, num_images: int, image_size: int, *, budget_bytes: int | None = None, device=None) -> str:
    """``memory`` or ``stream`` for a dataset of ``num_images`` images decoded at ``image_size``.

    ``storage`` is the ``dataset.storage`` setting; with ``auto``, ``budget_bytes`` (default ``memory_budget``)
    decides: memory when the decoded images fit in it.
    """
    if storage not in CHOICES:
        raise UserError(f"dataset.storage={storage!r}: choose one of {', '.join(CHOICES)}")
    if storage != "auto":
        return storage
    budget = memory_budget(device) if budget_bytes is None else budget_bytes
    return "memory" if decoded_bytes(num_images, image_size) <= budget else "stream"
