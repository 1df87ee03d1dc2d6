"""Batched on-device triggers against a per-image PIL implementation of the same trigger.

The PIL path is how many backdoor toolkits poison data: one image at a time in a dataset's ``__getitem__``,
through PIL and back to a tensor. Both paths take the same float batch in [0, 1] and return the same
triggered batch (checked before timing).

    python scripts/bench_triggers.py [--batch-size 256] [--image-size 224] [--repeats 5] [--device auto]

The last line is ``ratio=<min over attacks of PIL seconds / batched seconds>``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from PIL import Image

from bdunlearn import attacks
from bdunlearn.attacks.badnets import BadNetsConfig
from bdunlearn.attacks.blended import BlendedConfig
from bdunlearn.runtime import resolve_device


def _to_pil(image: torch.Tensor) -> Image.Image:
    return Image.fromarray((image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))


def _to_tensor(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1)


def badnets_pil(attack):
    patch = _to_pil(attack.patch(3))
    p = attack.patch_size

    def apply(batch: torch.Tensor) -> torch.Tensor:
        out = []
        for image in batch.cpu():
            pil = _to_pil(image)
            pil.paste(patch, (pil.width - p, pil.height - p))
            out.append(_to_tensor(pil))
        return torch.stack(out)

    return apply


def blended_pil(attack, image_size: int):
    pattern = _to_pil(attack.blend_pattern(3, image_size, image_size))

    def apply(batch: torch.Tensor) -> torch.Tensor:
        return torch.stack([_to_tensor(Image.blend(_to_pil(image), pattern, attack.blend_ratio)) for image in batch.cpu()])

    return apply


def cases(image_size: int):
    """(name, batched attack, equivalent per-image PIL function)."""
    badnets = attacks.build(BadNetsConfig(name="badnets", patch_size=max(3, image_size // 10)))
    blended = attacks.build(BlendedConfig(name="blended"))
    return [("badnets", badnets, badnets_pil(badnets)), ("blended", blended, blended_pil(blended, image_size))]


def timed_pair(batched, pil, on_device: torch.Tensor, batch: torch.Tensor, repeats: int, device) -> tuple[float, float]:
    """Median seconds of each side; repeats alternate between the two so load drift hits both alike."""

    def once(fn, arg) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn(arg)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    samples = [(once(batched, on_device), once(pil, batch)) for _ in range(repeats)]
    return statistics.median(s[0] for s in samples), statistics.median(s[1] for s in samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = resolve_device(args.device)
    batch = torch.rand(args.batch_size, 3, args.image_size, args.image_size, generator=torch.Generator().manual_seed(0))
    # the PIL path rounds to 8 bits, so compare on a batch that is already 8-bit exact
    batch = (batch * 255).round() / 255
    on_device = batch.to(device)
    print(f"batch={args.batch_size} image_size={args.image_size} device={device}")
    ratios = []
    for name, attack, pil_apply in cases(args.image_size):
        expected = pil_apply(batch)
        got = attack.apply(on_device).cpu()
        assert torch.allclose(got, expected, atol=1.5 / 255), f"{name}: the two implementations disagree"
        batched, pil = timed_pair(attack.apply, pil_apply, on_device, batch, args.repeats, device)
        ratios.append(pil / batched)
        print(f"{name}: batched {args.batch_size / batched:,.0f} img/s, PIL {args.batch_size / pil:,.0f} img/s, ratio {pil / batched:.1f}x")
    print(f"ratio={min(ratios):.1f}")


if __name__ == "__main__":
    main()
