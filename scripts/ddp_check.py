"""torch.distributed check of ``training.fit``: N processes at a global batch reach the weights one process
reaches at the same batch (tiny CLIP; cross-entropy in memory, streamed image files, the gathered CLIP loss).

    torchrun --standalone --nproc_per_node 2 scripts/ddp_check.py --device cuda --backend gloo   # 2 ranks, 1 GPU
    torchrun --standalone --nproc_per_node 4 scripts/ddp_check.py --device cuda --backend nccl   # 1 rank per GPU
    python scripts/ddp_check.py --device cuda                                                    # the reference
    python scripts/ddp_check.py --compare                                                        # the verdict

Rank 0 alone writes ``OUT/<case>-world<N>.safetensors``; the last line is ``max_weight_difference=...``.
"""

from __future__ import annotations

import argparse

from bdunlearn.experiments.ddp_check import run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--backend", default=None, help="gloo | nccl (default: nccl on GPUs, gloo on CPUs)")
    parser.add_argument("--out", default="/tmp/bdunlearn-ddp-check")
    parser.add_argument("--compare", action="store_true")
    run(parser.parse_args())


if __name__ == "__main__":
    main()
