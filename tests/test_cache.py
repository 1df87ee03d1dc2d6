import torch

from bdunlearn.cache import ArtifactCache


def test_builds_once_then_reuses(tmp_path):
    cache = ArtifactCache(tmp_path)
    calls = []

    def build():
        calls.append(1)
        return {"w": torch.full((2,), float(len(calls)))}, {"note": "built"}

    state, meta, hit = cache.get_or_build("backdoored", {"a": 1}, build)
    assert not hit and meta == {"note": "built"}
    state2, meta2, hit2 = cache.get_or_build("backdoored", {"a": 1}, build)
    assert hit2 and torch.equal(state["w"], state2["w"]) and meta2 == meta and len(calls) == 1
    _, _, hit3 = cache.get_or_build("backdoored", {"a": 2}, build)
    assert not hit3 and len(calls) == 2


def test_a_damaged_entry_is_rebuilt_not_loaded(tmp_path):
    cache = ArtifactCache(tmp_path)
    cache.get_or_build("backdoored", {"a": 1}, lambda: ({"w": torch.zeros(1000)}, {}))
    weights = cache.entry_dir("backdoored", {"a": 1}) / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8] + b"\xff" * 8)
    assert cache.load("backdoored", {"a": 1}) is None
    state, _, hit = cache.get_or_build("backdoored", {"a": 1}, lambda: ({"w": torch.ones(3)}, {}))
    assert not hit and torch.equal(state["w"], torch.ones(3))
    assert cache.load("backdoored", {"a": 1}) is not None


def test_an_entry_without_its_record_counts_as_absent(tmp_path):
    cache = ArtifactCache(tmp_path)
    cache.get_or_build("backdoored", {"a": 1}, lambda: ({"w": torch.zeros(1)}, {}))
    (cache.entry_dir("backdoored", {"a": 1}) / "entry.json").unlink()  # as if killed before the record was written
    assert cache.load("backdoored", {"a": 1}) is None


def test_disabled_cache_always_builds(tmp_path):
    cache = ArtifactCache(tmp_path, enabled=False)
    _, _, hit = cache.get_or_build("backdoored", {"a": 1}, lambda: ({"w": torch.zeros(1)}, {}))
    assert not hit and not any(tmp_path.iterdir())
