"""Streaming in bounded memory, and streaming = in memory where both fit.

1. A streamed pass (the training schedule: shuffled batches, DataLoader workers) over real image files whose
   decoded size (what the in-memory path would hold) is at least ten times a memory cap keeps the peak memory
   of the process and its workers under the cap (PSS: shared pages split between processes; the RSS sum, which
   counts shared pages once per process, is printed beside it).
2. On a set small enough for both paths, the attacker's fine-tune (tiny CLIP, BadNets at random positions)
   streamed and in memory: same poisoned items, same batches, same losses, same weights, same clean accuracy.

    python scripts/bench_stream_memory.py                # cap 1,000 MB: 66,432 Fashion-MNIST PNGs at 224 px

The last lines are ``peak_pss_mb=...`` and ``max_weight_difference=...``.
"""

from __future__ import annotations

import argparse

from bdunlearn.experiments.bench_stream_memory import run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cap-mb", type=int, default=1000, help="memory cap in MB (10^6 bytes)")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--count", type=int, default=None, help="images (default: the fewest decoding to 10 x the cap)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--equivalence-count", type=int, default=2000)
    parser.add_argument("--equivalence-steps", type=int, default=40)
    parser.add_argument("--device", default="cpu", help="where batches go (cuda: pinned host memory, the GPU trains)")
    parser.add_argument("--workdir", default="/tmp/bdunlearn-bench-stream")
    run(parser.parse_args())


if __name__ == "__main__":
    main()
