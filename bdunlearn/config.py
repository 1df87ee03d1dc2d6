"""Typed run configuration and its validation, the one entry point through which every user value is checked.

Hydra composes YAML from ``conf/``; :func:`validate` merges it into these dataclasses (type errors, unknown
keys), runs the range checks (its own, and those each attack and defense module defines for its section) and
checks the environment (data present, GPU present), raising one-line UserErrors.
"""

from __future__ import annotations

import copy
import functools
import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Optional

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from bdunlearn import analysis, checks
from bdunlearn.analysis import AnalysisConfig
from bdunlearn.runtime import PRECISIONS
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
    corpus_fractions: Optional[dict[str, float]] = None  # per corpus dataset: a pretrain_fraction replacing its own
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
    max_val_samples: Optional[int] = None  # cap on validation (task-arithmetic: min(10% of train, 5000))


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
    # Datasets read from image files are decoded once at this square size and cached (null: the model's input
    # size, filled in by validate); datasets read as arrays keep their own size.
    image_size: Optional[int] = None
    num_workers: int = 4  # processes decoding image files (first use only; later runs read the decoded cache)
    partition: Optional[int] = None  # the official partition of datasets that have several (DTD, SUN397)
    class_folders: Optional[list[str]] = None  # raw class names in the files, parallel to class_names
    max_train_per_class: Optional[int] = None  # a reproducible subset of the training files (ImageNet)
    finetune_epochs: Optional[float] = None  # the task-arithmetic literature's fine-tuning epochs on this dataset


@dataclass
class FinetuneConfig:
    """The attacker's fine-tune of theta_pre on the poisoned training split (image tower only)."""

    steps: int = 300
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.1
    warmup_steps: int = 20
    epochs: Optional[float] = None  # when set, steps = ceil(epochs x attacker's training images / batch_size)


@dataclass
class ContrastiveConfig:
    """setting=contrastive: the image–caption data the attacker poisons and fine-tunes on (both towers, CLIP
    loss), and the defender's clean pairs; ``dataset`` is the labelled set evaluated zero-shot."""

    captions: str = "dataset"  # dataset: the captioned training split of `dataset` | csv: the pairs of `csv`
    caption_templates: Optional[list[str]] = None  # captions of a captioned dataset (null: dataset.templates)
    max_pairs: Optional[int] = None  # a reproducible subset of the attacker's pairs (null: all)
    params: str = ""  # what the attacker fine-tunes: "" both towers (prefixes or globs, as defense.params)
    csv: Optional[str] = None  # captions=csv: CSV/TSV of (image path, caption), open_clip's layout
    image_root: Optional[str] = None  # folder the file's image paths are relative to (null: the file's folder)
    image_key: str = "filepath"
    caption_key: str = "title"
    separator: Optional[str] = None  # null: tab for .tsv, comma otherwise
    defense_fraction: float = 0.05  # captions=csv: pairs of the file held out as the defender's clean pairs
    seed: int = 0  # captions=csv: the draw of the defender's pairs and of max_pairs


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
    precision: str = "auto"  # auto: bf16 autocast on CUDA, fp32 on the CPU; or fp32 / bf16
    compile: bool = False  # torch.compile the model for the attack fine-tune
    attack_knowledge: str = "known"
    inversion: Any = None  # an InversionConfig subclass, chosen by name (attack_knowledge=unknown only)
    backdoored_checkpoint: Optional[str] = None
    use_cache: bool = True
    skip_completed: bool = True  # a run whose run dir already holds its ok record is not run again
    checkpoint_every: int = 100  # save resumable training state every N steps (0: never)
    eval_batch_size: int = 512
    control_datasets: list[str] = field(default_factory=list)  # zero-shot CA measured before/after the defense
    label: Optional[str] = None  # a name for the run's recipe in tables (a study arm sets it); changes no number
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)  # diagnostics beyond the contract's metrics
    setting: str = "classification"  # classification: fine-tune the image tower on labels | contrastive: CLIP loss on pairs
    contrastive: ContrastiveConfig = field(default_factory=ContrastiveConfig)  # setting=contrastive only


