"""Weight disentanglement of a clean task vector and a trigger vector: ξ(α_c, α_t) on a grid, per attack.

    python scripts/disentanglement.py --attacks badnets blended wanet --out results/

For each attack (on the default data and model, or whatever Hydra overrides follow ``--``):

- τ_c = θ_c − θ_pre, θ_c the attacker's fine-tune recipe run on the *clean* training split (``attack=none``,
  same seed): the clean task;
- τ_t, the trigger task, by ``--trigger-vector``:
  - ``triggered`` (default): θ_pre fine-tuned on the training split with *every* image carrying the trigger and
    labelled with the target class (``--trigger-steps`` steps at the attacker's lr and batch size); τ_t is the
    trigger task on its own, learnt from θ_pre as τ_c is, which is what Ortiz-Jimenez et al.'s definition asks
    for (each task vector fine-tuned from the same θ_pre on its own task's data);
  - ``difference``: θ_b − θ_c, the part of the attacker's fine-tune that the poison added (θ_pre + τ_c + τ_t
    is then exactly θ_b); closer to what TBAR subtracts, but not a fine-tune on the trigger task alone.
- ξ(α_c, α_t) (Ortiz-Jimenez et al. 2023, "Task arithmetic in the tangent space"; computed by
  ``bdunlearn.disentanglement``), with f_θ the zero-shot classifier with image tower θ:

      ξ = P_{x ∈ clean test}[f_{θ_pre+α_c τ_c+α_t τ_t}(x) ≠ f_{θ_pre+α_c τ_c}(x)]
        + P_{x ∈ triggered non-target test}[f_{θ_pre+α_c τ_c+α_t τ_t}(x) ≠ f_{θ_pre+α_t τ_t}(x)]

  0 means each vector keeps doing its own task when the other is added (disentangled); up to 2.

Writes ``disentanglement_<attack>[_difference].png`` (heat map) and ``.csv`` (every grid point: ξ, its two
terms, clean accuracy and ASR of the combined model) into ``--out``, and ``disentanglement.md`` (summary).
Weights are swapped in place (``load_state_dict`` into one model); evaluation is batched under
``torch.inference_mode()``. θ_pre, θ_c, θ_b and the triggered fine-tune go through the artifact cache.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe as hardware  # noqa: E402

from bdunlearn import api, pipeline, task_vectors  # noqa: E402
from bdunlearn.analysis import write_grid  # noqa: E402
from bdunlearn.atomic import write_text_atomic  # noqa: E402
from bdunlearn.data.poison import triggered_target_set  # noqa: E402
from bdunlearn.disentanglement import as_rows, disentanglement_grid  # noqa: E402
from bdunlearn.reports.criteria import DISENTANGLED_XI  # noqa: E402
from bdunlearn.reports.studies.disentanglement import save_heatmap, summary  # noqa: E402
from bdunlearn.training import OptimSettings, finetune_classifier, trainable_parameters  # noqa: E402

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attacks", nargs="+", default=["badnets", "blended", "wanet"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--grid", default="0:2:0.25", help="start:stop:step of both coefficients (default 0:2:0.25)")
    parser.add_argument("--trigger-vector", nargs="+", choices=("triggered", "difference"), default=["triggered"])
    parser.add_argument("--trigger-steps", type=int, default=100, help="steps of the triggered fine-tune of θ_pre")
    parser.add_argument("--low", type=float, default=DISENTANGLED_XI, help="ξ at or below this counts as disentangled")
    parser.add_argument("--out", type=Path, default=Path("results"))
    parser.add_argument("overrides", nargs="*", help="Hydra overrides (after --), e.g. dataset=fashion_mnist")
    args = parser.parse_args()
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


if __name__ == "__main__":
    main()
