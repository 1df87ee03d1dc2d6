import pytest
import torch

from bdunlearn import task_vectors as tv


def _state(seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "w": torch.randn(4, 3, generator=g),
        "b": torch.randn(3, generator=g),
        "ids": torch.arange(5),  # an integer buffer: never part of a task vector
    }


def test_subtract_covers_only_floating_tensors():
    a, b = _state(0), _state(1)
    vector = tv.subtract(a, b)
    assert set(vector) == {"w", "b"}
    torch.testing.assert_close(vector["w"], a["w"] - b["w"])


def test_add_inverts_subtract_and_keeps_integer_buffers():
    base, finetuned = _state(0), _state(1)
    finetuned["ids"] = base["ids"]
    rebuilt = tv.add(base, tv.subtract(finetuned, base), 1.0)
    for key in ("w", "b"):
        torch.testing.assert_close(rebuilt[key], finetuned[key])
    assert rebuilt["ids"] is base["ids"]


def test_negative_alpha_moves_against_the_vector():
    base, finetuned = _state(0), _state(1)
    vector = tv.subtract(finetuned, base)
    edited = tv.add(base, vector, -2.0)
    torch.testing.assert_close(edited["w"], base["w"] - 2.0 * (finetuned["w"] - base["w"]))
    assert not torch.equal(base["w"], edited["w"])  # the base is left untouched
    torch.testing.assert_close(tv.add(base, vector, 0.0)["w"], base["w"])


def test_partial_vectors_touch_only_their_keys():
    base = _state(0)
    edited = tv.add(base, {"w": torch.ones(4, 3)}, 0.5)
    torch.testing.assert_close(edited["w"], base["w"] + 0.5)
    assert edited["b"] is base["b"]


def test_mismatches_are_errors():
    base = _state(0)
    with pytest.raises(KeyError):
        tv.add(base, {"nope": torch.ones(1)}, 1.0)
    with pytest.raises(ValueError):
        tv.subtract({"w": torch.ones(2, 2)}, base)
    with pytest.raises(TypeError):
        tv.subtract({"ids": torch.arange(5)}, base, keys=["ids"])


def test_cosine_and_norm():
    a = {"x": torch.tensor([1.0, 0.0]), "y": torch.tensor([0.0])}
    b = {"x": torch.tensor([0.0, 2.0]), "y": torch.tensor([0.0])}
    assert tv.cosine(a, b) == pytest.approx(0.0)
    assert tv.cosine(a, tv.scale(a, 3.0)) == pytest.approx(1.0)
    assert tv.cosine(a, tv.scale(a, -1.0)) == pytest.approx(-1.0)
    assert tv.norm(b) == pytest.approx(2.0)
    assert tv.cosine(a, {"x": torch.zeros(2)}) == 0.0


def test_on_a_real_clip_state_dict(tiny_clip):
    state = tv.clone(tiny_clip.state_dict())
    shifted = {k: v + 1 if v.is_floating_point() else v for k, v in state.items()}
    vector = tv.subtract(shifted, state)
    assert set(vector) == set(tv.floating_keys(state))
    tiny_clip.load_state_dict(tv.add(state, vector, -1.0))
    for key, value in tiny_clip.state_dict().items():
        torch.testing.assert_close(value, state[key] - 1 if value.is_floating_point() else state[key])
    tiny_clip.load_state_dict(state)
