"""BadCLIP's patch optimisation against a (tiny, random) CLIP: it lowers its loss, stays in [0, 1], is cached."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from bdunlearn.attacks import BadClip, PrepareContext
from bdunlearn.cache import ArtifactCache
from bdunlearn.data.images import ImageSet, to_pixels


@pytest.fixture(scope="module")
def classifier(tiny_clip):
    from bdunlearn.models.clip import preprocess_of, tokenizer
    from bdunlearn.models.zeroshot import ZeroShotClassifier, zeroshot_head

    head = zeroshot_head(tiny_clip, tokenizer("bdunlearn-tiny"), [str(d) for d in range(4)], ["the digit {}."], "cpu")
    return ZeroShotClassifier(tiny_clip, head, preprocess_of(tiny_clip))


@pytest.fixture(scope="module")
def train():
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (64, 1, 8, 8), generator=generator, dtype=torch.uint8)
    return ImageSet(images, torch.arange(64) % 4)


def _loss(attack: BadClip, classifier, train: ImageSet, patch: torch.Tensor) -> float:
    """The objective on every non-target training image: mean cos(own class) - cos(target class)."""
    victims = train.labels != attack.target_class
    pixels = to_pixels(train.images[victims], 16)
    stamped = BadClip(target_class=attack.target_class, poison_rate=0.1)
    stamped.optimised_patch = patch
    with torch.no_grad():
        features = F.normalize(classifier.clip.encode_image((stamped.apply(pixels) - classifier.mean) / classifier.std), dim=-1)
        similarity = features @ F.normalize(classifier.head, dim=-1).T
    own = similarity.gather(1, train.labels[victims][:, None]).squeeze(1)
    return (own - similarity[:, attack.target_class]).mean().item()


def test_optimised_patch_beats_its_random_start_and_is_cached(classifier, train, tmp_path):
    attack = BadClip(target_class=1, poison_rate=0.1, patch_size=4, optim_steps=15, optim_lr=0.1, optim_batch_size=16)
    before = {k: v.clone() for k, v in classifier.clip.state_dict().items()}
    context = PrepareContext(classifier=classifier, train=train, image_size=16, cache=ArtifactCache(tmp_path), spec={"model": "tiny"})
    with pytest.raises(RuntimeError, match="prepare"):
        attack.apply(torch.zeros(1, 3, 16, 16))
    attack.prepare(context)
    patch = attack.optimised_patch
    assert patch.shape == (3, 4, 4) and patch.min() >= 0 and patch.max() <= 1
    start = torch.rand(3, 4, 4, generator=torch.Generator().manual_seed(attack.optim_seed))
    assert _loss(attack, classifier, train, patch) < _loss(attack, classifier, train, start) - 0.01
    assert all(torch.equal(before[k], v) for k, v in classifier.clip.state_dict().items())  # theta_pre untouched
    assert all(p.grad is None for p in classifier.clip.parameters())

    again = BadClip(target_class=1, poison_rate=0.1, patch_size=4, optim_steps=15, optim_lr=0.1, optim_batch_size=16)
    again.prepare(context)  # from the cache
    assert torch.equal(again.optimised_patch, patch)
    assert len(list((tmp_path / "badclip_patch").glob("*/entry.json"))) == 1
    other = BadClip(target_class=2, poison_rate=0.1, patch_size=4, optim_steps=15, optim_lr=0.1, optim_batch_size=16)
    other.prepare(context)  # another target: another patch, another entry
    assert len(list((tmp_path / "badclip_patch").glob("*/entry.json"))) == 2

    stamped = attack.apply(torch.full((2, 3, 16, 16), 0.5))
    assert torch.equal(stamped[:, :, 12:, 12:], patch.expand(2, -1, -1, -1))
    assert torch.all(stamped[:, :, :12] == 0.5)
