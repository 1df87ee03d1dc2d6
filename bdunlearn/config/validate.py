"""Pure validation of a composed run config: types, unknown keys and value ranges, with one-line UserErrors.

Reads the config and reports; never changes it and never touches files, data or devices (those checks are
:mod:`bdunlearn.preflight`'s). The plug-ins' own checks run through the registry the caller hands in, so this
package imports no stage.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from bdunlearn.config import checks
from bdunlearn.config.schema import (
    ATTACK_KNOWLEDGE,
    DEVICES,
    PRECISIONS,
    SAVE_DTYPES,
    SAVE_MODEL,
    SETTINGS,
    STORAGE,
    WANDB_MODES,
    AnalysisConfig,
    DatasetConfig,
    ModelConfig,
    RunConfig,
    SplitsConfig,
)  # fmt: skip
from bdunlearn.errors import UserError
from bdunlearn.models.architectures import architecture


def typed(node: Any, schema: type, where: str):
    """Merge a config node into ``schema``; type errors and unknown keys become UserErrors."""
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), node)
        return OmegaConf.to_object(merged)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None) or ""
        message = str(exc).strip().splitlines()[0]
        if where and key and not key.startswith(where):
            key = f"{where}.{key}"
        key = key or where or "(root)"
        if isinstance(exc, MissingMandatoryValue):
            raise UserError(f"{key} must be set: add {key}=... to the command line") from exc
        raise UserError(f"invalid config at {key}: {message}") from exc


def pick(registry: dict[str, Any], name: Any, group: str) -> Any:
    if name not in registry:
        raise UserError(f"unknown {group} {name!r}; choose one of: {', '.join(sorted(registry))}")
    return registry[name]


def input_size(model_name: str) -> int | None:
    """The image tower's square input size, read from the architecture without building the model."""
    size = architecture(model_name)["vision_cfg"].get("image_size")
    return size if isinstance(size, int) else None


def check_splits(cfg: SplitsConfig, where: str = "dataset") -> None:
    for name in ("test_fraction", "val_fraction", "defense_fraction"):
        checks.fraction(getattr(cfg, name), f"{where}.splits.{name}", allow_one=False)
    checks.require(
        cfg.max_val_samples is None or cfg.max_val_samples >= 1,
        f"{where}.splits.max_val_samples={cfg.max_val_samples}: must be at least 1 (or null: no cap)",
    )
    total = cfg.test_fraction + cfg.val_fraction + cfg.defense_fraction
    checks.require(total < 1, f"{where}.splits fractions add up to {total:g}; leave some training data (sum < 1)")


def check_dataset_values(cfg: DatasetConfig, where: str = "dataset") -> None:
    """Class names, templates, splits and the storage settings of one dataset (the run's, a corpus's, a control's)."""
    check_splits(cfg.splits, where)
    checks.fraction(cfg.pretrain_fraction, f"{where}.pretrain_fraction", allow_zero=False)
    # empty: a user's folder or CSV names its classes itself (filled in at preflight)
    checks.require(len(cfg.class_names) != 1, f"{where}.class_names: need at least two classes")
    checks.require(len(cfg.templates) >= 1, f"{where}.templates: need at least one prompt template")
    for template in cfg.templates:
        checks.require("{}" in template, f"{where}.templates: {template!r} has no '{{}}' placeholder for the class name")
    checks.require(cfg.image_size is None or cfg.image_size >= 1, f"{where}.image_size={cfg.image_size}: must be at least 1")
    checks.require(cfg.num_workers >= 0, f"{where}.num_workers={cfg.num_workers}: must be >= 0 (0: decode in this process)")
    checks.choice(cfg.storage, STORAGE, f"{where}.storage")
    checks.require(
        cfg.memory_budget_gb is None or cfg.memory_budget_gb > 0,
        f"{where}.memory_budget_gb={cfg.memory_budget_gb}: must be positive (or null: a quarter of the free memory)",
    )
    checks.require(cfg.partition is None or 1 <= cfg.partition <= 10, f"{where}.partition={cfg.partition}: choose 1 to 10")
    checks.require(
        cfg.max_train_per_class is None or cfg.max_train_per_class >= 1,
        f"{where}.max_train_per_class={cfg.max_train_per_class}: must be at least 1 (or null: every image)",
    )
    checks.require(
        cfg.finetune_epochs is None or cfg.finetune_epochs > 0,
        f"{where}.finetune_epochs={cfg.finetune_epochs}: must be positive (or null)",
    )
    if cfg.name == "shards":
        check_shards(cfg, where)
    if cfg.class_folders is not None:
        checks.require(
            len(cfg.class_folders) == len(cfg.class_names) and len(set(cfg.class_folders)) == len(cfg.class_folders),
            f"{where}.class_folders: {len(cfg.class_folders)} entries for {len(cfg.class_names)} class_names; "
            "give one distinct folder name per class, in class_names order",
        )


def check_shards(cfg: DatasetConfig, where: str = "dataset") -> None:
    """dataset=shards: streamed (a shard set is read in order and batched from a shuffle buffer, so held in
    memory it would train on other batches under the same cache keys) and free of the file datasets' keys."""
    checks.require(
        cfg.storage != "memory",
        f"{where}.storage=memory: dataset=shards always streams its shards; use dataset.storage=auto or stream "
        "(or dataset=folder on the images the shards were written from, to hold them in memory)",
    )
    for key in ("partition", "class_folders", "max_train_per_class"):
        checks.require(getattr(cfg, key) is None, f"{where}.{key} does not apply to dataset=shards; drop it")


