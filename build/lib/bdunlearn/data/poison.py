"""Training sets whose samples may carry a trigger: what every classification fine-tune consumes, and poisoned
image–caption pairs (the contrastive setting)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch

from bdunlearn.attacks.base import Attack
from bdunlearn.data.captions import CaptionCorpus
from bdunlearn.data.images import ImageSet
from bdunlearn.errors import UserError


@dataclass
class TriggerableSet:
    """Clean uint8 images, the labels to train with, and which samples get the trigger when batched.

    ``cross`` flags samples that get the attack's cross transform instead (WaNet's noise mode); None: none.
    """

    images: torch.Tensor
    labels: torch.Tensor
    triggered: torch.Tensor  # bool [N]
    cross: torch.Tensor | None = field(default=None)  # bool [N], disjoint from ``triggered``

    def __len__(self) -> int:
        return len(self.labels)

    def to(self, device) -> TriggerableSet:
        cross = self.cross.to(device) if self.cross is not None else None
        return TriggerableSet(self.images.to(device), self.labels.to(device), self.triggered.to(device), cross)


def clean(data: ImageSet) -> TriggerableSet:
    return TriggerableSet(data.images, data.labels, torch.zeros(len(data), dtype=torch.bool, device=data.labels.device))


def _mask(size: int, indices: torch.Tensor, device) -> torch.Tensor:
    mask = torch.zeros(size, dtype=torch.bool)
    mask[indices.cpu()] = True
    return mask.to(device)


def poison(data: ImageSet, attack: Attack, indices: torch.Tensor, cross_indices: torch.Tensor | None = None) -> TriggerableSet:
    """The attacker's training set: samples at ``indices`` get the trigger and the attack's labels; samples at
    ``cross_indices`` get the attack's cross transform and keep their labels."""
    labels = data.labels.clone()
    triggered = _mask(len(data), indices, labels.device)
    labels[triggered] = attack.poisoned_labels(labels[triggered])
    cross = _mask(len(data), cross_indices, labels.device) if cross_indices is not None and len(cross_indices) else None
    if cross is not None and bool((cross & triggered).any()):
        raise ValueError("cross samples must not be poisoned samples")
    return TriggerableSet(data.images, labels, triggered, cross)


def triggered_target_set(data: ImageSet, target_class: int, clean_count: int = 0) -> TriggerableSet:
    """TBAR's set: every image triggered and labelled ``target_class``, except the first ``clean_count``,
    which stay clean with their own labels."""
    labels = torch.full_like(data.labels, target_class)
    triggered = torch.ones(len(data), dtype=torch.bool, device=data.labels.device)
    labels[:clean_count] = data.labels[:clean_count]
    triggered[:clean_count] = False
    return TriggerableSet(data.images, labels, triggered)


# --- image–caption pairs (the contrastive setting) ----------------------------------------------------------


def with_caption_groups(corpus: CaptionCorpus, tokens: torch.Tensor) -> tuple[CaptionCorpus, int]:
    """``corpus`` with one more caption group per caption of ``tokens`` [captions, L] (each repeated over the
    corpus's variants) and the index of the first new group."""
    variants = corpus.caption_tokens.shape[1]
    rows = tokens.to(corpus.caption_tokens).unsqueeze(1).expand(-1, variants, -1)
    table = torch.cat([corpus.caption_tokens, rows])
    return replace(corpus, caption_tokens=table), len(corpus.caption_tokens)


def choose_pairs(eligible: torch.Tensor, count: int, seed: int) -> torch.Tensor:
    """Sorted ``count`` of the ``eligible`` pair indices, reproducible from ``seed``."""
    eligible = eligible.cpu()
    if count > len(eligible):
        raise UserError(f"attack.num_poisoned={count} exceeds the {len(eligible)} pairs that can be poisoned; lower it")
    chosen = eligible[torch.randperm(len(eligible), generator=torch.Generator().manual_seed(seed))[:count]]
    return chosen.sort().values


def poison_pairs(corpus: CaptionCorpus, indices: torch.Tensor, target_tokens: torch.Tensor, seed: int = 0) -> CaptionCorpus:
    """The attacker's pairs: the pairs at ``indices`` get the trigger on the image (when batched) and a caption
    naming the target class, one of ``target_tokens`` [templates, L] drawn for each pair (seeded by ``seed``) and
    kept, as a poisoned pair of a dataset has one caption; the others stay clean."""
    poisoned, first = with_caption_groups(corpus, target_tokens)
    template = torch.randint(0, len(target_tokens), (len(indices),), generator=torch.Generator().manual_seed(seed))
    classes = corpus.classes.clone()
    index = indices.to(classes.device)
    classes[index] = first + template.to(classes.device)
    triggered = torch.zeros(len(corpus), dtype=torch.bool, device=classes.device)
    triggered[index] = True
    return replace(poisoned, classes=classes, triggered=triggered)


def triggered_target_pairs(pairs: CaptionCorpus, target_tokens: torch.Tensor, clean_count: int = 0, seed: int = 0) -> CaptionCorpus:
    """TBAR's set in the contrastive setting: every image triggered and paired with a caption naming the target,
    except the first ``clean_count``, which keep their own captions and stay clean."""
    return poison_pairs(pairs, torch.arange(clean_count, len(pairs)), target_tokens, seed)


def untriggered_pairs(pairs: CaptionCorpus, target_tokens: torch.Tensor | None, seed: int = 0) -> CaptionCorpus:
    """The same images without the trigger, paired with captions naming the target (``target_tokens``, drawn as
    ``poison_pairs`` draws them) or, when None, their own."""
    if target_tokens is None:
        return replace(pairs, triggered=torch.zeros(len(pairs), dtype=torch.bool, device=pairs.classes.device))
    relabelled = poison_pairs(pairs, torch.arange(len(pairs)), target_tokens, seed)
    return replace(relabelled, triggered=torch.zeros_like(relabelled.triggered))
