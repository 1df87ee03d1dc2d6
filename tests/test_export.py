"""Exporting a model into open_clip's hub layout: plain open_clip (without bdunlearn) loads it and computes the
same outputs; bdunlearn recognises it; the model card states what was done; pushing is refused offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from bdunlearn.errors import UserError
from bdunlearn.models import clip, export
from bdunlearn.models.architectures import architecture

RECORD = {
    "status": "ok", "model": "bdunlearn-tiny", "pretrained": None, "dataset": "digits", "attack": "badnets",
    "defense": "tbar", "seed": 0, "target_class": 0, "poison_rate": 0.05, "attack_knowledge": "known",
    "clean_acc_pretrained": 0.50, "clean_acc_backdoored": 0.9, "asr_backdoored": 0.99, "robust_acc_backdoored": 0.01,
    "clean_acc": 0.87, "asr": 0.02, "robust_acc": 0.85, "clean_acc_retained": 0.87 / 0.9, "alpha": 1.5,
    "alpha_curve": [{"alpha": 0.0, "val_clean_acc": 0.9, "val_asr": 0.99}], "defense_samples": 300,
    "defense_seconds": 4.25, "config_hash": "0123456789abcdef", "control_acc": None,
}  # fmt: skip
COMMAND = "bdunlearn dataset=digits attack=badnets defense=tbar seed=0"

# Run by a fresh interpreter in a folder outside the repository: only open_clip, never bdunlearn.
PLAIN_OPEN_CLIP = """
import sys, torch, open_clip
folder, inputs, out = sys.argv[1:]
model, _, val = open_clip.create_model_and_transforms("local-dir:" + folder)
tokenizer = open_clip.get_tokenizer("local-dir:" + folder)
model.eval()
images = torch.load(inputs)
tokens = tokenizer(["a photo of a 0.", "a photo of a 7."])
with torch.no_grad():
    image, text = model.encode_image(images, normalize=True), model.encode_text(tokens, normalize=True)
torch.save({"state": model.state_dict(), "tokens": tokens, "image": image, "text": text,
            "logits": model.logit_scale.exp() * image @ text.T, "size": val.transforms[0].size,
            "bdunlearn_imported": any(m.startswith("bdunlearn") for m in sys.modules)}, out)
