"""What TBAR's alpha scan costs next to the fine-tunes around it, on the default run's data and model.

Times, side by side in one process: TBAR's trigger fine-tune, its alpha scan (theta_b - alpha * tau_t
swapped into the same model in place, validation split only), and a full clean fine-tune of theta_pre on the
attacker's training split with the attack's fine-tune settings (the cost of the cheapest alternative defense).

    python scripts/bench_alpha.py [overrides...]      # Hydra overrides of the run config, e.g. dataset=fashion_mnist

The last lines are ``alpha_scan_over_trigger_finetune=<ratio>`` and ``alpha_scan_over_clean_finetune=<ratio>``.
"""

from __future__ import annotations

import sys
import time

import torch

from bdunlearn import api, pipeline, task_vectors
from bdunlearn.data.poison import clean, triggered_target_set
from bdunlearn.defenses.base import DefenseInputs
from bdunlearn.defenses.tbar import alpha_scan
from bdunlearn.objectives import finetune_classifier
from bdunlearn.params import trainable_parameters
from bdunlearn.training import OptimSettings


def main() -> None:
    cfg = api.config(sys.argv[1:] + ["logger.wandb.mode=disabled"])
    ctx = pipeline.prepare(cfg)
    backdoored, _ = pipeline.obtain_backdoored(ctx)
    clip, classifier, splits, attack, pretrained = ctx.clip, ctx.classifier, ctx.splits, ctx.attack, ctx.pretrained
    device, precision, tbar, ft, size = ctx.device, ctx.precision, cfg.defense, cfg.finetune, ctx.preprocess.image_size

    clip.load_state_dict(backdoored)
    samples = splits.defense.subset(torch.randperm(len(splits.defense), generator=torch.Generator().manual_seed(0))[: tbar.num_samples])
    params = trainable_parameters(clip, tbar.params)
    settings = OptimSettings(tbar.steps, tbar.batch_size, tbar.lr, tbar.weight_decay, tbar.warmup_steps)
    start = time.perf_counter()
    finetune_classifier(classifier, list(params.values()), triggered_target_set(samples, attack.target_class), attack, size, settings, seed=0, desc="trigger fine-tune", precision=precision)
    trigger_seconds = time.perf_counter() - start
    tau = task_vectors.subtract({k: v for k, v in clip.state_dict().items() if k in params}, backdoored)

    inputs = DefenseInputs(classifier, backdoored, pretrained, splits.defense, splits.val, attack, attack.target_class, size, cfg.eval_batch_size, cfg.seed, precision)
    start = time.perf_counter()
    curve = alpha_scan(inputs, tau, tbar.alpha_grid)
    scan_seconds = time.perf_counter() - start

    clip.load_state_dict(pretrained)
    params = trainable_parameters(clip, "visual")
    settings = OptimSettings(ft.steps, ft.batch_size, ft.lr, ft.weight_decay, ft.warmup_steps)
    start = time.perf_counter()
    finetune_classifier(classifier, list(params.values()), clean(splits.train), None, size, settings, seed=0, desc="clean fine-tune", precision=precision)
    clean_seconds = time.perf_counter() - start

    print(f"device={device} model={cfg.model.name} dataset={cfg.dataset.name} val_images={len(splits.val)}")
    print(f"trigger_finetune: {tbar.steps} steps x {tbar.batch_size} in {trigger_seconds:.2f}s")
    print(f"alpha_scan: {len(curve)} alphas in {scan_seconds:.2f}s ({scan_seconds / len(curve) * 1000:.0f} ms per alpha)")
    print(f"clean_finetune: {ft.steps} steps x {ft.batch_size} in {clean_seconds:.2f}s")
    print(f"alpha_scan_over_trigger_finetune={scan_seconds / trigger_seconds:.3f}")
    print(f"alpha_scan_over_clean_finetune={scan_seconds / clean_seconds:.3f}")


if __name__ == "__main__":
    main()
