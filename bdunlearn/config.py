"""Typed run configuration and its validation: the one place a user's values are checked.

Hydra composes YAML from ``conf/``; :func:`validate` merges it into these dataclasses (type errors, unknown
keys) and checks ranges and the environment (data present, GPU present), raising one-line UserErrors.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Optional

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from bdunlearn.errors import UserError

CONFIG_DIR = Path(__file__).resolve().parent.parent / "conf"


@dataclass
class PathsConfig:
    data_dir: str = "data"
    cache_dir: str = "~/.cache/bdunlearn"


@dataclass
class PretrainConfig:
    """Contrastive pretraining of a model that has no published weights (the project's tiny CLIP)."""

    corpus: list[str] = MISSING  # dataset configs whose training images (their pretrain_fraction), captioned, form the corpus
    steps: int = 300
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.1
    warmup_steps: int = 20
    seed: int = 0


@dataclass
class ModelConfig:
    name: str = MISSING  # open_clip architecture name
    pretrained: Optional[str] = None  # open_clip pretrained tag; null: use `pretrain`
    cache_dir: Optional[str] = None  # where open_clip keeps downloaded weights
    pretrain: Optional[PretrainConfig] = None


@dataclass
class SplitsConfig:
    test_fraction: float = 0.2  # only for datasets without an official test split
    val_fraction: float = 0.1
    defense_fraction: float = 0.1
    seed: int = 0


@dataclass
class DatasetConfig:
    name: str = MISSING
    root: str = MISSING
    class_names: list[str] = MISSING
    templates: list[str] = MISSING
    splits: SplitsConfig = field(default_factory=SplitsConfig)
    download: bool = False
    source_dir: Optional[str] = None  # a local copy to unpack from (e.g. a Debian data package)
    # Fraction of the training split that appears, captioned, in the pretraining corpus of models without
    # published weights. Small, so that theta_pre is weak on this task and fine-tuning adds clean accuracy.
    pretrain_fraction: float = 0.1


@dataclass
class AttackConfig:
    name: str = MISSING
    target_class: int = 0
    poison_rate: float = 0.1


@dataclass
class BadNetsConfig(AttackConfig):
    patch_size: int = 3
    pattern: str = "white"
    location: str = "bottom_right"
    pattern_seed: int = 0


@dataclass
class FinetuneConfig:
    """The attacker's fine-tune of theta_pre on the poisoned training split (image tower only)."""

    steps: int = 300
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.1
    warmup_steps: int = 20


@dataclass
class DefenseConfig:
    name: str = MISSING
    num_samples: int = 0  # samples of the defender's clean pool the defense may use


@dataclass
class TbarConfig(DefenseConfig):
    num_samples: int = 100
    clean_fraction: float = 0.0  # fraction of the samples left clean (own labels) instead of triggered
    start: str = "backdoored"  # fine-tune the trigger vector from theta_b ("backdoored") or theta_pre
    params: str = "visual"  # parameter-name prefix that is fine-tuned (and so spans the trigger vector)
    steps: int = 100
    batch_size: int = 32
    lr: float = 1e-4
    weight_decay: float = 0.0
    warmup_steps: int = 0
    alpha_grid: list[float] = field(default_factory=lambda: [0.0, 0.5, 1.0, 1.5, 2.0])
    kappa: float = 0.95  # keep alphas whose validation CA >= kappa * CA(theta_b)


@dataclass
class WandbConfig:
    mode: str = "offline"
    project: str = "bdunlearn"
    entity: Optional[str] = None
    group: Optional[str] = None
    tags: list[str] = field(default_factory=list)


@dataclass
class LoggerConfig:
    wandb: WandbConfig = field(default_factory=WandbConfig)


@dataclass
class RunConfig:
    model: ModelConfig
    dataset: DatasetConfig
    attack: Any  # an AttackConfig subclass, chosen by name
    defense: Any  # a DefenseConfig subclass, chosen by name
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    seed: int = 0
    device: str = "auto"
    attack_knowledge: str = "known"
    backdoored_checkpoint: Optional[str] = None
    use_cache: bool = True
    eval_batch_size: int = 512


ATTACK_SCHEMAS: dict[str, type[AttackConfig]] = {"badnets": BadNetsConfig}
DEFENSE_SCHEMAS: dict[str, type[DefenseConfig]] = {"none": DefenseConfig, "tbar": TbarConfig}
DEVICES = ("auto", "cpu", "cuda")
WANDB_MODES = ("offline", "online", "disabled")

# The parts of a run config that do not change any number the run produces.
NON_SCIENTIFIC_KEYS = ("logger", "paths", "use_cache", "eval_batch_size", "device")


def _typed(node: Any, schema: type, where: str):
    """Merge a composed config node into ``schema``; type errors and unknown keys become UserErrors."""
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), node)
        return OmegaConf.to_object(merged)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None) or ""
        message = str(exc).strip().splitlines()[0]
        if where and key and not key.startswith(where):
            key = f"{where}.{key}"
        key = key or where or "(root)"
        raise UserError(f"invalid config at {key}: {message}") from exc