"""


def load_with_plain_open_clip(folder, tmp_path, images: torch.Tensor) -> dict:
    torch.save(images, tmp_path / "inputs.pt")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run(
        [sys.executable, "-c", PLAIN_OPEN_CLIP, str(folder), str(tmp_path / "inputs.pt"), str(tmp_path / "out.pt")],
        check=True, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    return torch.load(tmp_path / "out.pt", weights_only=False)


def outputs_here(model, tokens: torch.Tensor, images: torch.Tensor) -> dict:
    model.eval()
    with torch.no_grad():
        image, text = model.encode_image(images, normalize=True), model.encode_text(tokens, normalize=True)
    return {"image": image, "text": text, "logits": model.logit_scale.exp() * image @ text.T}


@pytest.fixture
def trained_looking_tiny():
    """The tiny CLIP with random weights and a logit scale unlike the initial one (so it must travel too)."""
    torch.manual_seed(1)
    model = clip.create("bdunlearn-tiny")
    with torch.no_grad():
        model.logit_scale.fill_(3.0)
    return model


def test_plain_open_clip_loads_the_export_and_computes_the_same_outputs(tmp_path, trained_looking_tiny):
    folder = export.export_model(tmp_path / "defended", trained_looking_tiny, "bdunlearn-tiny", record=RECORD, command=COMMAND)
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "open_clip_config.json", "open_clip_model.safetensors"]
    config = json.loads((folder / "open_clip_config.json").read_text())
    assert config["model_cfg"] == architecture("bdunlearn-tiny")  # the whole architecture: no registration needed
    assert config["preprocess_cfg"]["mean"] == list(trained_looking_tiny.visual.preprocess_cfg["mean"])

    images = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    loaded = load_with_plain_open_clip(folder, tmp_path, images)
    assert loaded["bdunlearn_imported"] is False and loaded["size"] == 16
    original = trained_looking_tiny.state_dict()
    assert loaded["state"].keys() == original.keys()
    assert all(torch.equal(loaded["state"][k], original[k]) for k in original)  # bit for bit
    here = outputs_here(trained_looking_tiny, loaded["tokens"], images)
    for key in ("image", "text", "logits"):
        torch.testing.assert_close(loaded[key], here[key], rtol=1e-5, atol=1e-6)


def test_an_fp16_export_is_half_the_size_and_loads_close(tmp_path, trained_looking_tiny):
    full = export.export_model(tmp_path / "fp32", trained_looking_tiny.state_dict(), "bdunlearn-tiny")
    half = export.export_model(tmp_path / "fp16", trained_looking_tiny, "bdunlearn-tiny", dtype=torch.float16)
    cost = export.export_cost("bdunlearn-tiny")
    assert cost["parameters"] == sum(p.numel() for p in trained_looking_tiny.state_dict().values())
    size = {name: (folder / export.WEIGHTS_FILE).stat().st_size for name, folder in (("fp32", full), ("fp16", half))}
    assert 0 < size["fp32"] - cost["fp32_bytes"] < 65536 and 0 < size["fp16"] - cost["fp16_bytes"] < 65536
    assert "precision: float16" in (half / export.CARD_FILE).read_text()
    images = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    loaded = load_with_plain_open_clip(half, tmp_path, images)
    here = outputs_here(trained_looking_tiny, loaded["tokens"], images)
    torch.testing.assert_close(loaded["logits"], here["logits"], rtol=0.02, atol=0.05)


def test_bdunlearn_recognises_its_exports_and_nothing_else(tmp_path, trained_looking_tiny):
    folder = export.export_model(tmp_path / "m", trained_looking_tiny, "bdunlearn-tiny", record=RECORD, command=COMMAND)
    found = export.read_exported(folder)
    assert found.architecture == "bdunlearn-tiny" and found.record["config_hash"] == RECORD["config_hash"]
    assert found.weights == folder / export.WEIGHTS_FILE and export.is_exported(folder)
    config = json.loads((folder / export.CONFIG_FILE).read_text())
    del config[export.MARKER]  # open_clip's own layout, written by someone else
    (folder / export.CONFIG_FILE).write_text(json.dumps(config))
    assert export.read_exported(folder) is None and not export.is_exported(tmp_path / "nowhere")


def test_the_model_card_states_attack_defense_numbers_and_command(tmp_path, trained_looking_tiny):
    folder = export.export_model(tmp_path / "m", trained_looking_tiny, "bdunlearn-tiny", record=RECORD, command=COMMAND)
    card = (folder / export.CARD_FILE).read_text()
    import yaml

    front = yaml.safe_load(card.split("---\n")[1])
    assert front["library_name"] == "open_clip" and front["bdunlearn"]["alpha"] == 1.5
    assert front["bdunlearn"]["asr"] == 0.02 and front["bdunlearn"]["config_hash"] == RECORD["config_hash"]
    for text in ("`badnets`", "`tbar` with α = 1.5", "| backdoored (θ_b) | 90.0% | 99.0% | 1.0% |",
                 "| defended (this model) | 87.0% | 2.0% | 85.0% |", "300 samples", COMMAND, "0123456789abcdef"):  # fmt: skip
        assert text in card, text


def test_an_occupied_folder_is_refused_unless_overwriting(tmp_path, trained_looking_tiny):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="not empty"):
        export.export_model(tmp_path / "taken", trained_looking_tiny, "bdunlearn-tiny")
    export.export_model(tmp_path / "taken", trained_looking_tiny, "bdunlearn-tiny", overwrite=True)
    assert export.is_exported(tmp_path / "taken")


def test_push_to_hub_checks_its_arguments_and_refuses_offline(tmp_path, trained_looking_tiny, monkeypatch):
    import huggingface_hub

    calls = []
    monkeypatch.setattr(huggingface_hub, "create_repo", lambda *a, **k: calls.append(a))
    monkeypatch.setattr(huggingface_hub, "upload_folder", lambda *a, **k: calls.append(a))
    with pytest.raises(UserError, match="not a folder bdunlearn exported"):
        export.push_to_hub(tmp_path, "org/name")
    folder = export.export_model(tmp_path / "m", trained_looking_tiny, "bdunlearn-tiny", record=RECORD)
    with pytest.raises(UserError, match="not a Hugging Face repository id"):
        export.push_to_hub(folder, "org/bad name")
    with pytest.raises(UserError, match="owner"):
        export.push_to_hub(folder, "name-only")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(UserError, match="HF_HUB_OFFLINE") as excinfo:
        export.push_to_hub(folder, "org/name")
    assert "\n" not in str(excinfo.value) and calls == []


def test_push_to_hub_uploads_the_folder_it_was_given(tmp_path, trained_looking_tiny, monkeypatch):
    import huggingface_hub

    calls = {}

    def upload_folder(**kwargs):
        calls["upload"] = kwargs
        url = "https://huggingface.co/org/name/commit/" + "0" * 40
        return huggingface_hub.CommitInfo(commit_url=url, commit_message="", commit_description="", oid="0" * 40)

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub, "create_repo", lambda repo_id, **k: calls.setdefault("create", (repo_id, k)))
    monkeypatch.setattr(huggingface_hub, "upload_folder", upload_folder)
    folder = export.export_model(tmp_path / "m", trained_looking_tiny, "bdunlearn-tiny", record=RECORD)
    assert export.push_to_hub(folder, "org/name", token="t").endswith("/commit/" + "0" * 40)
    assert calls["create"] == ("org/name", {"token": "t", "private": True, "exist_ok": True})
    assert calls["upload"]["folder_path"] == str(folder) and "tbar" in calls["upload"]["commit_message"]
