"""Does BTI-DBF's objective prefer the real trigger? Its generator's terms next to the attack's own trigger's.

    python scripts/bti_dbf_objective.py --attacks badnets blended wanet --seeds 2 3 4 5 6 7 --out results/bti_dbf_objective.md

For each backdoored model (the default data and model, or whatever Hydra overrides follow ``--``) this takes
BTI-DBF's candidate generators (one per pixel budget of ``inversion.norm_bounds``; from the cache when a sweep
already inverted the model, else inverted here), recomputes its decoupling mask (deterministic) and measures on
the defender's pool what step 2 weighs: pixel MSE, benign-feature MSE and other-feature MSE (the term G
maximises, relative to the clean benign features' mean square), for each generator and for the attack's real
trigger. If the real trigger's other-feature MSE is below a generator's that stays within the same budgets, the
objective itself prefers something else: no optimiser would find the trigger by maximising it.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe as hardware  # noqa: E402

from bdunlearn import api, pipeline  # noqa: E402
from bdunlearn.atomic import write_text_atomic  # noqa: E402
from bdunlearn.inversion import bti_dbf, stage  # noqa: E402
from bdunlearn.inversion.base import InversionContext, flip_rate, frozen, pool_subset  # noqa: E402
from bdunlearn.reports.studies.bti_dbf_objective import report  # noqa: E402

log = logging.getLogger("bti_dbf_objective")


def measure(attack_name: str, seed: int, overrides: list[str]) -> list[dict]:
    """One row for the real trigger and one per candidate generator of this model."""
    overrides = [f"attack={attack_name}", f"seed={seed}", "defense=none", "attack_knowledge=unknown", "inversion=bti_dbf", *overrides]
    ctx = pipeline.prepare(api.config(overrides))
    cfg, classifier, attack = ctx.cfg, ctx.classifier, ctx.attack
    backdoored, _ = pipeline.obtain_backdoored(ctx)
    inversion = cfg.inversion
    pool = pool_subset(ctx.splits.defense, inversion.num_samples, inversion.seed)
    context = InversionContext(classifier, pool, ctx.preprocess.image_size, cfg.eval_batch_size, ctx.precision)
    candidates, from_cache = stage.invert_cached(inversion, context, backdoored, ctx.cache, ctx.spec("suspect"))
    classifier.clip.load_state_dict(backdoored)
    features = bti_dbf.TokenFeatures(classifier, inversion.feature_block)
    with frozen(classifier.clip):
        mask, _ = bti_dbf.decouple(context, inversion, features, torch.Generator().manual_seed(inversion.seed))
    log.info("%s seed %d: %d candidates (%s)", attack_name, seed, len(candidates), "cached" if from_cache else "inverted here")
    base = {"attack": attack_name, "seed": seed}
    rows = [{**base, "trigger": "real", "budget": None, "target": attack.target_class,
             "flip_rate": flip_rate(context, attack, attack.target_class),
             **bti_dbf.objective_terms(context, features, mask, attack.apply)}]  # fmt: skip
    for trigger, meta in candidates:
        rows.append({**base, "trigger": "G", "budget": meta["norm_bound"], "target": trigger.target_class,
                     "flip_rate": float(meta["score"]), **bti_dbf.objective_terms(context, features, mask, trigger.apply)})  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attacks", nargs="+", default=["badnets", "blended", "wanet"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[2, 3, 4, 5, 6, 7])
    parser.add_argument("--out", type=Path, default=Path("results/bti_dbf_objective.md"))
    parser.add_argument("overrides", nargs="*", help="Hydra overrides (after --)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    rows = [row for attack in args.attacks for seed in args.seeds for row in measure(attack, seed, args.overrides)]
    norm_bounds = api.config(["attack_knowledge=unknown", "inversion=bti_dbf", *args.overrides]).inversion.norm_bounds
    command = "python scripts/bti_dbf_objective.py " + " ".join(sys.argv[1:])
    write_text_atomic(args.out, report(rows, command, list(norm_bounds), hardware()))
    print(f"wrote {args.out} ({len(rows)} rows)")


if __name__ == "__main__":
    main()
