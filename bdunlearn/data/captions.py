"""Captioned images built from labelled datasets: each image paired with "<template> <class name>" captions."""

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
    """``images``: uint8 [N, 3, S, S]; caption of sample i with template t is ``caption_tokens[classes[i], t]``."""

    images: torch.Tensor
    classes: torch.Tensor  # index into the corpus-wide class list
    caption_tokens: torch.Tensor  # [num_classes, num_templates, context_length]

    def __len__(self) -> int:
        return len(self.classes)

    def to(self, device) -> CaptionCorpus:
        return CaptionCorpus(self.images.to(device), self.classes.to(device), self.caption_tokens.to(device))

    def sampler(self, generator: torch.Generator):
        """index batch → caption tokens, with a template drawn at random for every sample."""
        num_templates = self.caption_tokens.shape[1]

        def captions(index: torch.Tensor) -> torch.Tensor:
            template = torch.randint(0, num_templates, (len(index),), generator=generator).to(index.device)
            return self.caption_tokens[self.classes[index], template]

        return captions


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
        pixels = to_pixels(subset.images, image_size)
        images.append(pixels.mul(255).round_().to(torch.uint8))
        classes.append(subset.labels.cpu() + offset)
        texts = [
            source.templates[t % len(source.templates)].format(name)
            for name in source.class_names
            for t in range(num_templates)
        ]
        tables.append(tokenizer(texts).view(len(source.class_names), num_templates, -1))
        offset += len(source.class_names)
    return CaptionCorpus(images=torch.cat(images), classes=torch.cat(classes), caption_tokens=torch.cat(tables))
