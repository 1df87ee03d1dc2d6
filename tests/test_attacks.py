import pytest
import torch

from bdunlearn.attacks import BadNets


def _images(batch=6, size=16, seed=0):
    return torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("location", ["bottom_right", "bottom_left", "top_right", "top_left", "center"])
def test_badnets_changes_only_the_patch(location):
    attack = BadNets(target_class=0, poison_rate=0.1, patch_size=3, location=location)
    x = _images()
    y = attack.apply(x)
    changed = (y != x).any(dim=1)  # [B, H, W]
    rows, cols = torch.nonzero(changed[0], as_tuple=True)
    assert rows.max() - rows.min() <= 2 and cols.max() - cols.min() <= 2
    assert torch.equal(changed, changed[:1].expand_as(changed))  # the same place in every image
    assert torch.all(y[changed.unsqueeze(1).expand_as(y)] == 1.0)  # a white patch
    assert torch.equal(x, _images())  # input untouched


def test_badnets_corner_positions():
    x = torch.zeros(1, 3, 8, 8)
    assert BadNets(target_class=0, poison_rate=0.1, patch_size=2, location="bottom_right").apply(x)[0, 0, 6:, 6:].eq(1).all()
    assert BadNets(target_class=0, poison_rate=0.1, patch_size=2, location="top_left").apply(x)[0, 0, :2, :2].eq(1).all()
    assert BadNets(target_class=0, poison_rate=0.1, patch_size=2, location="top_left").apply(x).sum() == 3 * 4


@pytest.mark.parametrize("pattern", ["checkerboard", "noise", "black"])
def test_badnets_patterns_are_fixed(pattern):
    attack = BadNets(target_class=0, poison_rate=0.1, patch_size=4, pattern=pattern)
    patch = attack.patch(3)
    assert patch.shape == (3, 4, 4) and patch.min() >= 0 and patch.max() <= 1
    assert torch.equal(patch, BadNets(target_class=0, poison_rate=0.1, patch_size=4, pattern=pattern).patch(3))
    x = torch.full((2, 3, 8, 8), 0.5)
    assert torch.equal(attack.apply(x)[0, :, 4:, 4:], patch)


def test_badnets_random_location_is_per_image_and_seeded():
    attack = BadNets(target_class=0, poison_rate=0.1, patch_size=3, location="random")
    x = torch.zeros(64, 3, 16, 16)
    a = attack.apply(x, torch.Generator().manual_seed(1))
    b = attack.apply(x, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    assert torch.all(a.sum(dim=(1, 2, 3)) == 27)  # every image carries a whole 3x3 patch
    positions = {tuple(torch.nonzero(img[0])[0].tolist()) for img in a}
    assert len(positions) > 10


def test_badnets_runs_in_batches_of_any_size_and_dtype():
    attack = BadNets(target_class=0, poison_rate=0.1, patch_size=2)
    assert attack.apply(torch.zeros(0, 3, 8, 8)).shape == (0, 3, 8, 8)
    assert attack.apply(torch.zeros(2, 1, 8, 8, dtype=torch.float64)).dtype == torch.float64
    with pytest.raises(ValueError):
        BadNets(target_class=0, poison_rate=0.1, patch_size=9).apply(torch.zeros(1, 3, 8, 8))


def test_poison_indices_count_source_and_seed():
    labels = torch.arange(100) % 10
    attack = BadNets(target_class=3, poison_rate=0.1)
    chosen = attack.poison_indices(labels, seed=0)
    assert len(chosen) == 10 and len(set(chosen.tolist())) == 10
    assert torch.all(labels[chosen] != 3)  # all-to-one: never the target class itself
    assert torch.equal(chosen, attack.poison_indices(labels, seed=0))
    assert not torch.equal(chosen, attack.poison_indices(labels, seed=1))
    assert torch.all(attack.poisoned_labels(labels[chosen]) == 3)