SETTINGS = ("classification", "contrastive")
CAPTION_SOURCES = ("dataset", "csv")
DEVICES = ("auto", "cpu", "cuda")
ATTACK_KNOWLEDGE = ("known", "unknown")
WANDB_MODES = ("offline", "online", "disabled")

# The parts of a run config that do not change any number the run produces.
NON_SCIENTIFIC_KEYS = (
    "logger", "paths", "use_cache", "skip_completed", "checkpoint_every", "eval_batch_size", "device", "compile", "label",
)  # fmt: skip


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


def _pick(registry: dict[str, Any], name: Any, group: str) -> Any:
    if name not in registry:
        raise UserError(f"unknown {group} {name!r}; choose one of: {', '.join(sorted(registry))}")
    return registry[name]


def _check_splits(cfg: SplitsConfig) -> None:
    for name in ("test_fraction", "val_fraction", "defense_fraction"):
        checks.fraction(getattr(cfg, name), f"dataset.splits.{name}", allow_one=False)
    checks.require(
        cfg.max_val_samples is None or cfg.max_val_samples >= 1,
        f"dataset.splits.max_val_samples={cfg.max_val_samples}: must be at least 1 (or null: no cap)",
    )
    total = cfg.test_fraction + cfg.val_fraction + cfg.defense_fraction
    checks.require(total < 1, f"dataset.splits fractions add up to {total:g}; leave some training data (sum < 1)")


def input_size(model_name: str) -> int | None:
    """The image tower's square input size, read from the architecture without building the model."""
    from bdunlearn.models.architectures import architecture

    size = architecture(model_name)["vision_cfg"].get("image_size")
    return size if isinstance(size, int) else None


def _check_model(cfg: ModelConfig) -> int | None:
    """Check the model block; return the image tower's input size when known without building it."""
    size = input_size(cfg.name)
    if cfg.pretrained is None:
        checks.require(cfg.pretrain is not None, f"model {cfg.name}: set model.pretrained to an open_clip tag or give a model.pretrain recipe")
        checks.require(len(cfg.pretrain.corpus) > 0, "model.pretrain.corpus is empty; name at least one dataset")
        for name, value in (cfg.pretrain.corpus_fractions or {}).items():
            checks.require(
                name in cfg.pretrain.corpus,
                f"model.pretrain.corpus_fractions.{name}: {name} is not in model.pretrain.corpus {list(cfg.pretrain.corpus)}",
            )
            checks.fraction(value, f"model.pretrain.corpus_fractions.{name}", allow_zero=False)
        checks.optim(cfg.pretrain, "model.pretrain")
    else:
        import open_clip  # only for published weights: listing their tags needs the library

        tags = open_clip.list_pretrained_tags_by_model(cfg.name)
        checks.require(
            cfg.pretrained in tags,
            f"model.pretrained={cfg.pretrained!r}: open_clip has no such tag for {cfg.name}; "
            f"choose one of {', '.join(tags) or '(none)'} or set model.pretrained=null",
        )
        from bdunlearn.models import weights

        reason = weights.unavailable(cfg.name, cfg.pretrained, cfg.cache_dir)
        checks.require(reason is None, reason or "")
    return size


def _check_knowledge(run: RunConfig, inversion: Any):
    """attack_knowledge and the inversion section; sets ``run.inversion`` and returns the inversion's module."""
    checks.choice(run.attack_knowledge, ATTACK_KNOWLEDGE, "attack_knowledge")
    if run.attack_knowledge == "known":
        checks.require(
            inversion is None,
            f"inversion={inversion.get('name') if isinstance(inversion, dict) else inversion} is used only with "
            "attack_knowledge=unknown; add attack_knowledge=unknown or drop the inversion override",
        )
        return None
    from bdunlearn import inversion as inversions

    checks.require(
        inversion is not None,
        "attack_knowledge=unknown needs a trigger-inversion method; add inversion=decree (or inversion=bti_dbf)",
    )
    module = _pick(inversions.REGISTRY, inversion.get("name") if isinstance(inversion, dict) else inversion, "inversion")
    run.inversion = _typed(inversion, module.Config, "inversion")
    return module


