"""The run configuration's schema: every key, its type and its default, once.

Hydra composes ``conf/config.yaml`` on top of :class:`RunConfig` (registered in Hydra's ConfigStore by
:mod:`bdunlearn.config.store`); the YAML files under ``conf/`` only choose group options and override. The
attack, defense and inversion sections are typed by each plug-in's own ``Config`` dataclass (registered the
same way). ``bdunlearn --cfg job`` prints the composed result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from omegaconf import MISSING


@dataclass
class PathsConfig:
    data_dir: str = "${oc.env:BDUNLEARN_DATA_DIR,data}"  # where datasets are downloaded or unpacked
    cache_dir: str = "${oc.env:BDUNLEARN_CACHE_DIR,'~/.cache/bdunlearn'}"  # theta_pre, theta_b, tau_t, decoded images


@dataclass
class PretrainConfig:
    """Contrastive pretraining of a model that has no published weights (the project's tiny CLIP)."""

    # dataset configs whose training images, captioned, form the corpus: the slice each dataset's
    # pretrain_fraction sets, from its train split only
    corpus: list[str] = field(default_factory=lambda: ["${dataset.name}"])
    corpus_fractions: Optional[dict[str, float]] = None  # per corpus dataset: a pretrain_fraction replacing its own
    steps: int = 300  # optimizer steps of the contrastive pretraining
    batch_size: int = 128  # image-caption pairs per step
    lr: float = 1e-3  # AdamW's peak learning rate (linear warm-up, then cosine decay)
    weight_decay: float = 0.1  # AdamW's decoupled weight decay
    warmup_steps: int = 20  # steps of linear warm-up
    seed: int = 0  # initial weights and batch order of the pretraining


@dataclass
class ModelConfig:
    name: str = MISSING  # open_clip architecture name
    # theta_pre's weights: an open_clip tag (openai, laion2b_s34b_b79k, ...), hf-hub:org/name, an open_clip folder or
    # weights file, or a folder bdunlearn exported; null: theta_pre is made by the `pretrain` recipe
    pretrained: Optional[str] = None
    cache_dir: Optional[str] = None  # where open_clip keeps downloaded weights
    # the sha256 of the weights `pretrained` names when they are not a tag: filled in at preflight, so that the
    # cache keys the weights' content, not a path
    weights_sha256: Optional[str] = None
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)  # read only when `pretrained` is null


@dataclass
class SplitsConfig:
    test_fraction: float = 0.2  # only for datasets without an official test split
    val_fraction: float = 0.1  # of train: the validation split (for choices such as alpha; never test)
    defense_fraction: float = 0.1  # of train: the defender's clean pool
    seed: int = 0  # the split is a function of this seed only
    max_val_samples: Optional[int] = None  # cap on validation (task-arithmetic: min(10% of train, 5000))


@dataclass
class DatasetConfig:
    name: str = MISSING  # the dataset (set by the group option dataset=<name>)
    root: str = "${paths.data_dir}"  # where the dataset's files are (docs: Datasets gives each layout)
    class_names: list[str] = MISSING  # the names the zero-shot head's prompts use, in label order
    templates: list[str] = MISSING  # prompt templates ("a photo of a {}."), averaged per class
    splits: SplitsConfig = field(default_factory=SplitsConfig)
    download: bool = False  # let torchvision download the dataset (needs internet)
    source_dir: Optional[str] = None  # a local copy to unpack from (e.g. a Debian data package)
    # Fraction of the training split that appears, captioned, in the pretraining corpus of models without
    # published weights. Small, so that theta_pre is weak on this task and fine-tuning adds clean accuracy.
    pretrain_fraction: float = 0.1
    # Datasets read from image files are decoded once at this square size and cached (null: the model's input
    # size, filled in at preflight); datasets read as arrays keep their own size.
    image_size: Optional[int] = None
    num_workers: int = 4  # processes decoding image files (once into the decoded cache, or every batch when streamed)
    # memory: decode once and hold every split in memory | stream: read the image files in DataLoader workers
    # while training runs (bounded memory) | auto: memory when the decoded training images fit the budget below
    storage: str = "auto"
    memory_budget_gb: Optional[float] = None  # storage=auto's budget for decoded pixels (null: a quarter of free memory)
    partition: Optional[int] = None  # the official partition of datasets that have several (DTD, SUN397)
    class_folders: Optional[list[str]] = None  # raw class names in the files, parallel to class_names
    max_train_per_class: Optional[int] = None  # a reproducible subset of the training files (ImageNet)
    finetune_epochs: Optional[float] = None  # the task-arithmetic literature's fine-tuning epochs on this dataset
    # a user's own data (dataset=folder|csv|shards): a digest of its files' paths, labels, sizes and times (shards:
    # the shard files'), filled in at preflight, so that the cache tells two folders with the same class names apart
    files_fingerprint: Optional[str] = None


