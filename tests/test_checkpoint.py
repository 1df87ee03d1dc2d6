import pickle

import pytest
import torch

from bdunlearn.errors import UserError
from bdunlearn.models.checkpoint import load_state_dict, save_state_dict


def test_safetensors_round_trip_with_metadata(tmp_path):
    state = {"a": torch.randn(3, 2), "b": torch.arange(4)}
    path = tmp_path / "m.safetensors"
    save_state_dict(path, state, {"recipe": {"lr": 1e-3}})
    loaded = load_state_dict(path)
    assert torch.equal(loaded["a"], state["a"]) and torch.equal(loaded["b"], state["b"])
    assert not list(tmp_path.glob(".*tmp"))  # written under a temporary name, then renamed


def test_weights_only_state_dict_is_accepted(tmp_path):
    path = tmp_path / "m.pt"
    torch.save({"state_dict": {"module.w": torch.ones(2)}}, path)
    assert list(load_state_dict(path)) == ["w"]


class _Exploit:
    def __reduce__(self):
        import pathlib

        return (pathlib.Path.touch, (pathlib.Path(_Exploit.marker),))


def test_a_malicious_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    _Exploit.marker = str(marker)
    path = tmp_path / "evil.pt"
    torch.save({"w": torch.ones(1), "payload": _Exploit()}, path)
    with pytest.raises(UserError, match="weights-only"):
        load_state_dict(path)
    assert not marker.exists()
    raw = tmp_path / "evil.pkl"
    raw.write_bytes(pickle.dumps(_Exploit()))
    with pytest.raises(UserError):
        load_state_dict(raw)
    assert not marker.exists()


def test_truncated_or_garbage_files_are_user_errors(tmp_path):
    good = tmp_path / "m.safetensors"
    save_state_dict(good, {"a": torch.randn(64, 64)})
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(good.read_bytes()[:200])
    with pytest.raises(UserError, match="safetensors"):
        load_state_dict(cut)
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(UserError):
        load_state_dict(junk)
    with pytest.raises(UserError, match="not found"):
        load_state_dict(tmp_path / "missing.safetensors")