def _pick(registry: dict[str, type], name: Any, group: str) -> type:
    if name not in registry:
        raise UserError(f"unknown {group} {name!r}; choose one of: {', '.join(sorted(registry))}")
    return registry[name]


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise UserError(message)


def _check_fraction(value: float, key: str, *, allow_zero: bool = True, allow_one: bool = True) -> None:
    low_ok = value >= 0 if allow_zero else value > 0
    high_ok = value <= 1 if allow_one else value < 1
    low, high = "[" if allow_zero else "(", "]" if allow_one else ")"
    _check(low_ok and high_ok, f"{key}={value} is out of range; it must lie in {low}0, 1{high}")


def _check_optim(cfg: Any, where: str) -> None:
    _check(cfg.steps >= 1, f"{where}.steps={cfg.steps}: must be at least 1")
    _check(cfg.batch_size >= 1, f"{where}.batch_size={cfg.batch_size}: must be at least 1")
    _check(cfg.lr > 0, f"{where}.lr={cfg.lr}: must be positive")
    _check(cfg.weight_decay >= 0, f"{where}.weight_decay={cfg.weight_decay}: must be non-negative")
    _check(cfg.warmup_steps >= 0, f"{where}.warmup_steps={cfg.warmup_steps}: must be non-negative")


def _check_splits(cfg: SplitsConfig) -> None:
    for name in ("test_fraction", "val_fraction", "defense_fraction"):
        _check_fraction(getattr(cfg, name), f"dataset.splits.{name}", allow_one=False)
    total = cfg.test_fraction + cfg.val_fraction + cfg.defense_fraction
    _check(total < 1, f"dataset.splits fractions add up to {total:g}; leave some training data (sum < 1)")


def _check_attack(cfg: Any, num_classes: int, image_size: int | None) -> None:
    from bdunlearn.attacks import badnets

    _check(
        0 <= cfg.target_class < num_classes,
        f"attack.target_class={cfg.target_class} is out of range; the dataset has classes 0..{num_classes - 1}",
    )
    _check_fraction(cfg.poison_rate, "attack.poison_rate", allow_zero=False)
    if cfg.name == "badnets":
        _check(cfg.pattern in badnets.PATTERNS, f"attack.pattern={cfg.pattern!r}; choose one of {', '.join(badnets.PATTERNS)}")
        _check(cfg.location in badnets.LOCATIONS, f"attack.location={cfg.location!r}; choose one of {', '.join(badnets.LOCATIONS)}")
        _check(cfg.patch_size >= 1, f"attack.patch_size={cfg.patch_size}: must be at least 1")
        if image_size is not None:
            _check(cfg.patch_size <= image_size, f"attack.patch_size={cfg.patch_size} exceeds the model's {image_size}px input")


def _check_defense(cfg: Any) -> None:
    if cfg.name == "none":
        return
    _check(cfg.num_samples >= 1, f"defense.num_samples={cfg.num_samples}: must be at least 1")
    if cfg.name == "tbar":
        _check_optim(cfg, "defense")
        _check(len(cfg.alpha_grid) > 0, "defense.alpha_grid is empty; give at least one alpha >= 0")
        _check(all(a >= 0 for a in cfg.alpha_grid), f"defense.alpha_grid={cfg.alpha_grid}: alphas must be >= 0")
        _check(0 < cfg.kappa <= 1, f"defense.kappa={cfg.kappa} is out of range; it must lie in (0, 1]")
        _check_fraction(cfg.clean_fraction, "defense.clean_fraction", allow_one=False)
        _check(cfg.start in ("backdoored", "pretrained"), f"defense.start={cfg.start!r}; choose backdoored or pretrained")


def _check_model(cfg: ModelConfig) -> int | None:
    """Check the model block; return the image tower's input size when known without building it."""
    from bdunlearn.models import clip

    arch = clip.architecture(cfg.name)
    if cfg.pretrained is None:
        _check(cfg.pretrain is not None, f"model {cfg.name}: set model.pretrained to an open_clip tag or give a model.pretrain recipe")
        _check(len(cfg.pretrain.corpus) > 0, "model.pretrain.corpus is empty; name at least one dataset")
        _check_optim(cfg.pretrain, "model.pretrain")
    size = arch["vision_cfg"].get("image_size")
    return size if isinstance(size, int) else None


