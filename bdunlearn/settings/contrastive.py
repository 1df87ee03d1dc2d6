"""The contrastive image–caption setting (``setting=contrastive``, CleanCLIP's protocol).

The attacker fine-tunes theta_pre's two towers with the CLIP loss on image–caption pairs of which exactly
``attack.num_poisoned`` carry the trigger on the image and a caption naming the target class; the defender
holds clean pairs; every model is evaluated zero-shot on ``dataset`` (class names x templates through the
current text tower) for CA / ASR / RA. The pairs are the captioned training split of ``dataset``
(``contrastive.captions=dataset``) or a CSV/TSV of (image path, caption) (``captions=csv``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from bdunlearn import task_vectors
from bdunlearn.config import checks
from bdunlearn.config.schema import CAPTION_SOURCES
from bdunlearn.data import caption_csv
from bdunlearn.data.captions import (
    CaptionCorpus,
    caption_table,
    captioned,
    from_captions,
)
from bdunlearn.data.poison import choose_pairs, poison_pairs

log = logging.getLogger(__name__)


# --- validation (before any compute) ---------------------------------------------------------------------


def caption_file(cfg) -> caption_csv.CaptionFile:
    c = cfg.contrastive
    return caption_csv.CaptionFile(
        path=c.csv, image_root=c.image_root, image_key=c.image_key, caption_key=c.caption_key, separator=c.separator
    )


def csv_split_sizes(total: int, defense_fraction: float, max_pairs: int | None) -> tuple[int, int]:
    """(attacker's pairs, defender's pairs) of a caption file of ``total`` pairs."""
    defender = int(round(defense_fraction * total))
    attacker = total - defender
    return (min(attacker, max_pairs) if max_pairs is not None else attacker), defender


def pair_counts(cfg) -> tuple[int, int]:
    """(attacker's pairs, defender's pairs) the configured source gives, without decoding an image."""
    if cfg.contrastive.captions == "csv":
        return csv_split_sizes(caption_csv.count_pairs(caption_file(cfg)), cfg.contrastive.defense_fraction, cfg.contrastive.max_pairs)
    from bdunlearn.data import datasets
    from bdunlearn.data.splits import split_sizes

    num_train, has_test = datasets.train_size(cfg.dataset)
    sizes = split_sizes(num_train, has_test, cfg.dataset.splits)
    attacker = sizes["train"] if cfg.contrastive.max_pairs is None else min(sizes["train"], cfg.contrastive.max_pairs)
    return attacker, sizes["defense"]


def check(cfg, plugins) -> None:
    """Everything a contrastive run needs, checked before any compute; one-line UserErrors."""
    c = cfg.contrastive
    defense_module = plugins.defenses[cfg.defense.name]
    forms = sorted(name for name, module in plugins.defenses.items() if getattr(module, "CONTRASTIVE", False))
    checks.require(
        getattr(defense_module, "CONTRASTIVE", False),
        f"defense={cfg.defense.name} has no contrastive form; with setting=contrastive use one of: {', '.join(forms)}",
    )
    checks.require(
        cfg.attack.num_poisoned is not None,
        "setting=contrastive poisons an absolute number of image-caption pairs; set attack.num_poisoned=N",
    )
    checks.require(
        not plugins.attacks[cfg.attack.name].clean_label,
        f"attack={cfg.attack.name} is clean-label and has no contrastive form here; use badnets, blended, wanet or badclip",
    )
    checks.require(cfg.attack_knowledge == "known", "setting=contrastive supports attack_knowledge=known only")
    checks.require(not cfg.control_datasets, "setting=contrastive does not measure control datasets yet; set control_datasets=[]")
    checks.require(not cfg.analysis.clean_reference, "analysis.clean_reference applies to setting=classification only")
    images = getattr(cfg.defense, "images", "all")  # TBAR's variant that needs class labels
    checks.require(
        images == "all",
        f"defense.images={images} needs class labels; setting=contrastive draws TBAR's images from the defender's "
        "pairs (defense.images=all)",
    )
    checks.choice(c.captions, CAPTION_SOURCES, "contrastive.captions")
    checks.require(c.max_pairs is None or c.max_pairs >= 1, f"contrastive.max_pairs={c.max_pairs}: must be at least 1 (or null)")
    checks.fraction(c.defense_fraction, "contrastive.defense_fraction", allow_zero=False, allow_one=False)
    for template in c.caption_templates or []:
        checks.require("{}" in template, f"contrastive.caption_templates: {template!r} has no '{{}}' placeholder")
    checks.require(c.caption_templates is None or len(c.caption_templates) > 0, "contrastive.caption_templates is empty; give one or null")
    if c.captions == "csv":
        checks.require(c.csv is not None, "contrastive.captions=csv needs contrastive.csv=PATH (a CSV/TSV of image path, caption)")
        reason = caption_csv.missing(caption_file(cfg))
        checks.require(reason is None, reason or "")
    attacker, defender = pair_counts(cfg)
    checks.require(
        cfg.attack.num_poisoned <= attacker,
        f"attack.num_poisoned={cfg.attack.num_poisoned} exceeds the attacker's {attacker} image-caption pairs; lower it",
    )
    checks.require(
        cfg.defense.num_samples <= defender,
        f"defense.num_samples={cfg.defense.num_samples} exceeds the defender's {defender} clean pairs; lower it"
        + (" or raise contrastive.defense_fraction" if c.captions == "csv" else " or raise dataset.splits.defense_fraction"),
    )


def training_items(cfg) -> int:
    """What ``finetune.epochs`` counts passes over: the attacker's pairs."""
    return pair_counts(cfg)[0]


