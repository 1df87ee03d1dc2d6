"""BTI-DBF's networks (bdunlearn/inversion/bti_dbf.py trains them): the generator G (x ↦ x + a U-Net's change,
kept in the pool's colour subspace), the inverted trigger x ↦ G(x), and the token features of the image tower."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from bdunlearn.data.images import index_batches
from bdunlearn.inversion.base import InversionContext, InvertedTrigger


class Generator(nn.Module):
    """x ↦ clamp(x + U(x), 0, 1) with U a convolutional U-Net of ``levels`` downsamplings whose last layer
    starts with weights ~ N(0, init_scale²) and zero biases (0: G starts exactly as the identity)."""

    def __init__(self, width: int = 16, channels: int = 3, levels: int = 2, init_scale: float = 0.0):
        super().__init__()
        widths = [width * 2**level for level in range(levels + 1)]
        self.down = nn.ModuleList([_double_conv(channels, widths[0])])
        self.down.extend(nn.Sequential(nn.AvgPool2d(2), _double_conv(widths[i], widths[i + 1])) for i in range(levels))
        self.up = nn.ModuleList(_double_conv(widths[i] + widths[i + 1], widths[i]) for i in reversed(range(levels)))
        self.out = nn.Conv2d(widths[0], channels, 1)
        nn.init.normal_(self.out.weight, std=init_scale)
        nn.init.zeros_(self.out.bias)
        # the change G makes is projected onto this colour subspace (identity: any colour; see colour_projection)
        self.register_buffer("colours", torch.eye(channels))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        skips, x = [], pixels
        for block in self.down:
            x = block(x)
            skips.append(x)
        skips.pop()
        for block in self.up:
            skip = skips.pop()
            # upsampling to the skip's own size keeps odd sizes working (28 px → 14 → 7 → 3 and back)
            x = block(torch.cat([skip, F.interpolate(x, size=skip.shape[-2:], mode="nearest")], dim=1))
        change = torch.einsum("dc,bchw->bdhw", self.colours, self.out(x))
        return (pixels + change).clamp(0, 1)


@torch.no_grad()
def colour_projection(context: InversionContext, relative_floor: float = 1e-6) -> torch.Tensor:
    """Projection [C, C] onto the colour subspace the pool's pixels span (principal axes of their centred RGB
    values with more than ``relative_floor`` of the largest variance). Colour images: the identity. Grayscale
    images stored as RGB: the gray axis, so that G cannot win by tinting images the model never saw in colour."""
    pixels = torch.cat([context.pixels(index) for index in index_batches(len(context.pool), context.batch_size)])
    values = pixels.transpose(0, 1).flatten(1).double()  # [C, pixels]
    covariance = torch.cov(values)
    eigenvalues, eigenvectors = torch.linalg.eigh(covariance)
    kept = eigenvectors[:, eigenvalues > relative_floor * eigenvalues.max().clamp_min(1e-12)]
    return (kept @ kept.T).float()


def _double_conv(inputs: int, outputs: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(inputs, outputs, 3, padding=1), nn.ReLU(), nn.Conv2d(outputs, outputs, 3, padding=1), nn.ReLU())


class GeneratorTrigger(InvertedTrigger):
    """The inverted trigger x ↦ G(x) (a sample-specific trigger; no mask)."""

    def __init__(self, generator: Generator, target_class: int = 0):
        super().__init__(target_class)
        self.generator = generator.eval().requires_grad_(False)

    @torch.no_grad()
    def apply(self, pixels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        model = self.generator.to(pixels.device)
        return model(pixels.float()).to(pixels.dtype)

    def tensors(self) -> dict[str, torch.Tensor]:
        return {f"generator.{k}": v.detach() for k, v in self.generator.state_dict().items()}


class TokenFeatures:
    """The feature map of a ViT image tower: the tokens entering residual block ``block``, as [batch, tokens,
    width]; the rest of the tower and the zero-shot head play the original's ``from_features_to_output``.

    ``__call__(pixels, mask=None)`` runs the whole classifier once; a forward pre-hook records the block's
    input (``self.tokens``) and, given ``mask`` [tokens, width], multiplies it by the mask before the block."""

    def __init__(self, classifier, block: int):
        transformer = getattr(classifier.clip.visual, "transformer", None)
        blocks = getattr(transformer, "resblocks", None)
        if blocks is None:
            raise ValueError("inversion=bti_dbf needs a ViT image tower (visual.transformer.resblocks)")
        if not -len(blocks) <= block < len(blocks):
            raise ValueError(f"inversion.feature_block={block}: the image tower has {len(blocks)} residual blocks")
        self.classifier, self.block = classifier, blocks[block]
        # open_clip >= 2.25 runs the blocks batch-first; older versions (and batch_first=False) sequence-first
        self.batch_first = bool(getattr(transformer, "batch_first", False))
        self.tokens: torch.Tensor | None = None

    def __call__(self, pixels: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        def hook(module, args):
            tokens = args[0] if self.batch_first else args[0].transpose(0, 1)
            if mask is not None:
                tokens = tokens * mask
            self.tokens = tokens
            return (tokens if self.batch_first else tokens.transpose(0, 1), *args[1:])

        handle = self.block.register_forward_pre_hook(hook)
        try:
            logits = self.classifier(pixels)
        finally:
            handle.remove()
        return logits

    def of(self, pixels: torch.Tensor) -> torch.Tensor:
        self(pixels)
        return self.tokens
