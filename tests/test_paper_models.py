"""Paper-scale models: the ViT configs with OpenAI and LAION tags, and the check that their weights can be had."""

from __future__ import annotations

import pytest

from bdunlearn.config import CONFIG_DIR
from bdunlearn.errors import UserError
from bdunlearn.models import weights
from bdunlearn.preflight import validated

VITS = {"vit_b32": ("ViT-B-32", "laion2b_s34b_b79k"), "vit_b16": ("ViT-B-16", "laion2b_s34b_b88k"), "vit_l14": ("ViT-L-14", "laion2b_s32b_b82k")}
HUB_REPOS = {"ViT-B-32": "timm/vit_base_patch32_clip_224.openai", "ViT-B-16": "timm/vit_base_patch16_clip_224.openai"}


def fake_hub_cache(root, repo_id: str, filename: str = "open_clip_model.safetensors"):
    """The Hugging Face hub cache layout: models--org--name/{refs/main, snapshots/<commit>/<file>}."""
    repo = root / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0123abcd")
    (repo / "snapshots" / "0123abcd").mkdir(parents=True)
    (repo / "snapshots" / "0123abcd" / filename).write_bytes(b"weights")
    return root


@pytest.mark.parametrize("option", sorted(VITS))
def test_vit_configs_name_open_clip_models_with_openai_and_laion_tags(compose, option):
    import open_clip

    cfg = compose(f"model={option}")
    name, laion = VITS[option]
    assert cfg.model.name == name and cfg.model.pretrained == "openai"
    tags = open_clip.list_pretrained_tags_by_model(name)
    assert "openai" in tags and laion in tags
    assert laion in (CONFIG_DIR / "model" / f"{option}.yaml").read_text()  # the LAION choice is documented


def test_missing_weights_offline_fail_validation_with_the_fix(compose, tmp_path):
    with pytest.raises(UserError) as excinfo:
        validated(compose("model=vit_b16", f"model.cache_dir={tmp_path}"))
    message = str(excinfo.value)
    assert "\n" not in message and "ViT-B-16/openai" in message and "cannot be downloaded offline" in message
    assert "model.cache_dir" in message and "create_model('ViT-B-16', pretrained='openai')" in message


@pytest.mark.parametrize("filename", ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"])
def test_weights_in_the_hub_cache_are_found(compose, tmp_path, filename):
    cache = fake_hub_cache(tmp_path, HUB_REPOS["ViT-B-16"], filename)
    found = weights.cached_file("ViT-B-16", "openai", str(cache))
    assert found is not None and found.endswith(filename)
    run = validated(compose("model=vit_b16", f"model.cache_dir={cache}"))
    assert run.model.name == "ViT-B-16" and run.dataset.image_size is None  # digits are arrays: no storage size


def test_a_laion_tag_is_looked_up_in_its_own_hub_repository(tmp_path):
    assert weights.cached_file("ViT-B-32", "laion2b_s34b_b79k", str(tmp_path)) is None
    cache = fake_hub_cache(tmp_path, "laion/CLIP-ViT-B-32-laion2B-s34B-b79K")
    assert weights.cached_file("ViT-B-32", "laion2b_s34b_b79k", str(cache)) is not None
    assert weights.cached_file("ViT-B-32", "openai", str(cache)) is None
