"""theta_pre: the CLIP model a run starts from, with published weights (an open_clip tag) or made by the
project's contrastive pretraining recipe (``model.pretrain``) on captioned training images, cached."""

from __future__ import annotations

import logging

import torch

from bdunlearn import task_vectors
from bdunlearn.config import keys
from bdunlearn.data.captions import LabelledSource, build_corpus
from bdunlearn.data.images import BatchSchedule
from bdunlearn.models import clip as clip_models
from bdunlearn.models import sources
from bdunlearn.objectives import contrastive_loss
from bdunlearn.params import trainable_parameters
from bdunlearn.task_vectors import StateDict
from bdunlearn.training import OptimSettings, fit

log = logging.getLogger(__name__)


def build_model(model_cfg, device):
    """The CLIP model (holding published weights for open_clip tags, random ones otherwise), its tokenizer
    and preprocessing."""
    if model_cfg.pretrained is not None:
        clip = sources.create(model_cfg.pretrained, model_cfg.name, model_cfg.cache_dir, device)
    else:
        torch.manual_seed(model_cfg.pretrain.seed)
        clip = clip_models.create(model_cfg.name, device)
    clip.eval()
    return clip, clip_models.tokenizer(model_cfg.name), clip_models.preprocess_of(clip)


def pretrain_contrastive(ctx, resume) -> dict:
    """Contrastive pretraining of ``ctx.clip`` (no published weights) on captioned training images."""
    recipe = ctx.cfg.model.pretrain
    clip, preprocess = ctx.clip, ctx.preprocess
    sources = []
    for name in recipe.corpus:
        dataset = keys.corpus_dataset(ctx.cfg, name, ctx.load_dataset)
        split = ctx.load_splits(dataset).train  # never validation, the defender's pool or test
        sources.append(LabelledSource(split, dataset.class_names, dataset.templates, dataset.pretrain_fraction))
    corpus = build_corpus(sources, ctx.tokenizer, preprocess.image_size, recipe.seed).to(ctx.device)
    generator = torch.Generator().manual_seed(recipe.seed)
    torch.manual_seed(recipe.seed)
    clip.train()
    params = list(trainable_parameters(clip, "").values())
    loss_fn = contrastive_loss(clip, corpus.images, corpus.sampler(generator), preprocess.image_size, preprocess.mean, preprocess.std)
    schedule = BatchSchedule(len(corpus), recipe.batch_size, recipe.seed, device=ctx.device)
    settings = OptimSettings(recipe.steps, recipe.batch_size, recipe.lr, recipe.weight_decay, recipe.warmup_steps)
    result = fit(
        params, loss_fn, schedule, settings, "theta_pre: contrastive pretraining",
        generator=generator, resume=resume, precision=ctx.precision,
    )  # fmt: skip
    clip.eval()
    return {"corpus_size": len(corpus), "seconds": result.seconds, "final_loss": result.final_loss, "resumed_from_step": result.resumed_from}


def obtain_pretrained(ctx) -> StateDict:
    """theta_pre, loaded into ``ctx.clip``: the published weights, or the pretraining recipe's (cached) result."""
    if ctx.cfg.model.pretrained is not None:
        return task_vectors.clone(ctx.clip.state_dict())
    spec = keys.pretrained_spec(ctx.cfg, ctx.precision.name, ctx.load_dataset)

    def build():
        meta = pretrain_contrastive(ctx, ctx.resume("pretrained", spec))
        log.info("theta_pre: pretrained in %.1fs on %d captioned images", meta["seconds"], meta["corpus_size"])
        return task_vectors.clone(ctx.clip.state_dict()), meta

    state, _, _ = ctx.cache.get_or_build("pretrained", spec, build)
    ctx.clip.load_state_dict(state)
    ctx.clip.eval()
    return {k: v.to(ctx.device) for k, v in state.items()}
