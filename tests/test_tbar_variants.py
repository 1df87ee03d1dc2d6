"""TBAR's variants (which images, a contrast fine-tune, parameter subsets) and the interpolation reference,
in process on a tiny random CLIP."""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest
import torch

from bdunlearn import task_vectors
from bdunlearn.attacks import BadNets
from bdunlearn.data.images import ImageSet
from bdunlearn.data.poison import TriggerableSet, poison, triggered_target_set
from bdunlearn.defenses import interpolate, tbar
from bdunlearn.defenses.base import DefenseInputs
from bdunlearn.errors import UserError
from bdunlearn.models.clip import preprocess_of, tokenizer
from bdunlearn.models.zeroshot import ZeroShotClassifier, zeroshot_head
from bdunlearn.objectives import finetune_classifier
from bdunlearn.params import selected_names, trainable_parameters
from bdunlearn.training import OptimSettings

TARGET = 2


@pytest.fixture(scope="module")
def planted(tiny_clip):
    """(classifier, data, theta_pre, theta_b): theta_b a short poisoned fine-tune of the random tiny CLIP."""
    clip = copy.deepcopy(tiny_clip)
    head = zeroshot_head(clip, tokenizer("bdunlearn-tiny"), ["0", "1", "2"], ["a photo of {}."], "cpu")
    classifier = ZeroShotClassifier(clip, head, preprocess_of(clip))
    g = torch.Generator().manual_seed(0)
    data = ImageSet((torch.rand(90, 1, 8, 8, generator=g) * 255).to(torch.uint8), torch.arange(90) % 3)
    pretrained = task_vectors.clone(clip.state_dict())
    attack = BadNets(target_class=TARGET, poison_rate=0.5, patch_size=4)
    train = poison(data, attack, attack.poison_indices(data.labels, seed=0))
    params = list(trainable_parameters(clip, "visual").values())
    finetune_classifier(classifier, params, train, attack, 16, OptimSettings(40, 30, 3e-3), seed=0, desc="plant")
    return classifier, data, attack, pretrained, task_vectors.clone(clip.state_dict())


@pytest.fixture
def inputs(planted) -> DefenseInputs:
    classifier, data, attack, pretrained, backdoored = planted
    classifier.clip.load_state_dict(backdoored)
    return DefenseInputs(
        classifier=classifier, backdoored=backdoored, pretrained=pretrained, pool=data.subset(torch.arange(60)),
        val=data.subset(torch.arange(60, 90)), attack=attack, target_class=TARGET, image_size=16, eval_batch_size=64,
        seed=0,
    )  # fmt: skip


def _tbar(**overrides) -> tbar.TbarConfig:
    return tbar.TbarConfig(name="tbar", **{"num_samples": 24, "steps": 4, "batch_size": 8, "lr": 1e-3, **overrides})


def test_params_select_prefixes_and_globs_and_refuse_a_pattern_that_selects_nothing(tiny_clip):
    visual = selected_names(tiny_clip, "visual")
    assert visual and all(n.startswith("visual.") for n in visual)
    attention = selected_names(tiny_clip, "visual.transformer.resblocks.*.attn.*")
    assert attention and all(".attn." in n and n.startswith("visual.") for n in attention)
    early = selected_names(tiny_clip, "visual.conv1, visual.transformer.resblocks.0.*")
    assert "visual.conv1.weight" in early and all(n.startswith(("visual.conv1", "visual.transformer.resblocks.0.")) for n in early)
    assert len(selected_names(tiny_clip, "")) == len(list(tiny_clip.parameters()))
    with pytest.raises(UserError, match="defense.params='visual.nope.\\*' selects no parameter"):
        selected_names(tiny_clip, "visual.nope.*", "defense.params")


def test_project_out_leaves_a_vector_orthogonal_to_the_direction():
    g = torch.Generator().manual_seed(0)
    a = {"w": torch.randn(4, 3, generator=g), "b": torch.randn(3, generator=g)}
    d = {"w": torch.randn(4, 3, generator=g), "b": torch.randn(3, generator=g)}
    projected = task_vectors.project_out(a, d)
    assert abs(task_vectors.dot(projected, d)) < 1e-5
    assert task_vectors.norm(projected) < task_vectors.norm(a)
    zero = {k: torch.zeros_like(v) for k, v in d.items()}
    assert all(torch.equal(task_vectors.project_out(a, zero)[k], a[k]) for k in a)


