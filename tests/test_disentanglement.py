"""ξ(α_c, α_t): the weight-disentanglement error of a clean task vector and a trigger vector."""

from __future__ import annotations

import pytest
import torch

from bdunlearn import task_vectors
from bdunlearn.attacks.badnets import BadNets
from bdunlearn.disentanglement import disentanglement_grid


@pytest.fixture
def setup(tiny_clip):
    from bdunlearn.models.clip import preprocess_of
    from bdunlearn.models.zeroshot import ZeroShotClassifier

    generator = torch.Generator().manual_seed(0)
    head = torch.nn.functional.normalize(torch.randn(10, 64, generator=generator), dim=-1) * 20
    classifier = ZeroShotClassifier(tiny_clip, head, preprocess_of(tiny_clip)).eval()
    base = task_vectors.clone(tiny_clip.state_dict())
    images = (torch.rand(24, 3, 16, 16, generator=generator) * 255).to(torch.uint8)
    labels = torch.arange(24) % 10

    def vector(scale: float) -> dict:
        return {k: scale * torch.randn(v.shape, generator=generator) for k, v in base.items() if k.startswith("visual") and v.is_floating_point()}

    yield classifier, base, images, labels, vector
    tiny_clip.load_state_dict(base)


def grid(setup, tau_c, tau_t, alphas):
    classifier, base, images, labels, _ = setup
    attack = BadNets(target_class=0, poison_rate=0.1, patch_size=4)
    points = disentanglement_grid(classifier, base, tau_c, tau_t, images, labels, images[labels != 0], attack, 16, alphas, batch_size=10)
    assert len(points) == len(alphas) ** 2
    assert all(torch.equal(v, base[k]) for k, v in classifier.clip.state_dict().items())  # weights restored
    return points


def test_xi_is_zero_when_the_trigger_vector_is_zero(setup):
    *_, vector = setup
    tau_c = vector(0.05)
    zero = {k: torch.zeros_like(v) for k, v in tau_c.items()}
    points = grid(setup, tau_c, zero, [0.0, 1.0, 3.0])
    # adding a zero trigger vector never changes the clean task's predictions, whatever α_t
    assert all(p.disagreement_clean == 0 for p in points)
    # and with no clean vector added either (α_c = 0) nothing differs from the single-task models at all
    assert all(p.xi == 0 for p in points if p.alpha_c == 0)
    assert all(p.xi == 0 for p in grid(setup, zero, zero, [0.0, 2.0]))


def test_xi_is_positive_when_the_vectors_interfere(setup):
    *_, vector = setup
    points = grid(setup, vector(0.05), vector(0.2), [0.0, 1.0])
    at_one = next(p for p in points if p.alpha_c == 1 and p.alpha_t == 1)
    assert at_one.xi > 0 and at_one.xi == pytest.approx(at_one.disagreement_clean + at_one.disagreement_triggered)
    assert 0 <= at_one.xi <= 2
    origin = next(p for p in points if p.alpha_c == 0 and p.alpha_t == 0)
    assert origin.xi == 0