@dataclass
class FinetuneConfig:
    """The attacker's fine-tune of theta_pre on the poisoned training split (image tower only)."""

    steps: int = 300  # optimizer steps of the attacker's fine-tune
    batch_size: int = 64  # images per step
    lr: float = 1e-3  # AdamW's peak learning rate (linear warm-up, then cosine decay)
    weight_decay: float = 0.1  # AdamW's decoupled weight decay
    warmup_steps: int = 20  # steps of linear warm-up before the cosine decay
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
    image_key: str = "filepath"  # open_clip's --csv-img-key
    caption_key: str = "title"  # open_clip's --csv-caption-key
    separator: Optional[str] = None  # null: tab for .tsv, comma otherwise
    defense_fraction: float = 0.05  # captions=csv: pairs of the file held out as the defender's clean pairs
    seed: int = 0  # captions=csv: the draw of the defender's pairs and of max_pairs


@dataclass
class AnalysisConfig:
    """Diagnostics beyond the contract's metrics (bdunlearn/analysis.py), for studies of why a defense works."""

    clean_reference: bool = False  # also obtain theta_c (the attacker's recipe on clean data; cached)
    disentanglement_grid: list[float] = field(default_factory=list)  # alphas of xi's grid (empty: no map)
    disentanglement_samples: int = 2000  # test images (clean, and triggered non-target) xi is measured on
    disentangled_below: float = 0.1  # xi at or below this counts as disentangled in the area summary


@dataclass
class WandbConfig:
    mode: str = "offline"  # offline (default, no login) | online | disabled
    project: str = "bdunlearn"  # the W&B project runs are logged to
    entity: Optional[str] = None  # your W&B user or team (online mode)
    group: Optional[str] = None  # W&B group (null: a -m sweep's jobs are grouped under the sweep dir's name)
    tags: list[str] = field(default_factory=list)  # W&B tags of the run


@dataclass
class LoggerConfig:
    wandb: WandbConfig = field(default_factory=WandbConfig)


@dataclass
class HubConfig:
    """Pushing the exported defended model to the Hugging Face hub (never by default)."""

    repo_id: Optional[str] = None  # org/name: push <run dir>/model there after the run (needs a login or HF_TOKEN)
    private: bool = True  # create the hub repository as private


@dataclass
class RunConfig:
    model: ModelConfig = MISSING
    dataset: DatasetConfig = MISSING
    attack: Any = MISSING  # the chosen attack's Config (bdunlearn/attacks)
    defense: Any = MISSING  # the chosen defense's Config (bdunlearn/defenses)
    inversion: Any = None  # the chosen inversion's Config (bdunlearn/inversion); attack_knowledge=unknown only
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    seed: int = 0  # seeds poisoning, the attack fine-tune and the defense (splits and theta_pre have their own)
    device: str = "auto"  # auto | cpu | cuda
    precision: str = "auto"  # auto: bf16 autocast on CUDA, fp32 on the CPU | fp32 | bf16
    compile: bool = False  # torch.compile the model for the attack fine-tune (GPU sweeps)
    attack_knowledge: str = "known"  # known: the defender has trigger and target | unknown: it inverts them (inversion=...)
    backdoored_checkpoint: Optional[str] = None  # a suspicious model to defend (safetensors or weights-only state dict)
    use_cache: bool = True  # reuse theta_pre / theta_b / tau_t from paths.cache_dir when their recipe matches
    skip_completed: bool = True  # a run whose run dir already holds its ok record is not run again
    checkpoint_every: int = 100  # save resumable training state every N steps (0: never); a killed run resumes
    eval_batch_size: int = 512  # images per batch when evaluating (no gradients)
    control_datasets: list[str] = field(default_factory=list)  # zero-shot CA measured before/after the defense
    label: Optional[str] = None  # the run's name in tables (record key `label`; default: the defense's name)
    # the defended model in <run dir>/model, loadable by plain open_clip ('local-dir:<run dir>/model'): auto (single
    # runs, not the jobs of a -m sweep: a ViT-B/32 takes 577 MB in fp32) | true | false
    save_model: str = "auto"
    save_model_dtype: str = "fp32"  # fp32 (reloads to the record's numbers exactly) | fp16 (half the disk)
    hf_hub: HubConfig = field(default_factory=HubConfig)
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    # classification: the attacker fine-tunes the image tower on labelled data (frozen zero-shot head) |
    # contrastive: both towers, CLIP loss, on image-caption pairs (attack.num_poisoned poisoned); `dataset` is
    # then evaluated zero-shot
    setting: str = "classification"
    contrastive: ContrastiveConfig = field(default_factory=ContrastiveConfig)  # setting=contrastive only


SETTINGS = ("classification", "contrastive")
CAPTION_SOURCES = ("dataset", "csv")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16")
ATTACK_KNOWLEDGE = ("known", "unknown")
WANDB_MODES = ("offline", "online", "disabled")
SAVE_MODEL = ("auto", "true", "false")
SAVE_DTYPES = ("fp32", "fp16", "bf16")
STORAGE = ("auto", "memory", "stream")
