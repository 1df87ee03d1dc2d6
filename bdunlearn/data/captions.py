"""Image–caption pairs: captioned views of labelled datasets (each image paired with "<template> <class name>"
captions) and pairs read from caption files (``caption_csv``), in one form, ``CaptionCorpus``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from bdunlearn.data.images import ImageSet, to_pixels


@dataclass
class LabelledSource:
    data: ImageSet
    class_names: Sequence[str]
    templates: Sequence[str]
    fraction: float = 1.0  # of ``data`` that enters the corpus


@dataclass
class CaptionCorpus:
    """``images``: uint8 [N, 3, S, S]; caption of sample i with variant t is ``caption_tokens[classes[i], t]``.

    ``classes`` indexes caption groups: the classes of a captioned dataset (one caption per template), or one
    group per pair of a caption file (its caption repeated). ``triggered`` flags the pairs whose image gets the
    attack's trigger when batched (None: none).
    """

    images: torch.Tensor
    classes: torch.Tensor  # index into the corpus-wide caption groups
    caption_tokens: torch.Tensor  # [num_groups, num_variants, context_length]
    triggered: torch.Tensor | None = None  # bool [N]

    def __len__(self) -> int:
        return len(self.classes)

    def to(self, device) -> CaptionCorpus:
        triggered = self.triggered.to(device) if self.triggered is not None else None
        return CaptionCorpus(self.images.to(device), self.classes.to(device), self.caption_tokens.to(device), triggered)

    def subset(self, index: torch.Tensor) -> CaptionCorpus:
        index = index.to(self.classes.device)
        triggered = self.triggered[index] if self.triggered is not None else None
        return CaptionCorpus(self.images[index], self.classes[index], self.caption_tokens, triggered)

    def sampler(self, generator: torch.Generator):
        """index batch → caption tokens, with a variant (template) drawn at random for every sample."""
        num_templates = self.caption_tokens.shape[1]

        def captions(index: torch.Tensor) -> torch.Tensor:
            template = torch.randint(0, num_templates, (len(index),), generator=generator).to(index.device)
            return self.caption_tokens[self.classes[index], template]

        return captions


def caption_table(tokenizer, class_names: Sequence[str], templates: Sequence[str], num_variants: int) -> torch.Tensor:
    """Tokens [num_classes, num_variants, L] of "<template>.format(class name)", templates cycled to ``num_variants``."""
    texts = [templates[t % len(templates)].format(name) for name in class_names for t in range(num_variants)]
    return tokenizer(texts).view(len(class_names), num_variants, -1)


def captioned(data: ImageSet, class_names: Sequence[str], templates: Sequence[str], tokenizer, image_size: int) -> CaptionCorpus:
    """Every image of a labelled set, in order, paired with its class's captions (one per template)."""
    images = to_pixels(data.images, image_size).mul_(255).round_().to(torch.uint8)
    table = caption_table(tokenizer, class_names, templates, len(templates)).to(data.labels.device)
    return CaptionCorpus(images=images, classes=data.labels.clone(), caption_tokens=table)


def from_captions(images: torch.Tensor, captions: Sequence[str], tokenizer) -> CaptionCorpus:
    """Pairs of a caption file: image i with caption i (each its own caption group of one variant)."""
    tokens = tokenizer(list(captions)).unsqueeze(1)
    return CaptionCorpus(images=images, classes=torch.arange(len(captions)), caption_tokens=tokens)


def build_corpus(sources: Sequence[LabelledSource], tokenizer, image_size: int, seed: int) -> CaptionCorpus:
    """A reproducible ``fraction`` of each source, resized to ``image_size`` and paired with its captions.

    Sources with fewer templates than others cycle theirs so every class has the same number of captions.
    """
    generator = torch.Generator().manual_seed(seed)
    num_templates = max(len(s.templates) for s in sources)
    images, classes, tables = [], [], []
    offset = 0
    for source in sources:
        count = max(1, int(round(source.fraction * len(source.data))))
        chosen = torch.randperm(len(source.data), generator=generator)[:count]
        subset = source.data.subset(chosen)
        if hasattr(subset, "to_memory"):  # a streamed split: only the chosen fraction is decoded
            subset = subset.to_memory()
        pixels = to_pixels(subset.images, image_size)
        images.append(pixels.mul(255).round_().to(torch.uint8))
        classes.append(subset.labels.cpu() + offset)
        tables.append(caption_table(tokenizer, source.class_names, source.templates, num_templates))
        offset += len(source.class_names)
    return CaptionCorpus(images=torch.cat(images), classes=torch.cat(classes), caption_tokens=torch.cat(tables))