def check_model(cfg: ModelConfig) -> None:
    """The model block (the tag's availability is a preflight check: it needs open_clip and the weights' files)."""
    architecture(cfg.name)
    if cfg.pretrained is not None:
        return
    checks.require(len(cfg.pretrain.corpus) > 0, "model.pretrain.corpus is empty; name at least one dataset")
    for name, value in (cfg.pretrain.corpus_fractions or {}).items():
        checks.require(
            name in cfg.pretrain.corpus,
            f"model.pretrain.corpus_fractions.{name}: {name} is not in model.pretrain.corpus {list(cfg.pretrain.corpus)}",
        )
        checks.fraction(value, f"model.pretrain.corpus_fractions.{name}", allow_zero=False)
    checks.optim(cfg.pretrain, "model.pretrain")


def check_analysis(cfg: AnalysisConfig) -> None:
    checks.require(
        not cfg.disentanglement_grid or cfg.clean_reference,
        "analysis.disentanglement_grid needs the clean reference model; add analysis.clean_reference=true",
    )
    checks.require(all(a >= 0 for a in cfg.disentanglement_grid), f"analysis.disentanglement_grid={cfg.disentanglement_grid}: alphas must be >= 0")
    checks.require(cfg.disentanglement_samples >= 1, f"analysis.disentanglement_samples={cfg.disentanglement_samples}: must be at least 1")
    checks.require(cfg.disentangled_below > 0, f"analysis.disentangled_below={cfg.disentangled_below}: must be positive")


def _typed_inversion(run: RunConfig, inversion: Any, registry: dict):
    """attack_knowledge and the inversion section: the typed inversion config (None when the attack is known)."""
    checks.choice(run.attack_knowledge, ATTACK_KNOWLEDGE, "attack_knowledge")
    name = inversion.get("name") if isinstance(inversion, dict) else inversion
    if run.attack_knowledge == "known":
        checks.require(
            inversion is None,
            f"inversion={name} is used only with attack_knowledge=unknown; add attack_knowledge=unknown or drop the inversion override",
        )
        return None
    checks.require(
        inversion is not None,
        "attack_knowledge=unknown needs a trigger-inversion method; add inversion=decree (or inversion=bti_dbf)",
    )
    return typed(inversion, pick(registry, name, "inversion").Config, "inversion")


def validate(cfg: DictConfig | dict, plugins) -> RunConfig:
    """The typed, range-checked run config; raises UserError with one line naming the key and the fix.

    ``plugins`` (``bdunlearn.plugins.registry()``) types and checks the attack, defense and inversion sections."""
    if isinstance(cfg, DictConfig):
        try:
            cfg = OmegaConf.to_container(cfg, resolve=True)
        except OmegaConfBaseException as exc:
            raise UserError(f"cannot resolve config: {str(exc).strip().splitlines()[0]}") from exc
    attack_cls = pick(plugins.attacks, cfg.get("attack", {}).get("name"), "attack")
    defense = pick(plugins.defenses, cfg.get("defense", {}).get("name"), "defense")
    rest = {k: v for k, v in cfg.items() if k not in ("attack", "defense", "inversion", "hydra")}
    unknown = sorted(set(rest) - set(RunConfig.__dataclass_fields__))
    checks.require(not unknown, f"unknown top-level config key(s): {', '.join(unknown)}")
    run: RunConfig = typed({**rest, "attack": None, "defense": None}, RunConfig, "")
    run.attack = typed(cfg["attack"], attack_cls.Config, "attack")
    run.defense = typed(cfg["defense"], defense.Config, "defense")
    run.inversion = _typed_inversion(run, cfg.get("inversion"), plugins.inversions)

    checks.choice(run.precision, PRECISIONS, "precision")
    checks.require(run.device in DEVICES, f"device={run.device!r}; choose one of {', '.join(DEVICES)}")
    checks.require(run.logger.wandb.mode in WANDB_MODES, f"logger.wandb.mode={run.logger.wandb.mode!r}; choose one of {', '.join(WANDB_MODES)}")
    checks.require(run.checkpoint_every >= 0, f"checkpoint_every={run.checkpoint_every}: must be >= 0 (0 disables)")
    checks.require(run.eval_batch_size >= 1, f"eval_batch_size={run.eval_batch_size}: must be at least 1")
    check_dataset_values(run.dataset)
    check_model(run.model)
    checks.optim(run.finetune, "finetune")
    checks.require(
        run.finetune.epochs is None or run.finetune.epochs > 0,
        f"finetune.epochs={run.finetune.epochs}: must be positive (or null: use finetune.steps)",
    )
    attack_cls.check(run.attack, len(run.dataset.class_names) or None, input_size(run.model.name))
    defense.check(run.defense)
    check_analysis(run.analysis)
    if run.inversion is not None:
        inversion = plugins.inversions[run.inversion.name]
        inversion.check(run.inversion)
        if hasattr(inversion, "check_model"):
            inversion.check_model(run.inversion, run.model.name)
    checks.require(
        attack_cls.has_trigger or run.attack_knowledge == "unknown" or not getattr(defense, "NEEDS_TRIGGER", False),
        f"defense={run.defense.name} needs a trigger to estimate, but attack={run.attack.name} plants none; "
        f"use defense=none (or another attack, or attack_knowledge=unknown to invert a trigger)",
    )
    checks.choice(run.setting, SETTINGS, "setting")
    checks.require(
        run.dataset.name != "shards" or run.setting == "classification",
        "dataset=shards trains the classification setting; use setting=classification",
    )
    checks.choice(str(run.save_model).lower(), SAVE_MODEL, "save_model")
    checks.choice(run.save_model_dtype, SAVE_DTYPES, "save_model_dtype")
    repo = run.hf_hub.repo_id
    checks.require(repo is None or repo.count("/") == 1, f"hf_hub.repo_id={repo!r}: give it as org/name")
    return run