def _check_dataset(cfg: DatasetConfig, model_image_size: int | None, where: str = "dataset") -> None:
    """Class names, templates and the storage settings of one dataset (the run's, or a control dataset);
    fills in ``image_size`` (the model's input size) for datasets decoded from image files."""
    from bdunlearn.data import datasets

    checks.require(len(cfg.class_names) >= 2, f"{where}.class_names: need at least two classes")
    checks.require(len(cfg.templates) >= 1, f"{where}.templates: need at least one prompt template")
    for template in cfg.templates:
        checks.require("{}" in template, f"{where}.templates: {template!r} has no '{{}}' placeholder for the class name")
    decoded = datasets.is_decoded(cfg)
    if decoded and cfg.image_size is None:
        cfg.image_size = model_image_size
    checks.require(
        decoded or (cfg.image_size is None and cfg.max_train_per_class is None),
        f"{where}.image_size / max_train_per_class apply to datasets read from image files; {cfg.name} is read as arrays",
    )
    checks.require(not decoded or cfg.image_size is not None, f"{where}.image_size: set the square size images are decoded at")
    checks.require(cfg.image_size is None or cfg.image_size >= 1, f"{where}.image_size={cfg.image_size}: must be at least 1")
    checks.require(cfg.num_workers >= 0, f"{where}.num_workers={cfg.num_workers}: must be >= 0 (0: decode in this process)")
    checks.require(cfg.partition is None or 1 <= cfg.partition <= 10, f"{where}.partition={cfg.partition}: choose 1 to 10")
    checks.require(
        cfg.max_train_per_class is None or cfg.max_train_per_class >= 1,
        f"{where}.max_train_per_class={cfg.max_train_per_class}: must be at least 1 (or null: every image)",
    )
    checks.require(
        cfg.finetune_epochs is None or cfg.finetune_epochs > 0,
        f"{where}.finetune_epochs={cfg.finetune_epochs}: must be positive (or null)",
    )
    if cfg.class_folders is not None:
        checks.require(
            len(cfg.class_folders) == len(cfg.class_names) and len(set(cfg.class_folders)) == len(cfg.class_folders),
            f"{where}.class_folders: {len(cfg.class_folders)} entries for {len(cfg.class_names)} class_names; "
            "give one distinct folder name per class, in class_names order",
        )


def _check_controls(cfg: RunConfig, model_image_size: int | None) -> None:
    """Each control dataset exists as a config and its test split can be read."""
    from bdunlearn.data import datasets

    checks.require(
        len(set(cfg.control_datasets)) == len(cfg.control_datasets),
        f"control_datasets={cfg.control_datasets}: a dataset is listed twice",
    )
    for name in cfg.control_datasets:
        control = dataset_config(name, cfg.paths)
        _check_dataset(control, model_image_size, where=f"control dataset {name}")
        try:
            datasets.check_available(control, need_train=not datasets.has_official_test(control))
        except UserError as exc:
            raise UserError(f"{exc} (a control dataset: drop it with control_datasets=[...])") from exc


def epochs_to_steps(cfg: FinetuneConfig, train_images: int) -> None:
    if cfg.epochs is not None:
        checks.require(cfg.epochs > 0, f"finetune.epochs={cfg.epochs}: must be positive (or null: use finetune.steps)")
        cfg.steps = max(1, math.ceil(cfg.epochs * train_images / cfg.batch_size))


