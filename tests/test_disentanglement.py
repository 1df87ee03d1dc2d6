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


def test_analyse_maps_the_defenses_own_trigger_vector_beside_the_poison_direction(setup, tmp_path, compose):
    """With TBAR's τ_t at hand, the run gets ξ(τ_c, τ_t) too (the map the paper plots), in its own CSV and keys;
    with a zero τ_t that map is zero everywhere while the poison direction's is not."""
    from bdunlearn import analysis
    from bdunlearn.data.images import ImageSet

    classifier, base, images, labels, vector = setup
    cfg = compose("analysis.clean_reference=true", "analysis.disentanglement_grid=[0.0,1.0]", "analysis.disentanglement_samples=24")
    clean_model = task_vectors.add(base, vector(0.02), 1.0)
    backdoored = task_vectors.add(clean_model, vector(0.05), 1.0)
    tower = [k for k in backdoored if k.startswith("visual") and backdoored[k].is_floating_point()]
    context = analysis.Context(
        cfg=cfg, classifier=classifier, pretrained=base, backdoored=backdoored, clean_model=clean_model,
        test=ImageSet(images, labels), attack=BadNets(target_class=0, poison_rate=0.1, patch_size=4), image_size=16,
        precision=None, run_dir=tmp_path, trigger_vector={k: torch.zeros_like(backdoored[k]) for k in tower[:3]},
    )  # fmt: skip
    record = analysis.analyse(context)
    assert (tmp_path / "disentanglement.csv").exists() and (tmp_path / "disentanglement_trigger_vector.csv").exists()
    assert record["xi_trigger_vector_mean"] == 0 and record["xi_mean"] > 0
    assert {"xi_trigger_vector_at_one", "xi_trigger_vector_asr_at_one", "xi_trigger_vector_clean_acc_at_one"} <= set(record)
    assert len((tmp_path / "disentanglement_trigger_vector.csv").read_text().splitlines()) == 1 + 4
