"""Content-addressed cache of expensive artifacts (theta_pre, theta_b), keyed by the config that made them.

An entry is ``<root>/<kind>/<key>/`` with ``weights.safetensors`` and ``entry.json`` (the spec, metadata and
the weights' SHA-256). ``entry.json`` is written last, so a half-written entry is never mistaken for a
complete one; an entry whose checksum does not match is rebuilt. A file lock makes concurrent runs that need
the same entry build it once; the processes of one torchrun run build it together and rank 0 stores it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock

from bdunlearn import distributed
from bdunlearn.atomic import write_json_atomic
from bdunlearn.config.keys import artifact_key
from bdunlearn.models.checkpoint import StateDict, save_state_dict

log = logging.getLogger(__name__)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


class ArtifactCache:
    def __init__(self, root: str | Path, enabled: bool = True):
        self.root = Path(root).expanduser()
        self.enabled = enabled

    def entry_dir(self, kind: str, spec: dict) -> Path:
        return self.root / kind / artifact_key(kind, spec)

    def scratch_path(self, kind: str, spec: dict, name: str) -> Path:
        """A file beside the entry for work in progress on it (e.g. a resumable training state)."""
        path = self.root / kind / f"{artifact_key(kind, spec)}.{name}"
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def load(self, kind: str, spec: dict) -> tuple[StateDict, dict] | None:
        """The cached state dict and metadata for ``spec``, or None if absent or damaged."""
        from safetensors.torch import load_file

        entry = self.entry_dir(kind, spec)
        try:
            record = json.loads((entry / "entry.json").read_text())
        except (OSError, ValueError):
            return None
        weights = entry / "weights.safetensors"
        if not weights.is_file() or sha256_of(weights) != record.get("sha256"):
            log.warning("cache entry %s is damaged; rebuilding it", entry)
            return None
        return load_file(str(weights)), record.get("meta", {})

    def store(self, kind: str, spec: dict, state: StateDict, meta: dict) -> Path:
        entry = self.entry_dir(kind, spec)
        entry.mkdir(parents=True, exist_ok=True)
        (entry / "entry.json").unlink(missing_ok=True)
        weights = entry / "weights.safetensors"
        save_state_dict(weights, state, metadata={"kind": kind, "spec": spec})
        record = {"kind": kind, "spec": spec, "meta": meta, "sha256": sha256_of(weights), "created": time.time()}
        write_json_atomic(entry / "entry.json", record)
        return entry

    def get_or_build(
        self, kind: str, spec: dict, build: Callable[[], tuple[StateDict, dict]]
    ) -> tuple[StateDict, dict, bool]:
        """(state, meta, from_cache): the cached entry for ``spec``, else ``build()`` stored for next time."""
        if not self.enabled:
            state, meta = build()
            return state, meta, False
        if distributed.active():
            return self._get_or_build_together(kind, spec, build)
        entry = self.entry_dir(kind, spec)
        entry.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(entry) + ".lock"):
            cached = self.load(kind, spec)
            if cached is not None:
                log.info("%s: reusing cache entry %s", kind, entry)
                return cached[0], cached[1], True
            if entry.exists():
                shutil.rmtree(entry)
            state, meta = build()
            self.store(kind, spec, state, meta)
            return state, meta, False

    def _get_or_build_together(self, kind: str, spec: dict, build) -> tuple[StateDict, dict, bool]:
        """``get_or_build`` under torch.distributed, called by every rank: rank 0 looks the entry up; if it is
        missing every rank builds (a fine-tune needs all of them) and rank 0 alone stores the result. The file lock
        is held only around rank 0's lookup and store, never across a collective step, where a rank waiting on
        the lock would stall the others."""
        entry = self.entry_dir(kind, spec)
        cached = None
        if distributed.is_main():
            entry.parent.mkdir(parents=True, exist_ok=True)
            with FileLock(str(entry) + ".lock"):
                cached = self.load(kind, spec)
        if distributed.broadcast_object(cached is not None):
            cached = cached or self.load(kind, spec)
            if cached is None:
                raise RuntimeError(f"cache entry {entry} is not readable from rank {distributed.rank()}; put paths.cache_dir on a shared file system")
            log.info("%s: reusing cache entry %s", kind, entry)
            return cached[0], cached[1], True
        state, meta = build()
        if distributed.is_main():
            with FileLock(str(entry) + ".lock"):
                if entry.exists():
                    shutil.rmtree(entry)
                self.store(kind, spec, state, meta)
        distributed.barrier()
        return state, meta, False
