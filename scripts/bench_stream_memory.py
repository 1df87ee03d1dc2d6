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
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from image_files import TreeMemory, write_image_folder  # noqa: E402
from machine import describe  # noqa: E402

from bdunlearn.data import stream  # noqa: E402
from bdunlearn.data.storage import choose_storage, decoded_bytes  # noqa: E402

MB = 10**6


def bounded_pass(files, args) -> None:
    cap = args.cap_mb * MB
    split = stream.from_file_list(files, args.image_size, args.workers)
    steps = math.ceil(len(files) / args.batch_size)
    start = time.perf_counter()
    with TreeMemory() as memory:
        schedule = split.schedule(args.batch_size, seed=0, device=args.device)
        checksum = sum(int(schedule(step).images[:, :, ::37, ::37].sum()) for step in range(steps))
        schedule.close()
    seconds = time.perf_counter() - start
    decoded = decoded_bytes(len(files), args.image_size)
    print(f"streamed pass: {steps} batches of {args.batch_size} ({len(files)} images, {decoded / MB:,.0f} MB decoded = "
          f"{decoded / cap:.1f} x the cap; dataset.storage=auto picks {choose_storage('auto', len(files), args.image_size, budget_bytes=cap)!r}) "
          f"in {seconds:.0f} s with {args.workers} workers, checksum {checksum}")  # fmt: skip
    print(f"peak host memory of {memory.peak_processes} processes: PSS {memory.peak_pss / MB:,.0f} MB, RSS sum {memory.peak_rss / MB:,.0f} MB; cap {cap / MB:,.0f} MB")
    print(f"peak_pss_mb={memory.peak_pss / MB:.0f} cap_mb={cap / MB:.0f} under_cap={memory.peak_pss < cap}")


def equivalence(files, args) -> None:
    from bdunlearn.attacks import BadNets
    from bdunlearn.data.decoded import decode
    from bdunlearn.data.poison import poison
    from bdunlearn.evaluation import evaluate
    from bdunlearn.models import clip as clips
    from bdunlearn.models.zeroshot import ZeroShotClassifier
    from bdunlearn.streaming import finetune_classifier_streamed, poison_split
    from bdunlearn.training import OptimSettings, finetune_classifier, trainable_parameters

    torch.set_num_threads(1)
    device = torch.device(args.device)
    size, n = 16, args.equivalence_count
    train, test = files.subset(range(n)), files.subset(range(n, n + n // 4))
    attack = BadNets(target_class=0, poison_rate=0.1, patch_size=3, location="random")
    settings = OptimSettings(steps=args.equivalence_steps, batch_size=64, lr=1e-3, warmup_steps=5)
    memory = decode(train, size, dataset="bench", split="train", root="/", num_workers=args.workers, cache_dir=None)
    held_out = decode(test, size, dataset="bench", split="test", root="/", num_workers=args.workers, cache_dir=None).to(device)
    runs = {}
    for path in ("memory", "streamed"):
        torch.manual_seed(0)
        model = clips.create("bdunlearn-tiny", device=device)
        head = torch.randn(10, 64, generator=torch.Generator().manual_seed(1)).to(device)
        classifier = ZeroShotClassifier(model, head, clips.preprocess_of(model)).to(device)
        params = list(trainable_parameters(model, "visual").values())
        if path == "memory":
            indices = attack.poison_indices(memory.labels, seed=0)
            data = poison(memory, attack, indices).to(device)
            result = finetune_classifier(classifier, params, data, attack, size, settings, 0, path)
        else:
            split, indices, _ = poison_split(stream.from_file_list(train, size, args.workers), attack, seed=0)
            result = finetune_classifier_streamed(classifier, params, split, attack, size, settings, 0, path)
        metrics = evaluate(classifier, held_out, size, 256, attack)
        runs[path] = (indices, result.losses, [p.detach().clone() for p in model.parameters()], metrics)
    (i_m, l_m, w_m, m_m), (i_s, l_s, w_s, m_s) = runs["memory"], runs["streamed"]
    worst = max((a - b).abs().max().item() for a, b in zip(w_m, w_s, strict=True))
    print(f"equivalence on {n} images ({args.equivalence_steps} steps of 64, BadNets at random positions, {len(i_m)} poisoned): "
          f"same poisoned items {torch.equal(i_m, i_s)}, same losses {l_m == l_s}; "
          f"CA/ASR in memory {m_m.clean_acc:.4f}/{m_m.asr:.4f}, streamed {m_s.clean_acc:.4f}/{m_s.asr:.4f}")  # fmt: skip
    tolerance = 0.0 if device.type == "cpu" else 1e-5  # GPU kernels may sum in another order between calls
    print(f"max_weight_difference={worst:.3g} tolerance={tolerance:g} ok={worst <= tolerance} ({device})")


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
    args = parser.parse_args()
    count = args.count or math.ceil(10 * args.cap_mb * MB / decoded_bytes(1, args.image_size))
    files, source = write_image_folder(Path(args.workdir) / "png-native", max(count, args.equivalence_count * 5 // 4), "png")
    print(f"{describe()}; {source} PNG files")
    bounded_pass(files.subset(range(count)), args)
    equivalence(files, args)


if __name__ == "__main__":
    main()
