"""Runs spread over several processes (``torchrun``, or the tasks of one SLURM job): which process this is, and
the few collective steps with which N processes fine-tune exactly as one process would at the same global batch.

Every rank holds the whole model; ``training.fit`` starts all ranks from rank 0's weights, each rank computes
the loss on its share of the global batch (``rank_share``), and the gradients are averaged over the ranks
before every optimizer step, so the update is the one the whole batch gives. Only rank 0 writes files
(caches, records, W&B): gate writes with ``is_main()``. In a single process every helper here is a no-op.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import re
from collections.abc import Callable, Iterator

import torch
import torch.distributed as dist

from bdunlearn.errors import UserError

BUCKET_ELEMENTS = 16 * 1024 * 1024  # gradients averaged in flat buckets of this many values (64 MB in fp32)


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    return rank() == 0


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", os.environ.get("SLURM_LOCALID", 0)))


def device() -> torch.device:
    """This rank's accelerator (one GPU per process), or the CPU."""
    return torch.device("cuda", local_rank()) if torch.cuda.is_available() else torch.device("cpu")


def first_host(nodelist: str) -> str:
    """The first host of a SLURM node list ("gpu[07-09,12],cpu1" → "gpu07")."""
    match = re.match(r"([^,\[]+)(?:\[([^\]]+)\])?", nodelist.strip())
    if match is None:
        raise UserError(f"cannot read SLURM_JOB_NODELIST={nodelist!r}; set MASTER_ADDR to the first node's host name")
    prefix, ranges = match.groups()
    return prefix + ranges.split(",")[0].split("-")[0] if ranges else prefix


def _slurm_to_torch_env() -> None:
    """Fill torchrun's variables from SLURM's (one task per GPU, as conf/hydra/launcher/slurm_multigpu.yaml runs)."""
    if "WORLD_SIZE" in os.environ or "SLURM_PROCID" not in os.environ or int(os.environ.get("SLURM_NTASKS", "1")) <= 1:
        return  # not a task that srun / submitit started (an salloc shell has SLURM_NTASKS but no SLURM_PROCID)
    os.environ["RANK"] = os.environ["SLURM_PROCID"]
    os.environ["WORLD_SIZE"] = os.environ["SLURM_NTASKS"]
    os.environ["LOCAL_RANK"] = os.environ.get("SLURM_LOCALID", "0")
    os.environ.setdefault("MASTER_ADDR", first_host(os.environ.get("SLURM_JOB_NODELIST", "localhost")))
    os.environ.setdefault("MASTER_PORT", str(20000 + int(os.environ.get("SLURM_JOB_ID", "0")) % 20000))


def init_from_env(backend: str | None = None, timeout_min: float = 30) -> bool:
    """Join the process group the environment describes (torchrun's RANK/WORLD_SIZE/MASTER_ADDR, or SLURM's
    tasks); False, doing nothing, for a single process. NCCL on GPUs, gloo on CPUs unless ``backend`` says."""
    if active():
        return True
    _slurm_to_torch_env()
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    if backend == "nccl":
        torch.cuda.set_device(local_rank())
    dist.init_process_group(backend, timeout=datetime.timedelta(minutes=timeout_min))
    return True


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@contextlib.contextmanager
def session(backend: str | None = None) -> Iterator[bool]:
    """``with session() as distributed:`` joins the process group for the block (if the environment has one)."""
    joined = init_from_env(backend)
    try:
        yield joined
    finally:
        if joined:
            shutdown()


def barrier() -> None:
    if active():
        dist.barrier()


@contextlib.contextmanager
def main_first() -> Iterator[None]:
    """Rank 0 runs the block first (decodes a dataset into the cache, builds an artifact), then the other ranks
    run it and find the result on the shared file system instead of building it again."""
    if not is_main():
        barrier()
    try:
        yield
    finally:
        if is_main():
            barrier()


