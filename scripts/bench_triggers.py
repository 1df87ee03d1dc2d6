"""Batched in-place triggers, as the framework applies them, against a per-image PIL implementation.

The PIL path is how many backdoor toolkits poison data: one image at a time in a dataset's ``__getitem__``,
through PIL and back to a tensor. Two comparisons, each checked to give the same triggered batch before timing:

- trigger (``ratio=``, the figure with the goal): both sides take the same float batch in [0, 1] and return it
  triggered. The batched side is ``Attack.apply_``, which writes the trigger into the batch that the training
  or evaluation loop builds anyway (BadNets writes only the patch region, Blended makes one pass over the
  batch); the PIL side converts each image to PIL, applies the trigger and converts it back. The in-place side
  runs on the same tensor every repeat, so after the first repeat it triggers an already triggered batch;
  for BadNets and Blended the work does not depend on the pixel values, so the cost is the same.
- pipeline (``pipeline_ratio=``, context): both sides start from the stored uint8 images and end with the
  triggered float batch: ``to_pixels`` then ``apply_``, against ``Image.fromarray``, the trigger and back to a
  tensor per image. This charges both sides the conversion to float pixels, which the trigger figure leaves
  out of the batched side.

    python scripts/bench_triggers.py [--batch-size 256] [--image-size 224] [--repeats 15] [--device auto]

- ceiling (``one_pass_ceiling=``, context): PIL against one in-place read+write pass over the float batch
  (``mul_(1.0)``), the least any trigger that changes every pixel can cost: where the memory bus bounds a
  whole-image trigger (Blended at 224 px on a CPU), this is the highest ratio it could show.

The last lines are ``pipeline_ratio=``, ``one_pass_ceiling=`` and ``ratio=``, each the minimum over attacks of PIL
seconds / batched seconds.
"""

from __future__ import annotations

import argparse

from bdunlearn.experiments.bench_triggers import run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--device", default="auto")
    run(parser.parse_args())


if __name__ == "__main__":
    main()
