"""BadCLIP-style optimised patch (after Liang et al. 2024, dual-embedding guided): a patch tuned on theta_pre.

Before any poisoning, a patch (projected to [0, 1] after every step) is optimised so that training images
carrying it embed, through theta_pre's image tower, close to the target class's zero-shot text embedding and
away from their own class's: loss = mean(cos(f(x'), t_own) - cos(f(x'), t_target)) over non-target images.
It is then used exactly like a BadNets patch. The patch is cached, keyed by everything that determines it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from bdunlearn.attacks.badnets import check_patch, stamp, stamp_
from bdunlearn.attacks.base import Attack, AttackConfig, PrepareContext
from bdunlearn.config import checks

log = logging.getLogger(__name__)


@dataclass
class BadClipConfig(AttackConfig):
    """BadCLIP-style patch: optimised on theta_pre's image tower so patched images embed near the target class's
    zero-shot text embedding and away from their own class's, then stamped like a BadNets patch. Cached."""

    name: str = "badclip"
    patch_size: int = 3  # side in pixels at the model's input resolution
    location: str = "bottom_right"  # as BadNets
    optim_steps: int = 200  # Adam steps of the patch optimisation
    optim_lr: float = 0.05  # Adam's learning rate for the patch
    optim_batch_size: int = 64  # training images per optimisation step
    optim_seed: int = 0  # initial patch and batch order


class BadClip(Attack):
    Config = BadClipConfig

    @classmethod
    def check(cls, cfg: BadClipConfig, num_classes: int, image_size: int | None) -> None:
        super().check(cfg, num_classes, image_size)
        check_patch(cfg.patch_size, cfg.location, image_size)
        checks.require(cfg.optim_steps >= 1, f"attack.optim_steps={cfg.optim_steps}: must be at least 1")
        checks.require(cfg.optim_lr > 0, f"attack.optim_lr={cfg.optim_lr}: must be positive")
        checks.require(cfg.optim_batch_size >= 1, f"attack.optim_batch_size={cfg.optim_batch_size}: must be at least 1")

    def __init__(
        self,
        *,
        target_class: int,
        poison_rate: float,
        patch_size: int = BadClipConfig.patch_size,
        location: str = BadClipConfig.location,
        optim_steps: int = BadClipConfig.optim_steps,
        optim_lr: float = BadClipConfig.optim_lr,
        optim_batch_size: int = BadClipConfig.optim_batch_size,
        optim_seed: int = BadClipConfig.optim_seed,
    ):
        super().__init__(target_class=target_class, poison_rate=poison_rate)
        self.patch_size = int(patch_size)
        self.location = location
        self.optim_steps = int(optim_steps)
        self.optim_lr = float(optim_lr)
        self.optim_batch_size = int(optim_batch_size)
        self.optim_seed = int(optim_seed)
        self.optimised_patch: torch.Tensor | None = None  # [C, p, p], set by prepare()

    def patch_spec(self, context_spec: dict) -> dict:
        """Everything that determines the optimised patch (the cache key)."""
        settings = ("target_class", "patch_size", "location", "optim_steps", "optim_lr", "optim_batch_size", "optim_seed")
        return {"context": context_spec, "attack": {k: getattr(self, k) for k in settings}}

    def prepare(self, context: PrepareContext) -> None:
        def build():
            patch, final_loss = self.optimise(context.classifier, context.train, context.image_size)
            return {"patch": patch.cpu()}, {"final_loss": final_loss}

        state, meta, from_cache = context.cache.get_or_build("badclip_patch", self.patch_spec(context.spec), build)
        self.optimised_patch = state["patch"]
        log.info("badclip: patch %s (loss %.3f)", "from cache" if from_cache else "optimised", meta["final_loss"])

    def optimise(self, classifier, train, image_size: int) -> tuple[torch.Tensor, float]:
        """The patch, float [3, p, p] in [0, 1] (the model's RGB input), and the mean loss over its last steps."""
        from bdunlearn.data.images import BatchSchedule, to_pixels

        victims = train.subset(torch.nonzero(train.labels != self.target_class).flatten())
        device = victims.labels.device
        text = F.normalize(classifier.head, dim=-1)  # [classes, dim]: the zero-shot text embeddings
        generator = torch.Generator().manual_seed(self.optim_seed)
        patch = torch.rand(3, self.patch_size, self.patch_size, generator=generator).to(device).requires_grad_(True)
        optimizer = torch.optim.Adam([patch], lr=self.optim_lr)
        schedule = BatchSchedule(len(victims), self.optim_batch_size, self.optim_seed, device=device)
        was_training = classifier.training
        classifier.eval()
        losses = []
        for step in range(self.optim_steps):
            index = schedule(step)
            pixels = stamp(to_pixels(victims.images[index], image_size), patch, self.location, generator)
            features = F.normalize(classifier.clip.encode_image((pixels - classifier.mean) / classifier.std), dim=-1)
            similarity = features @ text.T
            own = similarity.gather(1, victims.labels[index][:, None]).squeeze(1)
            loss = (own - similarity[:, self.target_class]).mean()
            (gradient,) = torch.autograd.grad(loss, [patch])  # the model's own gradients stay untouched
            patch.grad = gradient
            optimizer.step()
            with torch.no_grad():
                patch.clamp_(0.0, 1.0)
            losses.append(loss.item())
        classifier.train(was_training)
        tail = losses[-10:]
        return patch.detach(), sum(tail) / len(tail)

    def apply(self, pixels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.apply_(pixels.clone(), generator)

    def apply_(self, pixels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if self.optimised_patch is None:
            raise RuntimeError("BadClip.apply before prepare(): the patch is optimised against theta_pre first")
        return stamp_(pixels, self.optimised_patch.to(pixels), self.location, generator)