def _check_environment(cfg: RunConfig) -> None:
    from bdunlearn.data import datasets

    datasets.check_available(cfg.dataset)
    if cfg.device == "cuda":
        import torch

        _check(torch.cuda.is_available(), "device=cuda but no CUDA GPU is visible; use device=auto or device=cpu")
    if cfg.backdoored_checkpoint is not None:
        path = Path(cfg.backdoored_checkpoint).expanduser()
        _check(path.is_file(), f"backdoored_checkpoint={cfg.backdoored_checkpoint}: no such file")


def validate(cfg: DictConfig) -> RunConfig:
    """Typed, range-checked run config; raises UserError with one line naming the key and the fix."""
    try:
        resolved = OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as exc:
        raise UserError(f"cannot resolve config: {str(exc).strip().splitlines()[0]}") from exc
    attack_schema = _pick(ATTACK_SCHEMAS, resolved.get("attack", {}).get("name"), "attack")
    defense_schema = _pick(DEFENSE_SCHEMAS, resolved.get("defense", {}).get("name"), "defense")
    rest = {k: v for k, v in resolved.items() if k not in ("attack", "defense", "hydra")}
    known = {f.name for f in fields(RunConfig)}
    unknown = sorted(set(rest) - known)
    _check(not unknown, f"unknown top-level config key(s): {', '.join(unknown)}")
    rest["attack"] = None
    rest["defense"] = None
    run: RunConfig = _typed(rest, RunConfig, "")
    run.attack = _typed(resolved["attack"], attack_schema, "attack")
    run.defense = _typed(resolved["defense"], defense_schema, "defense")

    _check(run.device in DEVICES, f"device={run.device!r}; choose one of {', '.join(DEVICES)}")
    _check(run.attack_knowledge == "known", f"attack_knowledge={run.attack_knowledge!r}: only 'known' is implemented so far")
    _check(run.logger.wandb.mode in WANDB_MODES, f"logger.wandb.mode={run.logger.wandb.mode!r}; choose one of {', '.join(WANDB_MODES)}")
    _check(run.eval_batch_size >= 1, f"eval_batch_size={run.eval_batch_size}: must be at least 1")
    _check(len(run.dataset.class_names) >= 2, "dataset.class_names: need at least two classes")
    _check(len(run.dataset.templates) >= 1, "dataset.templates: need at least one prompt template")
    for template in run.dataset.templates:
        _check("{}" in template, f"dataset.templates: {template!r} has no '{{}}' placeholder for the class name")
    _check_splits(run.dataset.splits)
    _check_fraction(run.dataset.pretrain_fraction, "dataset.pretrain_fraction", allow_zero=False)
    image_size = _check_model(run.model)
    _check_optim(run.finetune, "finetune")
    _check_attack(run.attack, len(run.dataset.class_names), image_size)
    _check_defense(run.defense)
    _check_environment(run)
    return run


def dataset_config(name: str, paths: PathsConfig) -> DatasetConfig:
    """The dataset config ``conf/dataset/<name>.yaml`` on its own (e.g. for a pretraining corpus)."""
    path = CONFIG_DIR / "dataset" / f"{name}.yaml"
    if not path.is_file():
        options = sorted(p.stem for p in (CONFIG_DIR / "dataset").glob("*.yaml"))
        raise UserError(f"unknown dataset {name!r}; choose one of: {', '.join(options)}")
    node = OmegaConf.merge({"paths": OmegaConf.structured(paths)}, {"dataset": OmegaConf.load(path)})
    dataset = _typed(OmegaConf.to_container(node, resolve=True)["dataset"], DatasetConfig, "dataset")
    _check_splits(dataset.splits)
    _check_fraction(dataset.pretrain_fraction, f"{name}: pretrain_fraction", allow_zero=False)
    return dataset


def to_dict(run: RunConfig) -> dict:
    return OmegaConf.to_container(OmegaConf.structured(run), resolve=True)


def scientific_view(run: RunConfig) -> dict:
    """The config minus keys that cannot change results (logging, paths, batch size of evaluation)."""
    return {k: v for k, v in to_dict(run).items() if k not in NON_SCIENTIFIC_KEYS}


def stable_hash(obj: Any, length: int = 16) -> str:
    import hashlib

    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]