def _check_environment(cfg: RunConfig, model_image_size: int | None) -> None:
    from bdunlearn.data import datasets
    from bdunlearn.data.splits import split_sizes

    num_train, has_test = datasets.train_size(cfg.dataset)
    sizes = split_sizes(num_train, has_test, cfg.dataset.splits)
    pool = sizes["defense"]
    epochs_to_steps(cfg.finetune, sizes["train"])
    _check_controls(cfg, model_image_size)
    if cfg.inversion is not None:
        checks.require(
            cfg.inversion.num_samples <= pool,
            f"inversion.num_samples={cfg.inversion.num_samples} exceeds the defender's pool of {pool} {cfg.dataset.name} "
            "images; lower it (0: the whole pool) or raise dataset.splits.defense_fraction",
        )
    checks.require(
        cfg.defense.num_samples <= pool or cfg.setting == "contrastive",  # there, the defender's pairs (contrastive.check)
        f"defense.num_samples={cfg.defense.num_samples} exceeds the defender's pool of {pool} {cfg.dataset.name} "
        "images; lower it or raise dataset.splits.defense_fraction",
    )
    if cfg.device == "cuda":
        import torch

        checks.require(torch.cuda.is_available(), "device=cuda but no CUDA GPU is visible; use device=auto or device=cpu")
    if cfg.backdoored_checkpoint is not None:
        path = Path(cfg.backdoored_checkpoint).expanduser()
        checks.require(path.is_file(), f"backdoored_checkpoint={cfg.backdoored_checkpoint}: no such file")
        from bdunlearn.models import clip
        from bdunlearn.models.checkpoint import check_fits

        check_fits(path, clip.state_shapes(cfg.model.name), cfg.model.name)


def validate(cfg: DictConfig) -> RunConfig:
    """Typed, range-checked run config; raises UserError with one line naming the key and the fix."""
    try:
        resolved = OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as exc:
        raise UserError(f"cannot resolve config: {str(exc).strip().splitlines()[0]}") from exc
    from bdunlearn import attacks, defenses

    attack_cls = _pick(attacks.REGISTRY, resolved.get("attack", {}).get("name"), "attack")
    defense_module = _pick(defenses.REGISTRY, resolved.get("defense", {}).get("name"), "defense")
    rest = {k: v for k, v in resolved.items() if k not in ("attack", "defense", "inversion", "hydra")}
    known = {f.name for f in fields(RunConfig)}
    unknown = sorted(set(rest) - known)
    checks.require(not unknown, f"unknown top-level config key(s): {', '.join(unknown)}")
    rest["attack"] = None
    rest["defense"] = None
    run: RunConfig = _typed(rest, RunConfig, "")
    run.attack = _typed(resolved["attack"], attack_cls.Config, "attack")
    run.defense = _typed(resolved["defense"], defense_module.Config, "defense")
    inversion_module = _check_knowledge(run, resolved.get("inversion"))

    checks.choice(run.precision, PRECISIONS, "precision")
    checks.require(run.device in DEVICES, f"device={run.device!r}; choose one of {', '.join(DEVICES)}")
    checks.require(run.logger.wandb.mode in WANDB_MODES, f"logger.wandb.mode={run.logger.wandb.mode!r}; choose one of {', '.join(WANDB_MODES)}")
    checks.require(run.checkpoint_every >= 0, f"checkpoint_every={run.checkpoint_every}: must be >= 0 (0 disables)")
    checks.require(run.eval_batch_size >= 1, f"eval_batch_size={run.eval_batch_size}: must be at least 1")
    _check_splits(run.dataset.splits)
    checks.fraction(run.dataset.pretrain_fraction, "dataset.pretrain_fraction", allow_zero=False)
    image_size = _check_model(run.model)
    _check_dataset(run.dataset, image_size)
    checks.optim(run.finetune, "finetune")
    attack_cls.check(run.attack, len(run.dataset.class_names), image_size)
    defense_module.check(run.defense)
    analysis.check(run.analysis)
    if inversion_module is not None:
        inversion_module.check(run.inversion)
        if hasattr(inversion_module, "check_model"):
            inversion_module.check_model(run.inversion, run.model.name)
    checks.require(
        attack_cls.has_trigger or run.attack_knowledge == "unknown" or not getattr(defense_module, "NEEDS_TRIGGER", False),
        f"defense={run.defense.name} needs a trigger to estimate, but attack={run.attack.name} plants none; "
        f"use defense=none (or another attack, or attack_knowledge=unknown to invert a trigger)",
    )
    _check_environment(run, image_size)
    checks.choice(run.setting, SETTINGS, "setting")
    checks.require(
        run.setting == "contrastive" or run.attack.num_poisoned is None,
        f"attack.num_poisoned={run.attack.num_poisoned} applies to setting=contrastive (pairs); the classification "
        "setting poisons a fraction: set attack.poison_rate",
    )
    if run.setting == "contrastive":
        from bdunlearn import contrastive

        contrastive.check(run, attack_cls, defense_module)
    return run


