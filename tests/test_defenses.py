"""The baseline defenses: their loss terms on tiny tensors, SAM's step, and each defense end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from bdunlearn.data.augment import autoaugment, structured_noise
from bdunlearn.defenses.cleanclip import inmodal_loss
from bdunlearn.defenses.par import perturbation_term
from bdunlearn.training import ASAM_ETA, sam_ascent
from tests.conftest import SHRINK

BASELINES = ("finetune", "ft_sam", "cleanclip", "par")


def _unit(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(x, dim=-1)


def test_inmodal_term_vanishes_for_identical_distinct_views_and_grows_when_views_disagree():
    views = torch.eye(6)  # six orthogonal unit embeddings
    scale = torch.tensor(100.0)
    identical = inmodal_loss(views, views, scale)
    assert identical < 1e-6  # InfoNCE at a sharp temperature: each view picks out its twin with certainty
    shuffled = inmodal_loss(views, views[torch.tensor([1, 2, 3, 4, 5, 0])], scale)
    noisy = inmodal_loss(views, _unit(views + 0.8 * torch.randn(6, 6, generator=torch.Generator().manual_seed(0))), scale)
    assert shuffled > 50 and noisy > identical
    assert inmodal_loss(views, views, torch.tensor(1.0)) > 0  # a soft temperature never reaches zero


def test_sam_ascent_moves_the_weights_by_exactly_rho_and_undo_restores_them():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 3))
    params = list(model.parameters())
    model(torch.randn(8, 5)).pow(2).sum().backward()
    before = [p.detach().clone() for p in params]
    moves = sam_ascent(params, rho=0.3)
    step = torch.cat([(p.detach() - b).flatten() for p, b in zip(params, before)])
    assert torch.linalg.vector_norm(step).item() == pytest.approx(0.3, rel=1e-5)
    grads = torch.cat([p.grad.flatten() for p in params])
    assert torch.nn.functional.cosine_similarity(step, grads, dim=0) == pytest.approx(1.0, abs=1e-5)  # ascent
    with torch.no_grad():
        for p, e in zip(params, moves):
            p.sub_(e)
    assert all(torch.allclose(p, b) for p, b in zip(params, before))


def test_adaptive_sam_radius_is_measured_relative_to_the_weights():
    torch.manual_seed(1)
    layer = nn.Linear(6, 3)
    layer(torch.randn(4, 6)).sum().backward()
    params = list(layer.parameters())
    scales = [p.detach().abs() + ASAM_ETA for p in params]
    moves = sam_ascent(params, rho=2.0, adaptive=True)
    relative = torch.cat([(e / t).flatten() for e, t in zip(moves, scales)])
    assert torch.linalg.vector_norm(relative).item() == pytest.approx(2.0, rel=1e-5)


def test_par_term_is_the_squared_distance_until_the_threshold_then_zero():
    a = _unit(torch.randn(4, 8, generator=torch.Generator().manual_seed(0)))
    assert perturbation_term(a, a, threshold=2.15) == 0
    b = _unit(a + 0.3 * torch.randn(4, 8, generator=torch.Generator().manual_seed(1)))
    distance = (a - b).pow(2).sum(dim=1).mean()
    assert perturbation_term(a, b, threshold=2.15) == pytest.approx(distance.item())
    assert perturbation_term(a, -a, threshold=2.15) == 0  # squared distance 4 > threshold: no more push

    moving = b.clone().requires_grad_(True)
    (-perturbation_term(moving, a, threshold=2.15)).backward()  # PAR subtracts the term from its loss
    with torch.no_grad():
        stepped = moving - 0.1 * moving.grad
    assert (stepped - a).pow(2).sum(dim=1).mean() > distance  # descending the loss moves away from theta_b


def test_structured_noise_is_reproducible_bounded_and_erases_with_the_fill_colour():
    pixels = torch.rand(16, 3, 20, 20, generator=torch.Generator().manual_seed(0))
    fill = torch.tensor([0.1, 0.2, 0.3])

    def draw(seed, **kwargs):
        return structured_noise(pixels, torch.Generator().manual_seed(seed), fill=fill, **kwargs)

    assert torch.equal(draw(3), draw(3)) and not torch.equal(draw(3), draw(4))
    out = draw(3)
    assert out.min() >= 0 and out.max() <= 1 and out.shape == pixels.shape
    assert torch.equal(draw(3, noise_prob=0.0, erase_prob=0.0), pixels)
    erased = draw(3, noise_prob=0.0, erase_prob=1.0)
    changed = (erased != pixels).any(dim=1)  # [B, H, W]
    assert changed.flatten(1).any(dim=1).all()  # every image has its square
    assert torch.allclose(erased.permute(0, 2, 3, 1)[changed], fill.expand(int(changed.sum()), 3))
    assert changed.flatten(1).sum(dim=1).max() <= 0.01 * 400 + 4  # about 0.5-1 % of the image


def test_autoaugment_keeps_shape_and_range_and_changes_images():
    torch.manual_seed(0)
    pixels = (torch.rand(32, 3, 16, 16) * 255).round() / 255
    out = autoaugment(pixels)
    assert out.shape == pixels.shape and out.dtype == pixels.dtype
    assert out.min() >= 0 and out.max() <= 1
    assert (out != pixels).flatten(1).any(dim=1).float().mean() > 0.5


@pytest.mark.parametrize("dataset", ["digits", pytest.param("fashion_mnist", marks=pytest.mark.slow)])
def test_every_baseline_runs_end_to_end_and_accounts_for_its_budget(run_cli, tmp_path, compose, dataset):
    if dataset == "fashion_mnist" and not Path(compose("dataset=fashion_mnist").dataset.source_dir).is_dir():
        pytest.skip("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
    sweep = tmp_path / "sweep"
    done, _ = run_cli(
        "-m", f"defense={','.join(BASELINES)}", f"dataset={dataset}", "defense.num_samples=120", *SHRINK,
        f"hydra.sweep.dir={sweep}", timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    records = [json.loads(p.read_text()) for p in sorted(sweep.glob("*/result.json"))]
    assert sorted(r["defense"] for r in records) == sorted(BASELINES)
    for record in records:
        assert record["status"] == "ok" and record["dataset"] == dataset
        assert record["defense_samples"] == 120 and record["defense_seconds"] > 0
        assert 0 <= record["clean_acc"] <= 1 and 0 <= record["asr"] <= 1
        assert record["alpha"] is None and record["alpha_curve"] is None
    # theta_b is trained once and then shared by every defense of the sweep
    assert sum(not r["backdoored_from_cache"] for r in records) <= 1
    assert len({r["clean_acc_backdoored"] for r in records}) == 1
