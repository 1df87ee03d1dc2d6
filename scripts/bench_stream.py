"""Streamed training batches: images/s per DataLoader worker against a bare torchvision ImageFolder DataLoader
on the same JPEG files with the same transform (shorter side resized, bicubic; centre crop; uint8 tensor),
both shuffled, same batch size and workers. Repeats alternate between the two; medians are compared.

    python scripts/bench_stream.py                      # 6,000 Fashion-MNIST JPEGs (28 px), 2 workers, 224 px
    python scripts/bench_stream.py --file-size 256      # 256 px files: decoding dominates

The last line is ``ratio=<streamed/ImageFolder>`` (images/s per worker; goal >= 0.9).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from image_files import write_image_folder  # noqa: E402
from machine import describe  # noqa: E402

from bdunlearn.data import stream  # noqa: E402
from bdunlearn.data.decoded import storage_image  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=6000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--file-size", type=int, default=None, help="write the JPEGs at this side (default: native)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", default="/tmp/bdunlearn-bench-stream")
    args = parser.parse_args()
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


if __name__ == "__main__":
    main()
