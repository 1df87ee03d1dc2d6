"""Each attack's trigger, tested on tensors: the properties that make it that attack, and the shared contract."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from bdunlearn.attacks import (
    REGISTRY,
    BadClip,
    BadNets,
    Blended,
    NoAttack,
    Sig,
    WaNet,
    patterns,
)
from bdunlearn.data.images import ImageSet
from bdunlearn.data.poison import poison


def _images(batch=6, size=16, seed=0, dtype=torch.float32):
    return torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _badclip_with_patch() -> BadClip:
    attack = BadClip(target_class=0, poison_rate=0.1, patch_size=3)
    attack.optimised_patch = patterns.noise(3, 3, 3, seed=7)  # stands in for prepare(); optimisation: test_attacks_badclip
    return attack


TRIGGERED = {
    "badnets": lambda: BadNets(target_class=0, poison_rate=0.1),
    "badnets_random": lambda: BadNets(target_class=0, poison_rate=0.1, location="random", pattern="noise"),
    "blended": lambda: Blended(target_class=0, poison_rate=0.1),
    "wanet": lambda: WaNet(target_class=0, poison_rate=0.1),
    "sig": lambda: Sig(target_class=0, poison_rate=0.1),
    "badclip": _badclip_with_patch,
}


def test_every_registered_attack_is_covered():
    assert set(REGISTRY) - {"none"} == {name.split("_")[0] for name in TRIGGERED}


@pytest.mark.parametrize("name", sorted(TRIGGERED))
def test_shared_contract_range_shape_dtype_determinism(name):
    attack = TRIGGERED[name]()
    for dtype in (torch.float32, torch.float64):
        x = _images(dtype=dtype)
        before = x.clone()
        y = attack.apply(x, torch.Generator().manual_seed(3))
        assert y.shape == x.shape and y.dtype == x.dtype and y.device == x.device
        assert y.min() >= 0 and y.max() <= 1
        assert not torch.equal(y, x)  # it does something
        assert torch.equal(x, before)  # and leaves its input alone
        assert torch.equal(y, attack.apply(x, torch.Generator().manual_seed(3)))
    assert attack.apply(torch.zeros(0, 3, 16, 16)).shape == (0, 3, 16, 16)


@pytest.mark.parametrize("name", sorted(TRIGGERED))
def test_the_same_seed_gives_the_same_poisoned_set(name):
    attack = TRIGGERED[name]()
    labels = torch.arange(200) % 2  # 100 samples in and out of the target class: more than the 20 poisoned
    chosen = attack.poison_indices(labels, seed=0)
    assert torch.equal(chosen, attack.poison_indices(labels, seed=0))
    assert not torch.equal(chosen, attack.poison_indices(labels, seed=1))
    assert len(set(chosen.tolist())) == len(chosen) > 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("name", sorted(TRIGGERED))
def test_triggers_run_on_the_gpu_and_match_the_cpu(name):
    attack = TRIGGERED[name]()
    x = _images()
    on_gpu = attack.apply(x.cuda(), torch.Generator().manual_seed(0))
    assert on_gpu.is_cuda
    torch.testing.assert_close(on_gpu.cpu(), attack.apply(x, torch.Generator().manual_seed(0)), atol=1e-5, rtol=0)
    assert torch.equal(attack.apply_(x.cuda(), torch.Generator().manual_seed(0)), on_gpu)


# --- in place: apply_ and apply_where_ give apply's pixels ---------------------------------------------------

WITH_NONE = {**TRIGGERED, "none": lambda: NoAttack(target_class=0, poison_rate=0.0)}


def _allocated_bytes(fn) -> int:
    """Bytes of CPU memory allocated while ``fn`` runs (torch's profiler)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    return sum(event.cpu_memory_usage for event in prof.events() if event.cpu_memory_usage > 0)


@pytest.mark.parametrize("name", sorted(WITH_NONE))
def test_in_place_trigger_equals_the_pure_one(name):
    attack = WITH_NONE[name]()
    for dtype in (torch.float32, torch.float64):
        x = _images(dtype=dtype)
        expected = attack.apply(x, torch.Generator().manual_seed(3))
        out = attack.apply_(x, torch.Generator().manual_seed(3))
        assert out is x and out.data_ptr() == x.data_ptr()
        assert torch.equal(x, expected)
    assert attack.apply_(torch.zeros(0, 3, 16, 16)).shape == (0, 3, 16, 16)


@pytest.mark.parametrize("name", sorted(WITH_NONE))
def test_in_place_trigger_on_a_strided_view_writes_only_that_view(name):
    attack = WITH_NONE[name]()
    base = _images(batch=12, size=20)
    view = base[::2, :, 2:18, 2:18]  # every other image, a 16x16 crop: not contiguous
    assert not view.is_contiguous()
    expected = attack.apply(view.contiguous(), torch.Generator().manual_seed(3))
    outside = torch.ones_like(base, dtype=torch.bool)
    outside[::2, :, 2:18, 2:18] = False
    before = base.clone()
    assert attack.apply_(view, torch.Generator().manual_seed(3)) is view
    assert torch.equal(view, expected)
    assert torch.equal(base[outside], before[outside])


@pytest.mark.parametrize("name", ["badclip", "badnets", "badnets_random", "blended", "sig"])
def test_in_place_trigger_allocates_no_batch(name):
    attack = TRIGGERED[name]()
    x = _images(batch=16, size=32)
    attack.apply_(x.clone())  # patterns are made and cached on the first call
    assert _allocated_bytes(lambda: attack.apply(x)) >= x.nbytes  # the measurement sees a batch copy
    assert _allocated_bytes(lambda: attack.apply_(x)) < x.nbytes / 10


@pytest.mark.parametrize("name", sorted(WITH_NONE))
@pytest.mark.parametrize("flags", ["none", "some", "all"])
def test_apply_where_equals_gather_trigger_scatter(name, flags):
    attack = WITH_NONE[name]()
    flagged = {"none": torch.zeros(6, dtype=torch.bool), "some": torch.arange(6) % 3 == 1, "all": torch.ones(6, dtype=torch.bool)}[flags]
    expected = _images()
    if flagged.any():
        expected[flagged] = attack.apply(expected[flagged], torch.Generator().manual_seed(3))
    x = _images()
    assert attack.apply_where_(x, flagged, torch.Generator().manual_seed(3)) is x
    assert torch.equal(x, expected)


# --- BadNets ------------------------------------------------------------------------------------------------


def test_badnets_patch_from_an_image_file(tmp_path):
    from PIL import Image

    pixels = torch.randint(0, 256, (4, 4, 3), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    Image.fromarray(pixels.numpy()).save(tmp_path / "trigger.png")
    attack = BadNets(target_class=0, poison_rate=0.1, patch_size=4, pattern="file", pattern_file=str(tmp_path / "trigger.png"))
    x = torch.full((2, 3, 8, 8), 0.5)
    y = attack.apply(x)
    assert torch.equal(y[:, :, 4:, 4:], (pixels.permute(2, 0, 1).float() / 255).expand(2, -1, -1, -1))
    assert torch.equal(y[:, :, :4], x[:, :, :4]) and torch.equal(y[:, :, :, :4], x[:, :, :, :4])


# --- Blended ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ratio", [0.1, 0.2, 0.5, 1.0])
def test_blended_is_exactly_the_convex_combination(ratio):
    attack = Blended(target_class=0, poison_rate=0.1, blend_ratio=ratio, pattern_seed=5)
    x = _images(dtype=torch.float64)
    pattern = patterns.noise(3, 16, 16, seed=5).double()
    torch.testing.assert_close(attack.apply(x), (1 - ratio) * x + ratio * pattern, atol=1e-12, rtol=0)
    assert attack.blend_pattern(3, 16, 16).shape == (3, 16, 16)
    assert not torch.equal(pattern, Blended(target_class=0, poison_rate=0.1, pattern_seed=6).blend_pattern(3, 16, 16).double())


def test_blended_with_an_image_file_resizes_it_to_the_input(tmp_path):
    from PIL import Image

    Image.new("RGB", (32, 32), (255, 0, 0)).save(tmp_path / "red.png")
    attack = Blended(target_class=0, poison_rate=0.1, blend_ratio=1.0, pattern="file", pattern_file=str(tmp_path / "red.png"))
    y = attack.apply(torch.zeros(2, 3, 16, 16))
    assert torch.allclose(y[:, 0], torch.ones(2, 16, 16)) and torch.equal(y[:, 1:], torch.zeros(2, 2, 16, 16))


# --- WaNet --------------------------------------------------------------------------------------------------


def _column_ramp(size: int) -> torch.Tensor:
    """An image whose value at column j is j / (size - 1): bilinear sampling reads back the x coordinate."""
    return torch.linspace(0, 1, size, dtype=torch.float64).expand(1, 3, size, size).clone()


@pytest.mark.parametrize("strength", [0.25, 0.5, 1.0, 2.0])
def test_wanet_displacement_is_bounded_by_the_strength(strength):
    size = 16
    attack = WaNet(target_class=0, poison_rate=0.1, grid_size=4, strength=strength)
    control = attack.control_field()
    assert control.abs().mean().item() == pytest.approx(1.0)
    # bicubic upsampling (PyTorch's a = -0.75) overshoots its control values by at most 1.375 per axis
    bound_normalised = strength * control.abs().max().item() * 1.375**2 / size
    identity = F.affine_grid(torch.eye(2, 3)[None], [1, 3, size, size], align_corners=True)
    shift = (attack.warp_grid(size, size) - identity).abs()
    assert shift.max().item() <= bound_normalised + 1e-6
    assert shift.mean().item() > 0.25 * strength / size  # and it really moves pixels
    # what grid_sample does with it: the ramp reads back each pixel's x displacement, in pixels
    ramp = _column_ramp(size)
    moved_px = (attack.apply(ramp) - ramp)[0, 0].abs() * (size - 1)
    interior = moved_px[1:-1, 1:-1]  # the border may also be clamped to [-1, 1]
    assert interior.max().item() <= bound_normalised * (size - 1) / 2 + 1e-6


def test_wanet_displacement_scales_linearly_with_strength():
    identity = F.affine_grid(torch.eye(2, 3)[None], [1, 3, 64, 64], align_corners=True)
    weak = WaNet(target_class=0, poison_rate=0.1, strength=0.1).warp_grid(64, 64) - identity
    strong = WaNet(target_class=0, poison_rate=0.1, strength=0.3).warp_grid(64, 64) - identity
    torch.testing.assert_close(strong, 3 * weak, atol=1e-5, rtol=0)  # far from the clamp at the border


def test_wanet_warp_is_the_same_for_every_image_and_seeded():
    attack = WaNet(target_class=0, poison_rate=0.1)
    one = _images(batch=1)
    assert torch.equal(attack.apply(one.expand(4, -1, -1, -1))[2:3], attack.apply(one))
    other = WaNet(target_class=0, poison_rate=0.1, warp_seed=1)
    assert not torch.allclose(attack.apply(one), other.apply(one))


def test_wanet_cross_samples_get_a_different_random_warp_per_image():
    attack = WaNet(target_class=0, poison_rate=0.1)
    same = _images(batch=1).expand(3, -1, -1, -1)
    crossed = attack.apply_cross(same, torch.Generator().manual_seed(0))
    assert crossed.min() >= 0 and crossed.max() <= 1
    assert not torch.allclose(crossed[0], crossed[1])  # a fresh perturbation per image
    assert not torch.allclose(crossed[0], attack.apply(same[:1])[0])  # not the trigger itself
    assert torch.equal(crossed, attack.apply_cross(same, torch.Generator().manual_seed(0)))


def test_wanet_cross_samples_are_disjoint_counted_and_keep_their_labels():
    attack = WaNet(target_class=2, poison_rate=0.1, cross_ratio=2.0)
    labels = torch.arange(300) % 10
    poisoned = attack.poison_indices(labels, seed=0)
    cross = attack.cross_indices(labels, poisoned, seed=0)
    assert len(cross) == round(2.0 * len(poisoned))
    assert not set(cross.tolist()) & set(poisoned.tolist())
    assert torch.equal(cross, attack.cross_indices(labels, poisoned, seed=0))
    data = poison(ImageSet(torch.zeros(300, 1, 8, 8, dtype=torch.uint8), labels), attack, poisoned, cross)
    assert torch.equal(data.labels[cross], labels[cross]) and torch.all(data.labels[poisoned] == 2)
    assert torch.equal(torch.nonzero(data.cross).flatten(), cross) and not bool((data.cross & data.triggered).any())
    no_noise = WaNet(target_class=2, poison_rate=0.1, cross_ratio=0.0)
    assert len(no_noise.cross_indices(labels, poisoned, seed=0)) == 0


# --- SIG ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("amplitude,frequency", [(0.2, 6.0), (0.1, 3.0), (0.3, 1.0)])
def test_sig_adds_the_horizontal_sinusoid(amplitude, frequency):
    attack = Sig(target_class=0, poison_rate=0.1, amplitude=amplitude, frequency=frequency)
    x = torch.full((2, 3, 16, 16), 0.5, dtype=torch.float64)  # far enough from 0 and 1 that nothing is clipped
    expected = torch.tensor([amplitude * math.sin(2 * math.pi * j * frequency / 16) for j in range(16)], dtype=torch.float64)
    torch.testing.assert_close(attack.apply(x) - x, expected.expand_as(x), atol=1e-12, rtol=0)


def test_sig_clips_to_the_pixel_range():
    attack = Sig(target_class=0, poison_rate=0.1, amplitude=0.5)
    y = attack.apply(torch.cat([torch.zeros(1, 3, 16, 16), torch.ones(1, 3, 16, 16)]))
    assert y[0].min() == 0 and y[1].max() == 1 and y[0].max() > 0 and y[1].min() < 1


def test_sig_poisons_only_target_class_samples_and_keeps_their_labels():
    attack = Sig(target_class=4, poison_rate=0.05)
    labels = torch.arange(400) % 10
    chosen = attack.poison_indices(labels, seed=0)
    assert len(chosen) == 20 and torch.all(labels[chosen] == 4)
    assert torch.equal(attack.poisoned_labels(labels[chosen]), labels[chosen])
    everything = Sig(target_class=4, poison_rate=0.5).poison_indices(labels, seed=0)
    assert torch.equal(everything, torch.nonzero(labels == 4).flatten())  # capped by the target class's share


# --- none ---------------------------------------------------------------------------------------------------


def test_no_attack_poisons_nothing_and_has_no_trigger():
    attack = NoAttack(target_class=0, poison_rate=0.0)
    assert not attack.has_trigger and len(attack.poison_indices(torch.arange(100) % 10, seed=0)) == 0
    assert len(attack.cross_indices(torch.arange(100) % 10, torch.empty(0, dtype=torch.long), seed=0)) == 0
