"""What ``scripts/bench_triggers.py`` measures (its docstring says how to run it); the script only parses arguments."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
from PIL import Image

from bdunlearn import attacks
from bdunlearn.attacks.badnets import BadNetsConfig
from bdunlearn.attacks.blended import BlendedConfig
from bdunlearn.data.images import to_pixels
from bdunlearn.runtime import resolve_device

PilTrigger = Callable[[Image.Image], Image.Image]


def _to_pil(image: torch.Tensor) -> Image.Image:
    return Image.fromarray((image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))


def _to_tensor(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1)


def badnets_pil(attack) -> PilTrigger:
    patch = _to_pil(attack.patch(3))
    p = attack.patch_size

    def trigger(image: Image.Image) -> Image.Image:
        image.paste(patch, (image.width - p, image.height - p))
        return image

    return trigger


def blended_pil(attack, image_size: int) -> PilTrigger:
    pattern = _to_pil(attack.blend_pattern(3, image_size, image_size))
    return lambda image: Image.blend(image, pattern, attack.blend_ratio)


def from_float(trigger: PilTrigger) -> Callable[[torch.Tensor], torch.Tensor]:
    """The per-image PIL path on a float batch [B, 3, H, W] in [0, 1]."""
    return lambda batch: torch.stack([_to_tensor(trigger(_to_pil(image))) for image in batch.cpu()])


def from_uint8(trigger: PilTrigger) -> Callable[[list[np.ndarray]], torch.Tensor]:
    """The per-image PIL path on stored uint8 images [H, W, 3], as a toolkit's dataset holds them."""
    return lambda arrays: torch.stack([_to_tensor(trigger(Image.fromarray(array))) for array in arrays])


def cases(image_size: int):
    """(name, batched attack, the same trigger on one PIL image)."""
    badnets = attacks.build(BadNetsConfig(name="badnets", patch_size=max(3, image_size // 10)))
    blended = attacks.build(BlendedConfig(name="blended"))
    return [("badnets", badnets, badnets_pil(badnets)), ("blended", blended, blended_pil(blended, image_size))]


def timed_pair(batched, pil, repeats: int, device) -> tuple[float, float]:
    """Median seconds of each side (functions of no argument); repeats alternate so load drift hits both alike."""

    def once(fn) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    samples = [(once(batched), once(pil)) for _ in range(repeats)]
    return statistics.median(s[0] for s in samples), statistics.median(s[1] for s in samples)


def check_same(got: torch.Tensor, expected: torch.Tensor) -> None:
    # PIL rounds every image to 8 bits, hence the tolerance
    assert torch.allclose(got.cpu(), expected, atol=1.5 / 255), "the two implementations disagree"


def compare(attack, pil_trigger: PilTrigger, stored: torch.Tensor, arrays: list[np.ndarray], repeats: int, device) -> list[float]:
    """Seconds of [in place, PIL] on a float batch, then [to_pixels + in place, PIL] from uint8 images, then
    [one read+write pass over the float batch, PIL]: the least time any trigger that changes every pixel in place
    can take, so PIL / that is the highest ratio such a trigger can reach on this machine."""
    size = stored.shape[-1]
    batch = to_pixels(stored, size)  # 8-bit exact, so the PIL path's rounding loses nothing
    batch_cpu = batch.cpu()
    pil_float, pil_uint8 = from_float(pil_trigger), from_uint8(pil_trigger)
    check_same(attack.apply_(batch.clone()), pil_float(batch_cpu))
    check_same(attack.apply_(to_pixels(stored, size)), pil_uint8(arrays))
    trigger = timed_pair(lambda: attack.apply_(batch), lambda: pil_float(batch_cpu), repeats, device)
    pipeline = timed_pair(lambda: attack.apply_(to_pixels(stored, size)), lambda: pil_uint8(arrays), repeats, device)
    one_pass = timed_pair(lambda: batch.mul_(1.0), lambda: pil_float(batch_cpu), repeats, device)
    return [*trigger, *pipeline, *one_pass]


def run(args) -> None:
    """The measurement, for the arguments ``scripts/bench_triggers.py`` parses."""
    device = resolve_device(args.device)
    n, size = args.batch_size, args.image_size
    stored = torch.randint(0, 256, (n, 3, size, size), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    arrays = [image.permute(1, 2, 0).numpy().copy() for image in stored]  # what a toolkit's dataset holds
    threads = f" threads={torch.get_num_threads()}" if device.type == "cpu" else ""
    print(f"batch={n} image_size={size} device={device}{threads}")
    ratios, pipeline_ratios, ceilings = [], [], []
    for name, attack, pil_trigger in cases(size):
        in_place, pil, pipeline, pil_pipeline, one_pass, pil_again = compare(
            attack, pil_trigger, stored.to(device), arrays, args.repeats, device
        )
        ratios.append(pil / in_place)
        pipeline_ratios.append(pil_pipeline / pipeline)
        ceilings.append(pil_again / one_pass)
        print(
            f"{name}: in place {n / in_place:,.0f} img/s, PIL {n / pil:,.0f} img/s, ratio {pil / in_place:.1f}x; "
            f"from uint8 {n / pipeline:,.0f} vs {n / pil_pipeline:,.0f} img/s, ratio {pil_pipeline / pipeline:.1f}x; "
            f"one read+write pass over the batch {n / one_pass:,.0f} img/s (ceiling for a whole-image trigger "
            f"{pil_again / one_pass:.1f}x)"
        )
    print(f"pipeline_ratio={min(pipeline_ratios):.1f}")
    print(f"one_pass_ceiling={min(ceilings):.1f}")
    print(f"ratio={min(ratios):.1f}")
