import torch

from bdunlearn.attacks import BadNets
from bdunlearn.data.images import ImageSet
from bdunlearn.data.poison import clean, poison, triggered_target_set
from bdunlearn.models.clip import preprocess_of, tokenizer
from bdunlearn.models.zeroshot import ZeroShotClassifier, zeroshot_head
from bdunlearn.objectives import finetune_classifier
from bdunlearn.params import trainable_parameters
from bdunlearn.training import OptimSettings


def _classifier(clip, names=("0", "1", "2")):
    head = zeroshot_head(clip, tokenizer("bdunlearn-tiny"), names, ["a photo of {}.", "the number {}."], "cpu")
    return ZeroShotClassifier(clip, head, preprocess_of(clip))


def test_zeroshot_head_is_normalised_and_scaled(tiny_clip):
    head = zeroshot_head(tiny_clip, tokenizer("bdunlearn-tiny"), ["cat", "dog", "car"], ["a {}.", "the {}."], "cpu")
    assert head.shape == (3, 64) and not head.requires_grad
    norms = head.norm(dim=1)
    torch.testing.assert_close(norms, torch.full((3,), tiny_clip.logit_scale.exp().item()))


def test_classifier_logits_shape_and_no_gradient_to_head(tiny_clip):
    classifier = _classifier(tiny_clip)
    logits = classifier(torch.rand(5, 3, 16, 16))
    assert logits.shape == (5, 3)
    assert "head" not in dict(classifier.named_parameters())


def test_trainable_parameters_freeze_the_text_tower(tiny_clip):
    chosen = trainable_parameters(tiny_clip, "visual")
    assert chosen and all(name.startswith("visual.") for name in chosen)
    assert not tiny_clip.token_embedding.weight.requires_grad
    trainable_parameters(tiny_clip, "")  # restore: everything trainable


def test_poisoned_finetune_lowers_the_loss_and_learns_the_trigger(tiny_clip):
    import copy

    clip = copy.deepcopy(tiny_clip)
    classifier = _classifier(clip)
    g = torch.Generator().manual_seed(0)
    data = ImageSet((torch.rand(60, 1, 8, 8, generator=g) * 120).to(torch.uint8), torch.arange(60) % 3)
    attack = BadNets(target_class=2, poison_rate=0.5, patch_size=4)
    train = poison(data, attack, attack.poison_indices(data.labels, seed=0))
    assert train.triggered.sum() == 30 and torch.all(train.labels[train.triggered] == 2)
    params = list(trainable_parameters(clip, "visual").values())
    result = finetune_classifier(classifier, params, train, attack, 16, OptimSettings(60, 20, 3e-3), seed=0, desc="test")
    assert result.losses[-1] < result.losses[0]
    tbar_set = triggered_target_set(data, target_class=2, clean_count=10)
    assert tbar_set.triggered.sum() == 50 and torch.all(tbar_set.labels[10:] == 2)
    assert torch.equal(tbar_set.labels[:10], data.labels[:10])
    assert clean(data).triggered.sum() == 0
