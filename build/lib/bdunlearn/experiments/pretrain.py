"""What ``scripts/pretrain.py`` measures (its docstring says how to run it); the script only parses arguments."""

from __future__ import annotations

import logging
import sys
import time

from bdunlearn import api, pipeline  # noqa: E402
from bdunlearn.atomic import write_text_atomic  # noqa: E402
from bdunlearn.models.architectures import architecture  # noqa: E402
from bdunlearn.reports.machine import describe  # noqa: E402
from bdunlearn.reports.studies.pretrain import report  # noqa: E402

log = logging.getLogger("pretrain")


def pretrain(model: str, overrides: list[str]) -> dict:
    """θ_pre of ``model`` under ``overrides`` (built or cached) and its zero-shot accuracy."""
    cfg = api.config([f"model={model}", *overrides])
    cache = pipeline.ArtifactCache(cfg.paths.cache_dir, enabled=cfg.use_cache)
    spec = pipeline.prepare_spec(cfg, "pretrained")
    hit = cache.enabled and cache.load("pretrained", spec) is not None
    started = time.perf_counter()
    ctx = pipeline.prepare(cfg)  # theta_pre, built or cached, with the splits, head and controls around it
    wall = time.perf_counter() - started
    meta = cache.load("pretrained", spec)[1] if cache.enabled else {}
    clip, state = ctx.clip, ctx.pretrained
    metrics = ctx.evaluator(state)
    control_acc = ctx.controls(state, "")
    arch = architecture(cfg.model.name)
    recipe = cfg.model.pretrain if cfg.model.pretrained is None else None
    return {
        "model": model, "name": cfg.model.name, "vision": arch["vision_cfg"], "text": arch["text_cfg"],
        "visual_params": sum(p.numel() for n, p in clip.named_parameters() if n.startswith("visual")),
        "params": sum(p.numel() for p in clip.parameters()), "corpus": list(recipe.corpus) if recipe else [],
        "corpus_size": meta.get("corpus_size"), "steps": recipe.steps if recipe else None,
        "batch_size": recipe.batch_size if recipe else None, "seconds": meta.get("seconds"), "from_cache": hit,
        "resumed_from_step": meta.get("resumed_from_step", 0),
        "wall": wall, "dataset": cfg.dataset.name, "zero_shot_ca": metrics.clean_acc, "controls": control_acc,
        "entry": str(cache.entry_dir("pretrained", spec)),
    }  # fmt: skip


def run(args) -> None:
    """The measurement, for the arguments ``scripts/pretrain.py`` parses."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    rows = []
    for model in args.models:
        row = pretrain(model, args.overrides)
        state = "cached" if row["from_cache"] else f"built in {row['seconds']:.0f}s"
        print(f"{model}: {state}; zero-shot CA {row['zero_shot_ca']:.3f} on {row['dataset']}; {row['entry']}", flush=True)
        rows.append(row)
    text = report(rows, "python scripts/pretrain.py " + " ".join(sys.argv[1:]), describe())
    if args.out is not None:
        write_text_atomic(args.out, text)
        print(f"wrote {args.out}")
    else:
        print(text)
