"""What ``scripts/disentanglement.py`` measures (its docstring says how to run it); the script only parses arguments."""

from __future__ import annotations

import logging
import sys

import torch

from bdunlearn import api, pipeline, task_vectors  # noqa: E402
from bdunlearn.analysis import write_grid  # noqa: E402
from bdunlearn.atomic import write_text_atomic  # noqa: E402
from bdunlearn.data.poison import triggered_target_set  # noqa: E402
from bdunlearn.disentanglement import as_rows, disentanglement_grid  # noqa: E402
from bdunlearn.objectives import finetune_classifier
from bdunlearn.params import trainable_parameters
from bdunlearn.reports.machine import describe as hardware  # noqa: E402
from bdunlearn.reports.studies.disentanglement import save_heatmap, summary  # noqa: E402
from bdunlearn.training import OptimSettings

log = logging.getLogger("disentanglement")
PREFIX = "visual"  # the tower every fine-tune here trains


def grid(spec: str) -> list[float]:
    start, stop, step = (float(v) for v in spec.split(":"))
    count = int(round((stop - start) / step)) + 1
    return [round(start + i * step, 10) for i in range(count)]


def trigger_task_vector(ctx, steps: int):
    """τ_t = (θ_pre fine-tuned on every training image triggered and labelled with the target) − θ_pre (cached)."""
    cfg, classifier, pretrained, attack, splits, device = ctx.cfg, ctx.classifier, ctx.pretrained, ctx.attack, ctx.splits, ctx.device
    recipe = OptimSettings(steps, cfg.finetune.batch_size, cfg.finetune.lr, cfg.finetune.weight_decay, cfg.finetune.warmup_steps)
    spec = {"backdoored_like": ctx.spec("backdoored"), "trigger_task_recipe": vars(recipe)}

    def build():
        classifier.clip.load_state_dict(pretrained)
        data = triggered_target_set(splits.train, attack.target_class)
        params = trainable_parameters(classifier.clip, PREFIX)
        torch.manual_seed(cfg.seed)
        finetune_classifier(
            classifier, list(params.values()), data, attack, ctx.preprocess.image_size, recipe, seed=cfg.seed,
            desc="trigger task: fine-tune of theta_pre", precision=ctx.precision,
        )  # fmt: skip
        return task_vectors.clone(classifier.clip.state_dict()), {}

    state, _, _ = ctx.cache.get_or_build("trigger_task", spec, build)
    return {k: v.to(device) for k, v in state.items()}


def visual(state: dict) -> dict:
    return {k: v for k, v in state.items() if k.startswith(PREFIX) and v.is_floating_point()}


def measure(attack_name: str, seed: int, overrides: list[str], alphas: list[float], which: str, steps: int) -> dict:
    ctx = pipeline.prepare(api.config([f"attack={attack_name}", f"seed={seed}", "defense=none", *overrides]))
    cfg, classifier, pretrained, attack, splits, preprocess = ctx.cfg, ctx.classifier, ctx.pretrained, ctx.attack, ctx.splits, ctx.preprocess
    precision = ctx.precision
    clean_state = pipeline.obtain_clean_reference(ctx)
    tau_c = task_vectors.subtract(visual(clean_state), pretrained)
    if which == "triggered":
        finetuned = trigger_task_vector(ctx, steps)
        tau_t = task_vectors.subtract(visual(finetuned), pretrained)
    else:
        backdoored, _ = pipeline.obtain_backdoored(ctx)
        tau_t = task_vectors.subtract(visual(backdoored), clean_state)

    test = splits.test
    victims = test.images[test.labels != attack.target_class]
    points = disentanglement_grid(
        classifier, pretrained, tau_c, tau_t, test.images, test.labels, victims, attack, preprocess.image_size,
        alphas, cfg.eval_batch_size, seed=seed, precision=precision,
    )  # fmt: skip
    rows = as_rows(points)
    return {
        "attack": attack_name, "seed": seed, "trigger_vector": which, "rows": rows, "alphas": alphas,
        "cosine": task_vectors.cosine(tau_c, tau_t), "norm_c": task_vectors.norm(tau_c), "norm_t": task_vectors.norm(tau_t),
    }  # fmt: skip


def run(args) -> None:
    """The measurement, for the arguments ``scripts/disentanglement.py`` parses."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    alphas = grid(args.grid)
    results = []
    for attack_name in args.attacks:
        for which in args.trigger_vector:
            result = measure(attack_name, args.seed, args.overrides, alphas, which, args.trigger_steps)
            name = f"disentanglement_{attack_name}{'' if which == 'triggered' else '_difference'}"
            save_heatmap(result, args.out / f"{name}.png")
            write_grid(result["rows"], args.out / f"{name}.csv")
            log.info("%s (%s): cos %.3f, xi(1,1) in %s", attack_name, which, result["cosine"], args.out / f"{name}.csv")
            results.append(result)
    command = "python scripts/disentanglement.py " + " ".join(sys.argv[1:])
    write_text_atomic(args.out / "disentanglement.md", summary(results, command, args.low, hardware()))
    print(f"wrote {len(results)} heat maps and {args.out / 'disentanglement.md'}")