# --- the pairs -------------------------------------------------------------------------------------------


@dataclass
class PairData:
    attacker: CaptionCorpus  # the attacker's pairs, poisoned (``triggered`` flags the num_poisoned pairs); or streamed
    defender: CaptionCorpus  # the defender's clean pairs
    target_captions: torch.Tensor  # tokens [templates, L] naming the target class
    poisoned: torch.Tensor  # indices of the poisoned pairs in ``attacker``
    source: str  # what the pairs are, for the record

    def record(self) -> dict:
        return {
            "setting": "contrastive",
            "caption_data": self.source,
            "num_poisoned": len(self.poisoned),
            "attacker_pairs": len(self.attacker),
            "poison_rate": len(self.poisoned) / len(self.attacker),
        }


def target_captions(cfg, tokenizer) -> torch.Tensor:
    """Captions naming the target class: the caption templates (or the dataset's) with its class name."""
    templates = cfg.contrastive.caption_templates or cfg.dataset.templates
    name = cfg.dataset.class_names[cfg.attack.target_class]
    return caption_table(tokenizer, [name], templates, len(templates))[0]


def _cap(corpus: CaptionCorpus, max_pairs: int | None, seed: int) -> CaptionCorpus:
    if max_pairs is None or max_pairs >= len(corpus):
        return corpus
    chosen = torch.randperm(len(corpus), generator=torch.Generator().manual_seed(seed))[:max_pairs].sort().values
    return corpus.subset(chosen)


def _dataset_pairs(cfg, splits, tokenizer, image_size: int) -> tuple[CaptionCorpus, CaptionCorpus, torch.Tensor]:
    """The captioned training split (attacker) and defender's pool; the pairs poisonable (non-target images)."""
    templates = cfg.contrastive.caption_templates or cfg.dataset.templates
    names = cfg.dataset.class_names
    attacker = _cap(captioned(splits.train, names, templates, tokenizer, image_size), cfg.contrastive.max_pairs, cfg.contrastive.seed)
    defender = captioned(splits.defense, names, templates, tokenizer, image_size)
    eligible = torch.nonzero(attacker.classes.cpu() != cfg.attack.target_class).flatten()
    return attacker, defender, eligible


def _csv_pairs(cfg, tokenizer, image_size: int, cache_dir: str | None) -> tuple[CaptionCorpus, CaptionCorpus, torch.Tensor]:
    """The caption file's pairs, shuffled once (``contrastive.seed``): the defender's share first, the attacker's
    after it (capped at ``max_pairs``); every attacker pair can be poisoned."""
    spec = caption_file(cfg)
    paths, captions = caption_csv.read_pairs(spec)
    order = torch.randperm(len(paths), generator=torch.Generator().manual_seed(cfg.contrastive.seed)).tolist()
    num_attacker, num_defender = csv_split_sizes(len(paths), cfg.contrastive.defense_fraction, cfg.contrastive.max_pairs)
    parts = {"defender": sorted(order[:num_defender]), "attacker": sorted(order[num_defender : num_defender + num_attacker])}
    if cfg.dataset.storage == "stream":
        return _csv_pairs_streamed(cfg, [(paths[i], captions[i]) for i in parts["defender"]],
                                   [(paths[i], captions[i]) for i in parts["attacker"]], tokenizer, image_size)  # fmt: skip
    chosen = parts["defender"] + parts["attacker"]
    images = caption_csv.load_images([paths[i] for i in chosen], spec, image_size, cfg.dataset.num_workers, cache_dir)
    corpus = from_captions(images, [captions[i] for i in chosen], tokenizer)
    defender = corpus.subset(torch.arange(num_defender))
    attacker = corpus.subset(torch.arange(num_defender, len(chosen)))
    return attacker, defender, torch.arange(len(attacker))


