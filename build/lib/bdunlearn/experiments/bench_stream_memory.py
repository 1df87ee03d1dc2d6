"""What ``scripts/bench_stream_memory.py`` measures (its docstring says how to run it); the script only parses arguments."""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch
from machine import describe  # noqa: E402

from bdunlearn.data import stream  # noqa: E402
from bdunlearn.data.storage import choose_storage, decoded_bytes  # noqa: E402
from bdunlearn.experiments.image_files import TreeMemory, write_image_folder  # noqa: E402

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
    from bdunlearn.objectives import finetune_classifier
    from bdunlearn.params import trainable_parameters
    from bdunlearn.streaming import finetune_classifier_streamed, poison_split
    from bdunlearn.training import OptimSettings

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


def run(args) -> None:
    """The measurement, for the arguments ``scripts/bench_stream_memory.py`` parses."""
    count = args.count or math.ceil(10 * args.cap_mb * MB / decoded_bytes(1, args.image_size))
    files, source = write_image_folder(Path(args.workdir) / "png-native", max(count, args.equivalence_count * 5 // 4), "png")
    print(f"{describe()}; {source} PNG files")
    bounded_pass(files.subset(range(count)), args)
    equivalence(files, args)
