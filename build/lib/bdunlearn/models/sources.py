"""Where a model's weights come from: the values of ``model.pretrained`` and ``backdoored_checkpoint``.

- an open_clip tag (``openai``, ``laion2b_s34b_b79k``; ``model.pretrained`` only): open_clip's published
  weights for ``model.name`` (``weights.py`` says whether they can be had);
- ``hf-hub:org/name``: an open_clip repository on the Hugging Face hub (``open_clip_config.json`` and the
  weights), read from the hub cache (``model.cache_dir``, else ``HF_HUB_CACHE`` / ``HF_HOME/hub``); with
  ``HF_HUB_OFFLINE=1`` or no route to the hub it must be there already (``hf download org/name``);
- a folder in open_clip's layout (``open_clip_config.json`` plus weights), e.g. one bdunlearn exported;
- a single weights file: safetensors, or a weights-only torch state dict.

A repository's or folder's ``model_cfg`` must be ``model.name``'s architecture (the pipeline builds that one);
if it is not, the one-line error names the architectures that match it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from bdunlearn.errors import UserError
from bdunlearn.models.architectures import (
    ARCHITECTURE_DIR,
    architecture,
    open_clip_config_dir,
)
from bdunlearn.models.layout import (
    CONFIG_FILE,
    FOLDER_WEIGHTS,
    HUB_WEIGHTS,
    Exported,
    read_exported,
)

if TYPE_CHECKING:  # torch and open_clip are imported where weights are read, not to find out they are missing
    import torch
    from torch import nn

    from bdunlearn.models.checkpoint import StateDict

HUB_PREFIX = "hf-hub:"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


@dataclass(frozen=True)
class Source:
    """A resolved value: ``kind`` is tag | hub | folder | file; ``weights`` is None for a tag (open_clip finds
    them) and for a hub repository that is not downloaded yet."""

    value: str
    kind: str
    weights: Path | None = None
    model_cfg: dict | None = None  # the architecture a hub repository or folder declares
    preprocess_cfg: dict | None = None  # and its image preprocessing (mean, std, ...)
    exported: Exported | None = None

    @property
    def repo_id(self) -> str | None:
        return self.value[len(HUB_PREFIX) :] if self.kind == "hub" else None


def fetch_hint(repo_id: str, cache_dir: str | None) -> str:
    where = f" --cache-dir {cache_dir}" if cache_dir else ""
    return f"hf download {repo_id}{where} (huggingface-cli download with huggingface_hub<1.0) where there is internet"


def kind_of(value: str, tags: bool = True) -> str:
    """tag | hub | folder | file, from the value's form (and, for paths, what is on disk)."""
    if value.startswith(HUB_PREFIX):
        return "hub"
    path = Path(value).expanduser()
    if path.is_dir():
        return "folder"
    if path.exists() or not tags or os.sep in value or value.startswith((".", "~")) or value.endswith(WEIGHT_SUFFIXES):
        return "file"
    return "tag"


def _folder(path: Path, value: str, key: str) -> Source:
    config = path / CONFIG_FILE
    if not config.is_file():
        raise UserError(f"{key}={value}: the folder has no {CONFIG_FILE}; point at the weights file itself, or at a "
                        "folder in open_clip's layout (open_clip_config.json + open_clip_model.safetensors)")  # fmt: skip
    weights = next((path / name for name in FOLDER_WEIGHTS if (path / name).is_file()), None)
    if weights is None:
        raise UserError(f"{key}={value}: no weights in the folder ({', '.join(FOLDER_WEIGHTS[:3])}, ...); add them")
    return _with_config(Source(value, "folder", weights), config, key)