def _csv_pairs_streamed(cfg, defender: list, attacker: list, tokenizer, image_size: int):
    """The caption file's pairs streamed (``dataset.storage=stream``): the attacker's read from their files while
    the fine-tune runs; the defender's, a small share, decoded into memory (defenses draw random batches)."""
    from bdunlearn.data import stream

    missing_file = next((p for p, _ in defender + attacker if not Path(p).is_file()), None)
    checks.require(missing_file is None, f"caption file {cfg.contrastive.csv}: image {missing_file} not found; check contrastive.image_root")
    workers = cfg.dataset.num_workers

    def split(pairs: list):
        return stream.from_captions([p for p, _ in pairs], [c for _, c in pairs], image_size, tokenizer, workers)

    streamed = split(attacker)
    return streamed, split(defender).to_corpus(), torch.arange(len(streamed))


def load_pairs(cfg, splits, tokenizer, image_size: int, cache_dir: str | None, device) -> PairData:
    """The attacker's pairs with ``attack.num_poisoned`` of them poisoned (seeded by ``seed``), the defender's clean
    pairs and the target captions. Cheap next to training: call it before any, so a bad count stops the run."""
    if cfg.contrastive.captions == "csv":
        attacker, defender, eligible = _csv_pairs(cfg, tokenizer, image_size, cache_dir)
        source = f"csv:{cfg.contrastive.csv}"
    else:
        attacker, defender, eligible = _dataset_pairs(cfg, splits, tokenizer, image_size)
        source = f"captioned {cfg.dataset.name}"
    target = target_captions(cfg, tokenizer)
    indices = choose_pairs(eligible, cfg.attack.num_poisoned, cfg.seed)
    log.info("pairs: %d attacker's (%d poisoned), %d defender's (%s)", len(attacker), len(indices), len(defender), source)
    if isinstance(attacker, CaptionCorpus):
        poisoned = poison_pairs(attacker, indices, target, seed=cfg.seed).to(device)
    else:  # streamed: the same pairs poisoned, flagged by their index, whatever the worker count
        from bdunlearn.streaming import poison_pairs_split

        poisoned = poison_pairs_split(attacker, indices, target, seed=cfg.seed)
    return PairData(poisoned, defender.to(device), target.to(device), indices, source)


# --- theta_b ---------------------------------------------------------------------------------------------


def obtain_backdoored(ctx, resume) -> tuple[dict, bool, dict]:
    """theta_b as (state dict, from_cache, metadata): theta_pre's ``contrastive.params`` fine-tuned with the CLIP
    loss on the poisoned pairs (cached under the run's theta_b spec)."""
    from bdunlearn.config import keys
    from bdunlearn.objectives import finetune_pairs
    from bdunlearn.params import trainable_parameters
    from bdunlearn.streaming import finetune_pairs_streamed
    from bdunlearn.training import OptimSettings

    cfg, classifier, pairs = ctx.cfg, ctx.classifier, ctx.pairs
    spec = keys.backdoored_spec(cfg, ctx.precision.name, ctx.load_dataset)

    def build():
        classifier.clip.load_state_dict(ctx.pretrained)
        torch.manual_seed(cfg.seed)
        params = trainable_parameters(classifier.clip, cfg.contrastive.params)
        f = cfg.finetune
        fine_tune = finetune_pairs if isinstance(pairs.attacker, CaptionCorpus) else finetune_pairs_streamed
        result = fine_tune(
            classifier, list(params.values()), pairs.attacker, ctx.attack, ctx.preprocess.image_size,
            OptimSettings(f.steps, f.batch_size, f.lr, f.weight_decay, f.warmup_steps), seed=cfg.seed,
            desc="theta_b: poisoned contrastive fine-tune", resume=resume(spec), precision=ctx.precision,
        )  # fmt: skip
        meta = {"poisoned_indices": pairs.poisoned.tolist(), "seconds": result.seconds, "final_loss": result.final_loss}
        return task_vectors.clone(classifier.clip.state_dict()), meta

    state, meta, from_cache = ctx.cache.get_or_build("backdoored", spec, build)
    return {k: v.to(ctx.device) for k, v in state.items()}, from_cache, meta


# Both towers train: the zero-shot head is rebuilt from the text tower at every evaluation.
REBUILDS_HEAD = True


def prepare_data(ctx) -> PairData:
    """The pairs (a bad count or file stops the run here, before any training)."""
    from bdunlearn.params import selected_names

    selected_names(ctx.clip, ctx.cfg.contrastive.params, "contrastive.params")
    return load_pairs(ctx.cfg, ctx.splits, ctx.tokenizer, ctx.preprocess.image_size, ctx.data_cache, ctx.device)
