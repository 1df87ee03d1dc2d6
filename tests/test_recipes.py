"""Cache keys carry the version of the recipe that builds each artifact (bdunlearn/config/keys.py: RECIPES).

An unchanged recipe is a cache hit; a bumped version or a changed spec rebuilds. The fingerprints below pin
what each recipe version computes on a shrunken default run: a code change that moves those numbers without
a version bump fails here, so a stale cached theta_pre / theta_b / tau_t is never reused silently.
"""

from __future__ import annotations

import pytest
import torch

from bdunlearn import api, pipeline, task_vectors
from bdunlearn.cache import ArtifactCache
from bdunlearn.config import keys
from bdunlearn.pretrained import build_model

SHRUNK = ["model.pretrain.steps=6", "finetune.steps=6", "defense.steps=4", "defense.alpha_grid=[0.5]", "use_cache=false", "checkpoint_every=0"]
# (kind, recipe version) -> (sum of |d|, L2 norm of d) on the SHRUNK run, d what the recipe changed: theta_pre minus its
# random initialisation, theta_b minus theta_pre, tau_t itself. Measured in fp32 on a CPU.
FINGERPRINTS = {
    ("pretrained", 1): (91.63934671310697, 0.2353747494044044),
    ("backdoored", 1): (68.3193639198183, 0.22469020497496622),
    ("trigger_vector", 1): (26.328139194549294, 0.08043066126718265),
}


def fingerprint(state: dict) -> tuple[float, float]:
    tensors = [v.double() for v in state.values() if v.is_floating_point()]
    return float(sum(t.abs().sum() for t in tensors)), float(torch.sqrt(sum((t * t).sum() for t in tensors)))


@pytest.fixture(scope="module")
def artifacts():
    ctx = pipeline.prepare(api.config(SHRUNK))
    initial = build_model(ctx.cfg.model, ctx.device)[0].state_dict()
    backdoored, _ = pipeline.obtain_backdoored(ctx)
    outcome = pipeline.defend(ctx, backdoored, ctx.attack, ctx.cfg.attack.target_class)
    return {
        "pretrained": task_vectors.subtract(ctx.pretrained, initial),
        "backdoored": task_vectors.subtract(backdoored, ctx.pretrained),
        "trigger_vector": outcome.extras["trigger_vector"],
    }


@pytest.mark.parametrize("kind", ["pretrained", "backdoored", "trigger_vector"])
def test_each_recipe_computes_what_its_version_pinned(artifacts, kind):
    version = keys.RECIPES[kind]
    expected = FINGERPRINTS[(kind, version)]
    got = fingerprint(artifacts[kind])
    assert got == pytest.approx(expected, rel=1e-4), (
        f"the {kind} recipe now computes {got}, not what version {version} pinned ({expected}): if the change is meant, "
        f"bump RECIPES[{kind!r}] in bdunlearn/config/keys.py and pin the new fingerprint here"
    )


def test_an_unchanged_recipe_is_a_cache_hit_and_a_bumped_one_rebuilds(tmp_path, monkeypatch):
    cache, spec, builds = ArtifactCache(tmp_path), {"finetune": {"lr": 1e-3}}, []

    def build():
        builds.append(1)
        return {"w": torch.full((2,), float(len(builds)))}, {}

    assert cache.get_or_build("backdoored", spec, build)[2] is False
    state, _, hit = cache.get_or_build("backdoored", spec, build)
    assert hit and len(builds) == 1 and state["w"][0] == 1
    monkeypatch.setitem(keys.RECIPES, "backdoored", keys.RECIPES["backdoored"] + 1)
    state, _, hit = cache.get_or_build("backdoored", spec, build)
    assert not hit and len(builds) == 2 and state["w"][0] == 2


def test_a_changed_theta_b_spec_changes_its_key_and_a_logging_change_does_not():
    def key(*overrides):
        cfg = api.config(overrides)
        return keys.artifact_key("backdoored", pipeline.prepare_spec(cfg, "backdoored"))

    base = key()
    assert key("finetune.lr=0.002") != base
    assert key("attack.patch_size=4") != base
    assert key("logger.wandb.mode=disabled", "eval_batch_size=64", "defense.steps=7") == base