def broadcast_object(value):
    """Rank 0's ``value`` on every rank (any picklable object)."""
    if not active():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def on_main(action: Callable[[], object]):
    """``action()`` run by rank 0 alone (a file write), its result given to every rank."""
    result = action() if is_main() else None
    return broadcast_object(result)


# --- the fit loop's collective steps ------------------------------------------------------------------------


def _buckets(tensors: list[torch.Tensor]) -> Iterator[list[int]]:
    bucket, size = [], 0
    for i, tensor in enumerate(tensors):
        bucket.append(i)
        size += tensor.numel()
        if size >= BUCKET_ELEMENTS:
            yield bucket
            bucket, size = [], 0
    if bucket:
        yield bucket


@torch.no_grad()
def broadcast_parameters(params: list[torch.nn.Parameter]) -> None:
    """Every rank takes rank 0's values of ``params`` (the ranks start a fine-tune from identical weights)."""
    if not active():
        return
    for bucket in _buckets(params):
        flat = torch.cat([params[i].detach().reshape(-1) for i in bucket])
        dist.broadcast(flat, src=0)
        for i, chunk in zip(bucket, flat.split([params[i].numel() for i in bucket]), strict=True):
            params[i].copy_(chunk.view_as(params[i]))


@torch.no_grad()
def average_gradients(params: list[torch.nn.Parameter]) -> None:
    """Replace each gradient by its mean over the ranks. A parameter no rank gave a gradient keeps none (AdamW
    then skips it, as in one process); one that some ranks did not reach counts zeros from them."""
    if not active():
        return
    world = world_size()
    for bucket in _buckets(params):
        grads = [params[i].grad for i in bucket]
        reference = next((g for g in grads if g is not None), params[bucket[0]])
        parts = [g.reshape(-1) if g is not None else params[i].new_zeros(params[i].numel()) for i, g in zip(bucket, grads, strict=True)]
        present = torch.tensor([g is not None for g in grads], dtype=reference.dtype, device=reference.device)
        flat = torch.cat([*[p.to(reference.dtype) for p in parts], present])
        dist.all_reduce(flat)
        values, reached = flat[: -len(bucket)], flat[-len(bucket) :]
        for i, chunk, count in zip(bucket, values.split([params[i].numel() for i in bucket]), reached.tolist(), strict=True):
            params[i].grad = chunk.div_(world).view_as(params[i]).to(params[i].dtype) if count > 0 else None


def mean_over_ranks(values: torch.Tensor) -> torch.Tensor:
    """The element-wise mean of ``values`` over the ranks (the loss of the whole global batch, for the record)."""
    if not active():
        return values
    values = values.detach().clone()
    dist.all_reduce(values)
    return values.div_(world_size())


def clip_loss_options() -> dict:
    """open_clip ``ClipLoss`` arguments that make each rank's loss the CLIP loss of the whole global batch
    (features gathered with their gradients; averaging the gradients then gives the one-process update)."""
    if not active():
        return {}
    return {"local_loss": False, "gather_with_grad": True, "rank": rank(), "world_size": world_size()}


def share_bounds(batch_size: int) -> tuple[int, int]:
    """This rank's [start, stop) of a global batch of ``batch_size``; every rank gets the same count."""
    world = world_size()
    if batch_size % world:
        raise UserError(
            f"batch size {batch_size} does not split evenly over {world} processes; use a multiple of {world} "
            "(each process takes an equal share, so the global batch and the result stay those of one process)"
        )
    share = batch_size // world
    return rank() * share, (rank() + 1) * share


def rank_share(schedule: Callable[[int], torch.Tensor]) -> Callable[[int], torch.Tensor]:
    """``schedule`` (step → index batch of the global batch) cut down to this rank's contiguous share."""
    if not active():
        return schedule

    def share(step: int) -> torch.Tensor:
        index = schedule(step)
        start, stop = share_bounds(len(index))
        return index[start:stop]

    return share
