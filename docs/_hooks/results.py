"""MkDocs hook: serve the repository's ``results/`` folder as part of the site (``results/README.md`` is its
index), so the results pages and figures are the committed files themselves and ``mkdocs build --strict``
checks every link to and within them."""

from __future__ import annotations

from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[2]


def on_files(files, config):
    for path in sorted((ROOT / "results").rglob("*")):
        if path.is_file():
            files.append(File(path.relative_to(ROOT).as_posix(), str(ROOT), config["site_dir"], config["use_directory_urls"]))
    return files
