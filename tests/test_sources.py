"""Where weights come from: open_clip tags, hf-hub ids (read from a hub cache laid out exactly as huggingface_hub
lays it out), open_clip folders (bdunlearn's exports among them) and single weights files."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time

import pytest
import torch

from bdunlearn.cache import sha256_of
from bdunlearn.errors import UserError
from bdunlearn.models import clip, export, sources

REPO_ID = "someone/tiny-clip-defended"
COMMIT = "4b1d2c3e5f60718293a4b5c6d7e8f90112233445"


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(2)
    model = clip.create("bdunlearn-tiny")
    with torch.no_grad():
        model.logit_scale.fill_(2.5)
    return model


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tiny):
    return export.export_model(tmp_path_factory.mktemp("export") / "tiny", tiny, "bdunlearn-tiny", record={"defense": "tbar"})


def hub_cache(root, repo_id: str, files: dict[str, bytes]):
    """``root/models--org--name/{blobs/<sha256>, refs/main, snapshots/<commit>/<file> -> ../../blobs/<sha256>}``,
    as ``hf download`` leaves it."""
    repo = root / f"models--{repo_id.replace('/', '--')}"
    (repo / "blobs").mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    snapshot = repo / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    for name, data in files.items():
        blob = hashlib.sha256(data).hexdigest()
        (repo / "blobs" / blob).write_bytes(data)
        os.symlink(f"../../blobs/{blob}", snapshot / name)
    return root


def files_of(folder, *names: str) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in names}


def same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k].cpu(), b[k].cpu()) for k in a)


def test_a_hub_id_resolves_from_the_hub_cache_offline(tmp_path, tiny, exported):
    cache = hub_cache(tmp_path / "hub", REPO_ID, files_of(exported, export.CONFIG_FILE, export.WEIGHTS_FILE, export.CARD_FILE))
    source = sources.check(f"hf-hub:{REPO_ID}", "bdunlearn-tiny", str(cache))
    assert source.kind == "hub" and source.repo_id == REPO_ID and source.exported.architecture == "bdunlearn-tiny"
    assert source.weights.parent.name == COMMIT and source.weights.resolve().parent.name == "blobs"
    assert same_state(sources.load(f"hf-hub:{REPO_ID}", "bdunlearn-tiny", str(cache)), tiny.state_dict())
    model = sources.create(f"hf-hub:{REPO_ID}", "bdunlearn-tiny", str(cache))
    assert same_state(model.state_dict(), tiny.state_dict())
    assert sources.fingerprint(source) == {"sha256": sha256_of(exported / export.WEIGHTS_FILE)}  # content, not path


def test_open_clips_own_hub_layout_with_bin_weights_resolves_too(tmp_path, tiny, exported):
    import io

    buffer = io.BytesIO()
    torch.save(tiny.state_dict(), buffer)
    config = (exported / export.CONFIG_FILE).read_text().replace('"bdunlearn"', '"someone_else"')
    cache = hub_cache(tmp_path, "laion/tiny", {export.CONFIG_FILE: config.encode(), "open_clip_pytorch_model.bin": buffer.getvalue()})
    source = sources.check("hf-hub:laion/tiny", "bdunlearn-tiny", str(cache))
    assert source.exported is None and source.weights.name == "open_clip_pytorch_model.bin"
    assert same_state(sources.load("hf-hub:laion/tiny", "bdunlearn-tiny", str(cache)), tiny.state_dict())


def test_a_missing_hub_id_offline_is_one_line_that_says_how_to_fetch_it_fast(tmp_path, exported):
    cache = hub_cache(tmp_path / "partial", REPO_ID, files_of(exported, export.CONFIG_FILE))  # weights never arrived
    for repo, cache_dir, words in (("org/absent", None, "it is not in the Hugging Face cache"),
                                   (REPO_ID, str(cache), "its weights are not in model.cache_dir")):  # fmt: skip
        start = time.perf_counter()
        with pytest.raises(UserError) as excinfo:
            sources.check(f"hf-hub:{repo}", "bdunlearn-tiny", cache_dir)
        seconds = time.perf_counter() - start
        message = str(excinfo.value)
        assert "\n" not in message and words in message and "HF_HUB_OFFLINE is set" in message, message
        assert f"hf download {repo}" in message and seconds < 2, (message, seconds)


def test_a_missing_hub_id_fails_in_a_fresh_process_within_a_second_or_so(tmp_path):
    code = (
        "import sys\nfrom bdunlearn.errors import UserError\nfrom bdunlearn.models import sources\n"
        "try:\n    sources.check('hf-hub:org/absent', 'bdunlearn-tiny')\nexcept UserError as exc:\n"
        "    print(exc, sorted({'torch', 'open_clip'} & set(sys.modules)))\n    sys.exit(1)\n"
    )
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}  # the default cache: HF_HOME/hub
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120, check=False)
    seconds = time.perf_counter() - start
    assert done.returncode == 1 and "hf download org/absent" in done.stdout and done.stdout.rstrip().endswith("[]"), done
    assert seconds < 5, seconds  # 0.3 s measured: neither torch nor open_clip is imported to find this out


def test_folders_exported_or_plain_and_single_files_resolve(tmp_path, tiny, exported):
    assert sources.check(str(exported), "bdunlearn-tiny").exported is not None
    assert same_state(sources.load(str(exported), "bdunlearn-tiny", key="backdoored_checkpoint"), tiny.state_dict())

    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / export.CONFIG_FILE).write_text((exported / export.CONFIG_FILE).read_text().replace('"bdunlearn"', '"other"'))
    torch.save(tiny.state_dict(), plain / "open_clip_pytorch_model.bin")
    source = sources.check(str(plain), "bdunlearn-tiny")
    assert source.kind == "folder" and source.exported is None and source.weights.suffix == ".bin"

    weights = exported / export.WEIGHTS_FILE
    assert sources.check(str(weights), "bdunlearn-tiny", key="backdoored_checkpoint").kind == "file"
    assert same_state(sources.load(str(weights), "bdunlearn-tiny"), tiny.state_dict())
    assert sources.fingerprint(sources.locate(str(weights))) == sources.fingerprint(sources.locate(str(exported)))


def test_the_folders_preprocessing_travels_with_the_model(tmp_path, tiny):
    from open_clip.model import set_model_preprocess_cfg

    torch.manual_seed(3)
    model = clip.create("bdunlearn-tiny")
    set_model_preprocess_cfg(model, {**model.visual.preprocess_cfg, "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)})
    folder = export.export_model(tmp_path / "m", model, "bdunlearn-tiny")
    built = sources.create(str(folder), "bdunlearn-tiny")
    assert clip.preprocess_of(built).mean == (0.5, 0.5, 0.5) and clip.preprocess_of(built).std == (0.25, 0.25, 0.25)


def test_a_model_of_another_architecture_is_named_in_the_error(tmp_path, exported):
    with pytest.raises(UserError) as excinfo:
        sources.check(str(exported), "bdunlearn-small")
    message = str(excinfo.value)
    assert "\n" not in message and "is a bdunlearn-tiny model" in message and "set model.name=bdunlearn-tiny" in message


def test_bad_values_are_one_line_errors(tmp_path, exported):
    no_config = tmp_path / "no_config"
    no_config.mkdir()
    (no_config / export.WEIGHTS_FILE).write_bytes((exported / export.WEIGHTS_FILE).read_bytes())
    no_weights = tmp_path / "no_weights"
    no_weights.mkdir()
    (no_weights / export.CONFIG_FILE).write_text((exported / export.CONFIG_FILE).read_text())
    cases = [
        ("openai", "bdunlearn-tiny", "model.pretrained", "no such tag"),
        ("openai", "ViT-B-32", "model.pretrained", "cannot be downloaded offline"),
        ("openai", "bdunlearn-tiny", "backdoored_checkpoint", "no such file or folder"),
        (str(tmp_path / "gone.safetensors"), "bdunlearn-tiny", "model.pretrained", "no such file or folder"),
        (str(no_config), "bdunlearn-tiny", "backdoored_checkpoint", "has no open_clip_config.json"),
        (str(no_weights), "bdunlearn-tiny", "backdoored_checkpoint", "no weights in the folder"),
        ("hf-hub:not a repo", "bdunlearn-tiny", "model.pretrained", "not a Hugging Face repository id"),
    ]
    for value, model_name, key, words in cases:
        with pytest.raises(UserError) as excinfo:
            sources.check(value, model_name, str(tmp_path / "hub"), key=key)
        message = str(excinfo.value)
        assert "\n" not in message and words in message, (value, message)


def test_the_layout_names_are_open_clips():
    from open_clip import constants

    from bdunlearn.models import layout

    assert (layout.CONFIG_FILE, layout.WEIGHTS_FILE, layout.PICKLED_WEIGHTS_FILE) == (
        constants.HF_CONFIG_NAME, constants.HF_SAFE_WEIGHTS_NAME, constants.HF_WEIGHTS_NAME,
    )  # fmt: skip


def test_online_a_hub_id_is_downloaded_at_load_not_at_check(tmp_path, tiny, exported, monkeypatch):
    import huggingface_hub
    from huggingface_hub import constants
    from huggingface_hub.utils import EntryNotFoundError

    from bdunlearn.models import weights

    plain = tmp_path / "repo"
    plain.mkdir()
    (plain / export.CONFIG_FILE).write_text((exported / export.CONFIG_FILE).read_text())
    torch.save(tiny.state_dict(), plain / "open_clip_pytorch_model.bin")  # an older repository: no safetensors
    asked = []

    def hf_hub_download(repo_id, filename, cache_dir=None):
        asked.append((repo_id, filename, cache_dir))
        if not (plain / filename).is_file():
            raise EntryNotFoundError(f"{filename} not in {repo_id}")
        return str(plain / filename)

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(weights, "reachable", lambda host: host == "huggingface.co")
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", hf_hub_download)
    source = sources.check("hf-hub:org/online", "bdunlearn-tiny", str(tmp_path / "hub"))
    assert source.kind == "hub" and source.weights is None and asked == []
    assert same_state(sources.load("hf-hub:org/online", "bdunlearn-tiny", str(tmp_path / "hub")), tiny.state_dict())
    assert [name for _, name, _ in asked] == ["open_clip_config.json", "open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
    assert {cache for _, _, cache in asked} == {str(tmp_path / "hub")}
