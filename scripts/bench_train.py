"""Throughput of the framework's fine-tuning step against a bare, hand-written PyTorch loop.

Both fine-tune the image tower of the same randomly initialised open_clip model through the same frozen
zero-shot head, on the same device-resident uint8 images, with the same batch size, AdamW and precision.
Repeats alternate between the two so that drift in machine load hits both alike; medians are compared.

    python scripts/bench_train.py                                  # tiny model on this machine
    python scripts/bench_train.py --model ViT-B-32 --batch-size 128  # on a GPU: also model FLOPs utilisation
    python scripts/bench_train.py --data-pipeline                  # also the loader's images/s on its own

The last line is ``ratio=<framework/bare>`` (images/s).
"""

from __future__ import annotations

import argparse

from bdunlearn.experiments.bench_train import run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="bdunlearn-tiny", help="open_clip architecture (random weights)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=100, help="timed steps per repeat")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    parser.add_argument("--peak-tflops", type=float, default=None, help="bf16 peak of the card, if not known here")
    parser.add_argument("--data-pipeline", action="store_true", help="also time batch assembly on its own")
    run(parser.parse_args())


if __name__ == "__main__":
    main()
