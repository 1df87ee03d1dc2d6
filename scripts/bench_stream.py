"""Streamed training batches: images/s per DataLoader worker against a bare torchvision ImageFolder DataLoader
on the same JPEG files with the same transform (shorter side resized, bicubic; centre crop; uint8 tensor),
both shuffled, same batch size and workers. Repeats alternate between the two; medians are compared.

    python scripts/bench_stream.py                      # 6,000 Fashion-MNIST JPEGs (28 px), 2 workers, 224 px
    python scripts/bench_stream.py --file-size 256      # 256 px files: decoding dominates

The last line is ``ratio=<streamed/ImageFolder>`` (images/s per worker; goal >= 0.9).
"""

from __future__ import annotations

import argparse

from bdunlearn.experiments.bench_stream import run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=6000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--file-size", type=int, default=None, help="write the JPEGs at this side (default: native)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", default="/tmp/bdunlearn-bench-stream")
    run(parser.parse_args())


if __name__ == "__main__":
    main()
