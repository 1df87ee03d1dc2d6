"""What ``scripts/bench_train.py`` measures (its docstring says how to run it); the script only parses arguments."""

from __future__ import annotations

import statistics
import time

import torch
import torch.nn.functional as F

from bdunlearn.attacks import BadNets
from bdunlearn.data.images import BatchSchedule, to_pixels
from bdunlearn.data.poison import TriggerableSet
from bdunlearn.models import clip as clip_models
from bdunlearn.models.zeroshot import ZeroShotClassifier, zeroshot_head
from bdunlearn.objectives import finetune_classifier
from bdunlearn.params import trainable_parameters
from bdunlearn.runtime import configure_backends, resolve_device, resolve_precision
from bdunlearn.training import OptimSettings

# Dense bf16 tensor-core peaks (FLOP/s) from the vendors' data sheets, matched against the device name.
BF16_PEAK = {"H200": 989.4e12, "H100 SXM": 989.4e12, "H100 80GB HBM3": 989.4e12, "H100 PCIe": 756.5e12,
             "H100": 989.4e12, "A100": 312e12, "L40S": 362e12, "A10G": 70e12, "L4": 121e12}  # fmt: skip


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build(model_name: str, device: torch.device, num_classes: int):
    torch.manual_seed(0)
    clip = clip_models.create(model_name, device)
    preprocess = clip_models.preprocess_of(clip)
    names = [f"class {i}" for i in range(num_classes)]
    head = zeroshot_head(clip, clip_models.tokenizer(model_name), names, ["a photo of a {}."], device)
    return ZeroShotClassifier(clip, head, preprocess).to(device), preprocess


def framework_run(classifier, data: TriggerableSet, image_size: int, settings, precision) -> float:
    params = list(trainable_parameters(classifier.clip, "visual").values())
    result = finetune_classifier(classifier, params, data, None, image_size, settings, seed=0, desc="framework", precision=precision)
    return settings.steps * settings.batch_size / result.seconds


def bare_step_fn(classifier, images, labels, image_size, batch_size, lr, precision, device):
    """The loop a researcher would write by hand: returns one training step as a closure."""
    clip, head = classifier.clip, classifier.head
    mean, std = classifier.mean, classifier.std
    params = [p for p in clip.visual.parameters()]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.1, fused=device.type == "cuda")
    order = torch.randperm(len(labels), device=device)
    state = {"step": 0}

    def step():
        start = (state["step"] * batch_size) % (len(labels) - batch_size + 1)
        index = order[start : start + batch_size]
        x = (images[index].float() / 255 - mean) / std
        with precision.autocast():
            logits = F.normalize(clip.encode_image(x), dim=-1) @ head.T
            loss = F.cross_entropy(logits, labels[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        state["step"] += 1

    return step


def bare_run(step, steps: int, batch_size: int, device) -> float:
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return steps * batch_size / (time.perf_counter() - start)


def loader_rate(data: TriggerableSet, image_size: int, batch_size: int, steps: int, device) -> float:
    """Images/s of batch assembly alone: indices → uint8 gather → pixels → trigger on a tenth of the batch."""
    attack = BadNets(target_class=0, poison_rate=0.1)
    schedule = BatchSchedule(len(data), batch_size, seed=0, device=device)
    generator = torch.Generator().manual_seed(0)
    flagged = torch.arange(batch_size, device=device) < max(1, batch_size // 10)
    sync(device)
    start = time.perf_counter()
    for step in range(steps):
        index = schedule(step)
        pixels = to_pixels(data.images[index], image_size)
        attack.apply_where_(pixels, flagged, generator)
    sync(device)
    return steps * batch_size / (time.perf_counter() - start)


def step_flops(step) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


def peak_flops(device: torch.device, override_tflops: float | None) -> float | None:
    if override_tflops:
        return override_tflops * 1e12
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in BF16_PEAK.items() if key in name), None)


def run(args) -> None:
    """The measurement, for the arguments ``scripts/bench_train.py`` parses."""

    device = resolve_device(args.device)
    configure_backends(device)
    precision = resolve_precision(args.precision, device)
    classifier, preprocess = build(args.model, device, num_classes=10)
    size = preprocess.image_size
    n = args.batch_size * 8
    images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, device=device)
    labels = torch.randint(0, 10, (n,), device=device)
    data = TriggerableSet(images, labels, torch.zeros(n, dtype=torch.bool, device=device))
    settings = OptimSettings(steps=args.steps, batch_size=args.batch_size, lr=1e-5, weight_decay=0.1)
    step = bare_step_fn(classifier, images, labels, size, args.batch_size, 1e-5, precision, device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(f"model={args.model} image_size={size} batch={args.batch_size} device={name} precision={precision.name}")

    framework_run(classifier, data, size, OptimSettings(3, args.batch_size, 1e-5), precision)  # warm-up
    bare_run(step, 3, args.batch_size, device)
    framework, bare = [], []
    for repeat in range(args.repeats):
        framework.append(framework_run(classifier, data, size, settings, precision))
        bare.append(bare_run(step, args.steps, args.batch_size, device))
        print(f"repeat {repeat}: framework {framework[-1]:.1f} img/s, bare {bare[-1]:.1f} img/s")
    fw, br = statistics.median(framework), statistics.median(bare)
    print(f"framework_images_per_s={fw:.1f}")
    print(f"bare_images_per_s={br:.1f}")
    if args.data_pipeline:
        print(f"loader_images_per_s={loader_rate(data, size, args.batch_size, args.steps, device):.1f}")
    peak = peak_flops(device, args.peak_tflops)
    if peak is not None:
        with precision.autocast():
            flops = step_flops(step)
        mfu = flops * (fw / args.batch_size) / peak
        print(f"flops_per_step={flops:.3e} peak_flops={peak:.3e} mfu={mfu:.3f}")
    print(f"ratio={fw / br:.3f}")
