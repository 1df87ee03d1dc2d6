"""What the command line's own overrides say beyond their values: keys the chosen configuration never reads
(reported, one line each) and input paths that do not exist (an error, whatever reads them)."""

from __future__ import annotations

from pathlib import Path

from bdunlearn.config import checks
from bdunlearn.config.schema import RunConfig

# Input files and folders: a path given on the command line must exist (dataset.root may be made by a download
# or by unpacking dataset.source_dir).
INPUT_PATHS = ("dataset.root", "dataset.source_dir", "contrastive.csv", "contrastive.image_root", "backdoored_checkpoint", "attack.pattern_file")


def _unread_rules(run: RunConfig) -> list[tuple[str, bool, str]]:
    """(key prefix, whether the run ignores it, why)."""
    attack, defense = run.attack, run.defense
    return [
        ("contrastive.", run.setting == "classification", "setting=classification reads no contrastive.* key"),
        ("attack.poison_rate", run.setting == "contrastive", "setting=contrastive poisons attack.num_poisoned pairs"),
        ("model.pretrain.", run.model.pretrained is not None, f"model.pretrained={run.model.pretrained} has published weights"),
        ("finetune.steps", run.finetune.epochs is not None, "finetune.epochs sets the number of steps"),
        ("finetune.", run.backdoored_checkpoint is not None, "a handed backdoored_checkpoint skips the attack's fine-tune"),
        ("attack.poison_rate", run.backdoored_checkpoint is not None, "a handed backdoored_checkpoint skips poisoning"),
        ("attack.pattern_file", getattr(attack, "pattern", "file") != "file", f"attack.pattern={getattr(attack, 'pattern', None)}"),
        ("attack.pattern_seed", getattr(attack, "pattern", "noise") != "noise", f"attack.pattern={getattr(attack, 'pattern', None)}"),
        ("defense.contrast_op", getattr(defense, "contrast", "x") == "none", "defense.contrast=none"),
        ("analysis.disentanglement_samples", not run.analysis.disentanglement_grid, "analysis.disentanglement_grid is empty"),
        ("analysis.disentangled_below", not run.analysis.disentanglement_grid, "analysis.disentanglement_grid is empty"),
    ]


def override_keys(overrides: list[str]) -> dict[str, str]:
    """key -> value of plain ``key=value`` overrides (not Hydra's own, not group choices with a slash)."""
    keys = {}
    for override in overrides:
        key, sep, value = override.lstrip("+~").partition("=")
        if sep and not key.startswith("hydra") and "/" not in key:
            keys[key] = value
    return keys


def check(run: RunConfig, overrides: list[str]) -> list[str]:
    """UserError for an input path given on the command line that does not exist; the notes (one line each)
    on the overrides this run never reads."""
    given = override_keys(overrides)
    for key in INPUT_PATHS:
        value = given.get(key)
        if value in (None, "", "null") or (key == "dataset.root" and (run.dataset.download or run.dataset.source_dir)):
            continue
        checks.require(Path(value).expanduser().exists(), f"{key}={value}: no such file or folder")
    notes = []
    for key, value in given.items():
        for prefix, ignored, why in _unread_rules(run):
            if ignored and (key == prefix or (prefix.endswith(".") and key.startswith(prefix))):
                notes.append(f"{key}={value} is not read by this run ({why})")
                break
    return notes
