"""Whether an open_clip model's published weights can be had before any compute: cached, or downloadable.

open_clip fetches a tag's weights from the Hugging Face hub (``hf_hub`` in its pretrained config; a
``.safetensors`` file first, then the ``.bin``) or, for tags without a hub entry, from a URL into
``~/.cache/clip``. With ``HF_HUB_OFFLINE=1``, or no route to the hub, a run without cached weights would fail
after loading the data; :func:`unavailable` says so up front.
"""

from __future__ import annotations

import functools
import os
import socket
from pathlib import Path
from urllib.parse import urlparse


def hub_candidates(hf_hub: str) -> tuple[str, list[str]]:
    """(repo id, file names open_clip tries, in order) for a pretrained config's ``hf_hub`` entry
    (as ``open_clip.pretrained.download_pretrained``: "org/repo/" means the default file name)."""
    from open_clip.constants import HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME

    repo_id, filename = os.path.split(hf_hub)
    filename = filename or HF_WEIGHTS_NAME
    if filename == HF_WEIGHTS_NAME:
        return repo_id, [HF_SAFE_WEIGHTS_NAME, filename]
    if filename.endswith((".bin", ".pth")):
        return repo_id, [filename[:-4] + ".safetensors", filename]
    return repo_id, [filename]


def cached_file(name: str, tag: str, cache_dir: str | None) -> str | None:
    """Path of the locally cached weights open_clip would load for ``name``/``tag``, or None."""
    import open_clip

    pcfg = open_clip.get_pretrained_cfg(name, tag)
    if pcfg.get("file"):
        return pcfg["file"] if Path(pcfg["file"]).is_file() else None
    if pcfg.get("hf_hub"):
        from huggingface_hub import try_to_load_from_cache

        repo_id, names = hub_candidates(pcfg["hf_hub"])
        directory = str(Path(cache_dir).expanduser()) if cache_dir else None
        for filename in names:
            found = try_to_load_from_cache(repo_id, filename, cache_dir=directory)
            if isinstance(found, str):
                return found
        return None
    if pcfg.get("url"):
        folder = Path(cache_dir).expanduser() if cache_dir else Path("~/.cache/clip").expanduser()
        target = folder / os.path.basename(pcfg["url"])
        return str(target) if target.is_file() else None
    return None


@functools.cache
def reachable(host: str) -> bool:
    try:
        socket.create_connection((host, 443), timeout=3).close()
        return True
    except OSError:
        return False


def _source_host(name: str, tag: str) -> str:
    import open_clip
    from huggingface_hub import constants

    pcfg = open_clip.get_pretrained_cfg(name, tag)
    url = constants.ENDPOINT if pcfg.get("hf_hub") else pcfg.get("url", "")
    return urlparse(url).hostname or "huggingface.co"


def unavailable(name: str, tag: str, cache_dir: str | None) -> str | None:
    """Why the weights ``name``/``tag`` cannot be obtained now (a one-line fix), or None."""
    if cached_file(name, tag, cache_dir) is not None:
        return None
    from huggingface_hub import constants

    host = _source_host(name, tag)
    if constants.HF_HUB_OFFLINE:
        why = "HF_HUB_OFFLINE is set"
    elif not reachable(host):
        why = f"{host} cannot be reached"
    else:
        return None  # open_clip will download them
    where = f"model.cache_dir={cache_dir}" if cache_dir else "the Hugging Face cache (~/.cache/huggingface)"
    return (
        f"open_clip weights {name}/{tag} (model.pretrained={tag}) are not in {where} and {why}, so they cannot "
        f"be downloaded offline; run once with internet (python -c \"import open_clip; open_clip.create_model('{name}', "
        f"pretrained='{tag}')\") and copy ~/.cache/huggingface here, or set model.cache_dir to a folder holding them"
    )
