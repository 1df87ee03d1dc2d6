"""The classification setting (the task-arithmetic protocol): the attacker fine-tunes theta_pre's image tower on
the poisoned training split with cross-entropy through the frozen zero-shot head built from theta_pre's text
tower."""

from __future__ import annotations

import torch

from bdunlearn import task_vectors
from bdunlearn.config import checks
from bdunlearn.data.poison import poison

# Only the image tower trains: the zero-shot head built once from theta_pre stays valid.
REBUILDS_HEAD = False


def check(cfg, plugins) -> None:
    checks.require(
        cfg.attack.num_poisoned is None,
        f"attack.num_poisoned={cfg.attack.num_poisoned} applies to setting=contrastive (pairs); the classification "
        "setting poisons a fraction: set attack.poison_rate",
    )


def training_items(cfg) -> int:
    """What ``finetune.epochs`` counts passes over: the attacker's training images."""
    from bdunlearn.data import datasets
    from bdunlearn.data.splits import split_sizes

    num_train, has_test = datasets.train_size(cfg.dataset)
    return split_sizes(num_train, has_test, cfg.dataset.splits)["train"]


def prepare_data(ctx) -> None:
    """Nothing beyond the splits."""
    return None


def obtain_backdoored(ctx, resume, cfg=None, attack=None) -> tuple[dict, bool, dict]:
    """theta_b as (state dict, from_cache, metadata): the attacker's fine-tune of theta_pre on poisoned data
    (cached). ``cfg``/``attack`` replace the run's (the clean reference model theta_c is the same recipe with
    ``attack=none``)."""
    from bdunlearn.config import keys
    from bdunlearn.data.sources import streamed
    from bdunlearn.objectives import finetune_classifier
    from bdunlearn.params import trainable_parameters
    from bdunlearn.streaming import finetune_classifier_streamed, poison_split
    from bdunlearn.training import OptimSettings

    cfg = cfg or ctx.cfg
    attack = attack or ctx.attack
    classifier, train = ctx.classifier, ctx.splits.train
    spec = keys.backdoored_spec(cfg, ctx.precision.name, ctx.load_dataset)

    def build():
        classifier.clip.load_state_dict(ctx.pretrained)
        f = cfg.finetune
        settings = OptimSettings(f.steps, f.batch_size, f.lr, f.weight_decay, f.warmup_steps)
        common = {"seed": cfg.seed, "desc": "theta_b: poisoned fine-tune", "resume": resume(spec), "precision": ctx.precision}
        if streamed(train):  # the same items poisoned, by their index in the split, whatever the worker count
            data, indices, cross = poison_split(train, attack, cfg.seed)
        else:
            indices = attack.poison_indices(train.labels, cfg.seed)
            cross = attack.cross_indices(train.labels, indices, cfg.seed)
            data = poison(train, attack, indices, cross)
        torch.manual_seed(cfg.seed)
        params = list(trainable_parameters(classifier.clip, "visual").values())
        if streamed(train):
            result = finetune_classifier_streamed(classifier, params, data, attack, ctx.preprocess.image_size, settings, **common)
        else:
            result = finetune_classifier(
                classifier, params, data, attack, ctx.preprocess.image_size, settings, **common, compile_model=cfg.compile
            )
        meta = {
            "poisoned_indices": indices.tolist(), "cross_indices": cross.tolist(),
            "seconds": result.seconds, "final_loss": result.final_loss,
        }  # fmt: skip
        return task_vectors.clone(classifier.clip.state_dict()), meta

    state, meta, from_cache = ctx.cache.get_or_build("backdoored", spec, build)
    return {k: v.to(ctx.device) for k, v in state.items()}, from_cache, meta