def test_non_target_images_exclude_the_target_class_and_a_too_small_pool_is_refused(inputs):
    samples = tbar.draw_triggered_samples(inputs, _tbar(images="non_target", num_samples=40))
    assert len(samples) == 40 and not bool((samples.labels == TARGET).any())
    assert bool((tbar.draw_triggered_samples(inputs, _tbar(num_samples=60)).labels == TARGET).any())
    with pytest.raises(UserError, match="defense.num_samples=41 exceeds the 40 pool images outside the target class"):
        tbar.draw_triggered_samples(inputs, _tbar(images="non_target", num_samples=41))


@pytest.mark.parametrize("contrast,labels", [("target", "target"), ("own_labels", "own")])
def test_the_contrast_variant_is_the_triggered_vector_minus_the_clean_fine_tune_of_the_same_images(inputs, contrast, labels):
    cfg = _tbar(contrast=contrast)
    samples = tbar.draw_triggered_samples(inputs, cfg)
    triggered, _ = tbar._finetune_vector(inputs, cfg, triggered_target_set(samples, TARGET), inputs.backdoored, "t")
    clean_labels = torch.full_like(samples.labels, TARGET) if labels == "target" else samples.labels
    untriggered = TriggerableSet(samples.images, clean_labels, torch.zeros(len(samples), dtype=torch.bool))
    clean, _ = tbar._finetune_vector(inputs, cfg, untriggered, inputs.backdoored, "c")
    assert task_vectors.norm(clean) > 0 and task_vectors.cosine(clean, triggered) < 0.999  # two different fine-tunes

    difference, _ = tbar.estimate_trigger_vector(inputs, cfg)
    for key in triggered:
        torch.testing.assert_close(difference[key], triggered[key] - clean[key])
    projected, _ = tbar.estimate_trigger_vector(inputs, _tbar(contrast=contrast, contrast_op="project"))
    assert abs(task_vectors.cosine(projected, clean)) < 1e-4
    assert task_vectors.cosine(projected, triggered) > 0


def test_a_parameter_subset_spans_the_trigger_vector_and_defend_subtracts_only_there(inputs):
    cfg = _tbar(params="visual.transformer.resblocks.*.attn.*", alpha_grid=[0.0, 1.0, 2.0])
    outcome = tbar.defend(inputs, cfg)
    vector = outcome.extras["trigger_vector"]
    assert vector and all(".attn." in k for k in vector)
    changed = {k for k, v in outcome.state.items() if not torch.equal(v, inputs.backdoored[k])}
    assert changed <= set(vector) and (outcome.alpha == 0 or changed)


def test_interpolation_walks_from_theta_b_to_theta_pre_and_chooses_alpha_by_tbars_rule(inputs):
    cfg = interpolate.InterpolateConfig(name="interpolate", alpha_grid=[0.0, 0.5, 1.0], kappa=0.01)
    outcome = interpolate.defend(inputs, cfg)
    assert [p["alpha"] for p in outcome.alpha_curve] == [0.0, 0.5, 1.0] and outcome.samples == 0
    assert outcome.alpha == tbar.select_alpha([tbar.AlphaPoint(**p) for p in outcome.alpha_curve], cfg.kappa).alpha
    alpha = outcome.alpha
    assert alpha > 0  # theta_b carries the backdoor, theta_pre does not: walking back lowers validation ASR
    for key, value in inputs.backdoored.items():
        expected = (1 - alpha) * value + alpha * inputs.pretrained[key] if key.startswith("visual") else value
        torch.testing.assert_close(outcome.state[key], expected)
    with pytest.raises(UserError, match="needs theta_pre"):
        interpolate.defend(replace(inputs, pretrained=None), cfg)



def test_the_margin_loss_keeps_a_gradient_where_cross_entropy_has_almost_none():
    import torch.nn.functional as F

    from bdunlearn.objectives import margin_loss

    logits = torch.tensor([[12.0, 0.0, -1.0]], requires_grad=True)  # the label already wins by far
    labels = torch.tensor([0])
    assert margin_loss(logits, labels).item() == pytest.approx(-12.0)
    (ce_grad,) = torch.autograd.grad(F.cross_entropy(logits, labels), logits)
    (margin_grad,) = torch.autograd.grad(margin_loss(logits, labels), logits)
    assert ce_grad.abs().max() < 1e-4 and margin_grad.abs().max() == pytest.approx(1.0)


@pytest.mark.parametrize("overrides", [{"optimizer": "sgd", "lr": 0.1}, {"loss": "margin"}])
def test_estimation_variants_give_a_different_trigger_vector(inputs, overrides):
    paper, _ = tbar.estimate_trigger_vector(inputs, _tbar())
    variant, _ = tbar.estimate_trigger_vector(inputs, _tbar(**overrides))
    assert set(variant) == set(paper)
    assert task_vectors.cosine(variant, paper) < 0.999