def _with_config(source: Source, config: Path, key: str) -> Source:
    """``source`` with the architecture and preprocessing its ``open_clip_config.json`` declares."""
    try:
        declared = json.loads(config.read_text(encoding="utf-8"))
        model_cfg = declared["model_cfg"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{key}={source.value}: {config} is not an open_clip config (no model_cfg: {exc}); fix or replace it") from exc
    preprocess = declared.get("preprocess_cfg") or None
    return replace(source, model_cfg=model_cfg, preprocess_cfg=preprocess, exported=read_exported(config.parent))


def _hub_offline_reason() -> str | None:
    from huggingface_hub import constants

    from bdunlearn.models.weights import reachable

    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set"
    host = urlparse(constants.ENDPOINT).hostname or "huggingface.co"
    return None if reachable(host) else f"{host} cannot be reached"


def _hub(value: str, cache_dir: str | None, key: str, download: bool) -> Source:
    from huggingface_hub import hf_hub_download, try_to_load_from_cache
    from huggingface_hub.utils import (
        EntryNotFoundError,
        HFValidationError,
        validate_repo_id,
    )

    repo_id = value[len(HUB_PREFIX) :]
    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        raise UserError(f"{key}={value}: not a Hugging Face repository id; write hf-hub:org/name") from exc
    directory = str(Path(cache_dir).expanduser()) if cache_dir else None
    cached = {name: try_to_load_from_cache(repo_id, name, cache_dir=directory) for name in (CONFIG_FILE, *HUB_WEIGHTS)}
    found = {name: Path(p) for name, p in cached.items() if isinstance(p, str)}  # else None, or "known absent"
    weights = next((found[name] for name in HUB_WEIGHTS if name in found), None)
    if CONFIG_FILE in found and weights is not None:
        return _with_config(Source(value, "hub", weights), found[CONFIG_FILE], key)
    reason = _hub_offline_reason()
    if reason is not None:
        where = f"model.cache_dir={cache_dir}" if cache_dir else "the Hugging Face cache"
        what = "its weights are" if CONFIG_FILE in found else "it is"
        raise UserError(f"{key}={value}: {what} not in {where} and {reason}; fetch it with {fetch_hint(repo_id, cache_dir)}")
    if not download:
        return Source(value, "hub")  # downloadable now; load() fetches it
    weights = None
    try:
        config = Path(hf_hub_download(repo_id, CONFIG_FILE, cache_dir=directory))
        for name in HUB_WEIGHTS:
            try:
                weights = Path(hf_hub_download(repo_id, name, cache_dir=directory))
                break
            except EntryNotFoundError:
                continue
    except Exception as exc:  # network, authentication or a repository that does not exist
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{key}={value}: cannot download it ({first}); check the id, or {fetch_hint(repo_id, cache_dir)}") from exc
    if weights is None:
        raise UserError(f"{key}={value}: the repository has {CONFIG_FILE} but no {' or '.join(HUB_WEIGHTS)}; it is not an open_clip model")
    return _with_config(Source(value, "hub", weights), config, key)


def locate(value: str, cache_dir: str | None = None, *, key: str = "model.pretrained", download: bool = False) -> Source:
    """Resolve ``value`` to a Source (a hub repository downloaded only with ``download``); UserError, one line.
    ``key`` names the config key in messages; open_clip tags are accepted only for ``model.pretrained``."""
    value = str(value)
    kind = kind_of(value, tags=key == "model.pretrained")
    if kind == "tag":
        return Source(value, "tag")
    if kind == "hub":
        return _hub(value, cache_dir, key, download)
    path = Path(value).expanduser()
    if kind == "folder":
        return _folder(path, value, key)
    if not path.is_file():
        raise UserError(f"{key}={value}: no such file or folder; give a weights file, an open_clip folder or hf-hub:org/name")
    return Source(value, "file", path)


def matching_architectures(model_cfg: dict) -> list[str]:
    """Names of the architectures (this project's, then open_clip's) whose config is exactly ``model_cfg``."""
    found = []
    for folder in (ARCHITECTURE_DIR, open_clip_config_dir()):
        for path in sorted(folder.glob("*.json")) if folder is not None else ():
            if path.stem not in found and json.loads(path.read_text()) == model_cfg:
                found.append(path.stem)
    return found


def _check_architecture(source: Source, model_name: str, key: str) -> None:
    if source.model_cfg is None or source.model_cfg == architecture(model_name):
        return
    matches = matching_architectures(source.model_cfg)
    if source.exported is not None and source.exported.architecture not in matches:
        matches.insert(0, source.exported.architecture)
    fix = f"set model.name={matches[0]}" if matches else "register its model_cfg as an architecture and name it in model.name"
    raise UserError(f"{key}={source.value} is a {matches[0] if matches else 'different'} model, not model.name={model_name}; {fix}")


def check(value: str, model_name: str, cache_dir: str | None = None, *, key: str = "model.pretrained") -> Source:
    """Preflight: the weights can be had now and fit ``model_name``; reads only headers and configs."""
    source = locate(value, cache_dir, key=key)
    if source.kind == "tag":
        import open_clip

        from bdunlearn.models import weights

        tags = open_clip.list_pretrained_tags_by_model(model_name)
        if value not in tags:
            raise UserError(f"{key}={value!r}: open_clip has no such tag for {model_name} ({', '.join(tags) or 'none'}), "
                            "and no such file; give a tag, a weights file, an open_clip folder or hf-hub:org/name")  # fmt: skip
        reason = weights.unavailable(model_name, value, cache_dir)
        if reason:
            raise UserError(reason)
        return source
    _check_fits(source, model_name, key)
    return source


def _check_fits(source: Source, model_name: str, key: str) -> None:
    """The declared architecture is ``model_name``'s and the weights (header only) have its tensors."""
    _check_architecture(source, model_name, key)
    if source.weights is not None:
        from bdunlearn.models.checkpoint import check_fits
        from bdunlearn.models.clip import state_shapes

        try:
            check_fits(source.weights, state_shapes(model_name), model_name)
        except UserError as exc:
            raise UserError(f"{key}={source.value}: {exc}") from exc


def load(value: str, model_name: str, cache_dir: str | None = None, *, key: str = "model.pretrained") -> StateDict:
    """The state dict of a hub repository, folder or file (checked against ``model_name``); a tag's weights come
    with the model (:func:`create`)."""
    return _load(locate(value, cache_dir, key=key, download=True), model_name, key)


def _load(source: Source, model_name: str, key: str) -> StateDict:
    if source.kind == "tag":
        raise ValueError(f"{source.value} is an open_clip tag: build the model with create()")
    _check_fits(source, model_name, key)
    from bdunlearn.models.checkpoint import load_state_dict

    return load_state_dict(source.weights)


def create(value: str | None, model_name: str, cache_dir: str | None = None, device: torch.device | str = "cpu") -> nn.Module:
    """The CLIP model ``model_name`` holding the weights ``value`` names (random ones for None)."""
    from bdunlearn.models import clip

    if value is None:
        return clip.create(model_name, device)
    source = locate(value, cache_dir, download=True)
    if source.kind == "tag":
        return clip.create_pretrained(model_name, value, cache_dir, device)
    model = clip.create(model_name, device)
    model.load_state_dict(_load(source, model_name, "model.pretrained"))
    if source.preprocess_cfg:  # e.g. a model trained with other normalisation than CLIP's default
        from open_clip.model import set_model_preprocess_cfg
        from open_clip.transform import merge_preprocess_dict

        set_model_preprocess_cfg(model, merge_preprocess_dict(model.visual.preprocess_cfg, source.preprocess_cfg))
    return model


def fingerprint(source: Source) -> dict:
    """What identifies the weights for cache keys: the tag, else the weights file's content (not its path)."""
    if source.kind == "tag":
        return {"tag": source.value}
    if source.weights is None:
        raise ValueError(f"{source.value}: not downloaded yet; fingerprint the Source that load() resolved")
    from bdunlearn.cache import sha256_of

    return {"sha256": sha256_of(source.weights)}
