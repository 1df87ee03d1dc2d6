"""Everything checked before any compute, and the config a run then executes.

``validated(cfg)`` runs the pure checks (:func:`bdunlearn.config.validate`), the plug-ins' and the setting's
checks, and the checks that need I/O (data present, weights obtainable, checkpoint shapes, CUDA present). It
returns the *resolved* run config: a new object in which what the composed config leaves to the environment is
filled in (``dataset.image_size`` from the model, ``finetune.steps`` from ``finetune.epochs``); the composed
config itself is never changed.
"""

from __future__ import annotations

import math
from dataclasses import replace

from omegaconf import DictConfig

from bdunlearn import settings
from bdunlearn.config import checks, dataset_config, input_size, validate
from bdunlearn.config.schema import RunConfig
from bdunlearn.data import datasets
from bdunlearn.errors import UserError
from bdunlearn.plugins import registry


def validated(cfg: DictConfig | dict) -> RunConfig:
    """The typed, checked and resolved run config; UserError (one line) on the first problem."""
    plugins = registry()
    run = validate(cfg, plugins)
    size = input_size(run.model.name)
    run = replace(run, model=checked_weights(run.model))
    run = replace(run, dataset=_sized(_with_classes(run.dataset), size, "dataset"))
    plugins.attacks[run.attack.name].check(run.attack, len(run.dataset.class_names), size)  # the classes are known now
    check_controls(run, size)
    setting = settings.REGISTRY[run.setting]
    setting.check(run, plugins)
    run = with_steps(run, setting.training_items(run))
    check_environment(run)
    return replace(run, dataset=stored(run, plugins))


def stored(run: RunConfig, plugins):
    """The run's dataset with ``storage`` resolved (auto: memory or stream by the size of the training images, or
    of the caption file's pairs; under torchrun rank 0's choice on every rank, since free memory differs between
    processes) and the stream path's limits checked."""
    from bdunlearn import distributed
    from bdunlearn.attacks.base import Attack
    from bdunlearn.data import sources
    from bdunlearn.runtime import resolve_device

    caption_file = run.setting == "contrastive" and run.contrastive.captions == "csv"  # there, the pairs decide
    pairs = settings.REGISTRY[run.setting].training_items(run) if caption_file else None
    dataset = sources.resolve_storage(run.dataset, resolve_device(run.device), pairs, input_size(run.model.name))
    dataset = replace(dataset, storage=distributed.broadcast_object(dataset.storage))
    if datasets.is_sharded(dataset):  # each process reads shards of its own
        shards, world = len(datasets.read(dataset, "train").files), distributed.world_size()
        checks.require(
            shards >= world,
            f"dataset=shards: {shards} training shard(s) cannot feed {world} processes; write more, smaller shards "
            "(bdunlearn-data shards --maxcount)",
        )
    # shards cannot be held in memory: their images can, as the folder they were written from
    held = "use dataset=folder on the images" if datasets.is_sharded(dataset) else "use dataset.storage=memory"
    if dataset.storage == "stream":
        checks.require(
            run.setting == "classification" or caption_file,
            "dataset.storage=stream streams a caption file's pairs in the contrastive setting (contrastive.captions=csv); "
            "a captioned dataset's pairs are held in memory: use dataset.storage=memory",
        )
        checks.require(
            plugins.attacks[run.attack.name].prepare is Attack.prepare,
            f"attack={run.attack.name} optimises its trigger over the training images in memory; {held}",
        )
        checks.require(
            not run.analysis.disentanglement_grid,
            f"analysis.disentanglement_grid reads test images in memory; {held}",
        )
    return dataset


def checked_weights(model):
    """The weights ``model.pretrained`` names (a tag, hf-hub:org/name, a folder or a file) exist for the architecture
    and can be had now; weights that are not a tag are fingerprinted (``model.weights_sha256``) for the cache."""
    if model.pretrained is None:
        return model
    from bdunlearn.models import sources

    source = sources.check(model.pretrained, model.name, model.cache_dir)
    if source.kind == "tag":
        return model
    resolved = sources.locate(model.pretrained, model.cache_dir, download=True)
    return replace(model, weights_sha256=sources.fingerprint(resolved)["sha256"])


def _with_classes(dataset):
    """A user's data names its classes (and is fingerprinted, for the cache); the others are as configured."""
    dataset = datasets.with_class_names(dataset)
    checks.require(len(dataset.class_names) >= 2, f"dataset.class_names: need at least two classes ({dataset.name} has {len(dataset.class_names)})")
    return replace(dataset, files_fingerprint=datasets.files_fingerprint(dataset))


def _sized(dataset, model_image_size: int | None, where: str):
    """The dataset at the model's input size where its images are decoded from files; its size keys checked."""
    decoded = datasets.is_decoded(dataset)
    checks.require(
        decoded or (dataset.image_size is None and dataset.max_train_per_class is None),
        f"{where}.image_size / max_train_per_class apply to datasets read from image files; {dataset.name} is read as arrays",
    )
    dataset = datasets.at_model_size(dataset, model_image_size)
    checks.require(not decoded or dataset.image_size is not None, f"{where}.image_size: set the square size images are decoded at")
    return dataset


def check_controls(run: RunConfig, model_image_size: int | None) -> None:
    """Each control dataset exists as a config and its test split can be read."""
    checks.require(
        len(set(run.control_datasets)) == len(run.control_datasets),
        f"control_datasets={run.control_datasets}: a dataset is listed twice",
    )
    for name in run.control_datasets:
        checks.require(name not in ("folder", "csv", "shards"), f"control_datasets: {name} needs a dataset.root of its own; a control must be a named dataset")
        control = _sized(dataset_config(name, run.paths), model_image_size, f"control dataset {name}")
        try:
            datasets.check_available(control, need_train=not datasets.has_official_test(control))
        except UserError as exc:
            raise UserError(f"{exc} (a control dataset: drop it with control_datasets=[...])") from exc


def with_steps(run: RunConfig, training_items: int) -> RunConfig:
    """``finetune.steps`` from ``finetune.epochs`` (passes over ``training_items``), when epochs are set."""
    f = run.finetune
    if f.epochs is None:
        return run
    return replace(run, finetune=replace(f, steps=max(1, math.ceil(f.epochs * training_items / f.batch_size))))


def check_environment(run: RunConfig) -> None:
    """The defender's pool holds what the defense and inversion ask for; the device and the checkpoint exist."""
    from bdunlearn.data.splits import split_sizes

    num_train, has_test = datasets.train_size(run.dataset)
    pool = split_sizes(num_train, has_test, run.dataset.splits)["defense"]
    if run.inversion is not None:
        checks.require(
            run.inversion.num_samples <= pool,
            f"inversion.num_samples={run.inversion.num_samples} exceeds the defender's pool of {pool} {run.dataset.name} "
            "images; lower it (0: the whole pool) or raise dataset.splits.defense_fraction",
        )
    checks.require(
        run.defense.num_samples <= pool or run.setting == "contrastive",  # there, the defender's pairs (its own check)
        f"defense.num_samples={run.defense.num_samples} exceeds the defender's pool of {pool} {run.dataset.name} "
        "images; lower it or raise dataset.splits.defense_fraction",
    )
    if run.device == "cuda":
        import torch

        checks.require(torch.cuda.is_available(), "device=cuda but no CUDA GPU is visible; use device=auto or device=cpu")
    if run.backdoored_checkpoint is not None:  # a weights file, an open_clip or bdunlearn folder, or hf-hub:org/name
        from bdunlearn.models import sources

        sources.check(run.backdoored_checkpoint, run.model.name, run.model.cache_dir, key="backdoored_checkpoint")
