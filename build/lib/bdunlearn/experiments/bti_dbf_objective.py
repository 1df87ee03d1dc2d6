"""What ``scripts/bti_dbf_objective.py`` measures (its docstring says how to run it); the script only parses arguments."""

from __future__ import annotations

import logging
import sys

import torch

from bdunlearn import api, pipeline  # noqa: E402
from bdunlearn.atomic import write_text_atomic  # noqa: E402
from bdunlearn.inversion import bti_dbf, stage  # noqa: E402
from bdunlearn.inversion.base import InversionContext, flip_rate, frozen, pool_subset  # noqa: E402
from bdunlearn.reports.machine import describe as hardware  # noqa: E402
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


def run(args) -> None:
    """The measurement, for the arguments ``scripts/bti_dbf_objective.py`` parses."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    rows = [row for attack in args.attacks for seed in args.seeds for row in measure(attack, seed, args.overrides)]
    norm_bounds = api.config(["attack_knowledge=unknown", "inversion=bti_dbf", *args.overrides]).inversion.norm_bounds
    command = "python scripts/bti_dbf_objective.py " + " ".join(sys.argv[1:])
    write_text_atomic(args.out, report(rows, command, list(norm_bounds), hardware()))
    print(f"wrote {args.out} ({len(rows)} rows)")