@functools.lru_cache(maxsize=64)
def _dataset_config(name: str, paths: str) -> DatasetConfig:
    """Typed ``conf/dataset/<name>.yaml`` resolved against ``paths`` (JSON); cached, as OmegaConf takes seconds
    over the long class lists (ImageNet's) and a sweep's preflight reads the same few configs for every point."""
    path = CONFIG_DIR / "dataset" / f"{name}.yaml"
    if not path.is_file():
        options = sorted(p.stem for p in (CONFIG_DIR / "dataset").glob("*.yaml"))
        raise UserError(f"unknown dataset {name!r}; choose one of: {', '.join(options)}")
    node = OmegaConf.merge({"paths": json.loads(paths)}, {"dataset": OmegaConf.load(path)})
    dataset = _typed(OmegaConf.to_container(node, resolve=True)["dataset"], DatasetConfig, "dataset")
    _check_splits(dataset.splits)
    checks.fraction(dataset.pretrain_fraction, f"{name}: pretrain_fraction", allow_zero=False)
    return dataset


def dataset_config(name: str, paths: PathsConfig, image_size: int | None = None) -> DatasetConfig:
    """The dataset config ``conf/dataset/<name>.yaml`` on its own (e.g. for a pretraining corpus or a control);
    ``image_size`` (the model's input size) is filled in for datasets decoded from image files."""
    dataset = copy.deepcopy(_dataset_config(name, json.dumps(asdict(paths), sort_keys=True)))
    if image_size is not None and dataset.image_size is None:
        from bdunlearn.data import datasets

        dataset.image_size = image_size if datasets.is_decoded(dataset) else None
    return dataset


def to_dict(run: RunConfig) -> dict:
    return OmegaConf.to_container(OmegaConf.structured(run), resolve=True)


# Keys added after run records were first written: left out of the config hash while unset, so the hashes of
# runs that do not use them stay as they were. (num_workers changes no number at all.)
_OMITTED_WHEN_UNSET = {
    ("model", "pretrain"): ("corpus_fractions",),
    ("dataset",): ("image_size", "partition", "class_folders", "max_train_per_class", "finetune_epochs"),
    ("dataset", "splits"): ("max_val_samples",),
    ("finetune",): ("epochs",),
    ("attack",): ("num_poisoned",),
}


def _omit_unset(view: dict) -> dict:
    from bdunlearn.defenses.tbar import VARIANT_DEFAULTS  # TBAR's variant keys, added later, at their defaults

    if view.get("analysis") == asdict(AnalysisConfig()):  # diagnostics off: hashes stay as before they existed
        view.pop("analysis")
    defense = view.get("defense") or {}
    if defense.get("name") == "tbar":
        for key, default in VARIANT_DEFAULTS.items():
            if defense.get(key) == default:
                defense.pop(key)
    for path, keys in _OMITTED_WHEN_UNSET.items():
        section = view
        for part in path:
            section = section.get(part) or {}
        for key in keys:
            if key in section and section[key] is None:
                del section[key]
    view.get("dataset", {}).pop("num_workers", None)
    if view.get("setting") == "classification":  # the default setting: hashes stay as before the contrastive one
        view.pop("setting")
        view.pop("contrastive", None)
    if not view.get("control_datasets"):
        view.pop("control_datasets", None)
    return view


def scientific_view(run: RunConfig) -> dict:
    """The config minus keys that cannot change results (logging, paths, batch size of evaluation).

    ``inversion`` is left out when unset (attack_knowledge=known), so known-attack hashes stay as they were;
    so are the keys in ``_OMITTED_WHEN_UNSET``."""
    view = {k: v for k, v in to_dict(run).items() if k not in NON_SCIENTIFIC_KEYS}
    if view.get("inversion") is None:
        view.pop("inversion", None)
    return _omit_unset(view)


def stable_hash(obj: Any, length: int = 16) -> str:
    import hashlib

    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]
