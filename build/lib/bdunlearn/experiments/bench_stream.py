"""What ``scripts/bench_stream.py`` measures (its docstring says how to run it); the script only parses arguments."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import torch
from machine import describe  # noqa: E402

from bdunlearn.data import stream  # noqa: E402
from bdunlearn.data.decoded import storage_image  # noqa: E402
from bdunlearn.experiments.image_files import write_image_folder  # noqa: E402


def run(args) -> None:
    """The measurement, for the arguments ``scripts/bench_stream.py`` parses."""
    from torchvision.datasets import ImageFolder
    from torchvision.transforms import v2

    folder = Path(args.workdir) / f"jpg-{args.file_size or 'native'}"
    files, source = write_image_folder(folder, args.count, "jpg", args.file_size)
    transform = v2.Compose([v2.Resize(args.image_size, interpolation=v2.InterpolationMode.BICUBIC, antialias=True),
                            v2.CenterCrop(args.image_size), v2.PILToTensor()])  # fmt: skip
    bare_set = ImageFolder(str(folder), transform=transform)
    assert torch.equal(bare_set[0][0], storage_image(bare_set.samples[0][0], args.image_size)), "transforms differ"
    steps = args.count // args.batch_size

    def streamed() -> float:
        schedule = stream.from_file_list(files, args.image_size, args.workers).schedule(args.batch_size, seed=0)
        schedule(0)
        start = time.perf_counter()
        images = sum(len(schedule(step)) for step in range(1, steps))
        rate = images / (time.perf_counter() - start)
        schedule.close()
        return rate

    def bare() -> float:
        loader = torch.utils.data.DataLoader(bare_set, batch_size=args.batch_size, shuffle=True, num_workers=args.workers,
                                             pin_memory=torch.cuda.is_available(), generator=torch.Generator().manual_seed(0))  # fmt: skip
        batches = iter(loader)
        next(batches)
        start = time.perf_counter()
        images = sum(len(next(batches)[0]) for _ in range(1, steps))
        return images / (time.perf_counter() - start)

    rates = {"streamed": [], "bare": []}
    for _ in range(args.repeats):
        rates["streamed"].append(streamed())
        rates["bare"].append(bare())
    per_worker = {k: statistics.median(v) / max(args.workers, 1) for k, v in rates.items()}
    print(f"{describe()}; {args.count} {source} JPEGs ({args.file_size or 'native'} px) to {args.image_size} px, "
          f"batch {args.batch_size}, {args.workers} workers, {args.repeats} alternating repeats")  # fmt: skip
    for name, value in per_worker.items():
        print(f"{name:>9}: {value:8.1f} images/s per worker (runs: {', '.join(f'{r:.0f}' for r in rates[name])} images/s)")
    print(f"ratio={per_worker['streamed'] / per_worker['bare']:.3f}")
