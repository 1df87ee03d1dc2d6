"""The model card (``README.md``) of an exported model: Hugging Face front matter, then what was done to the
model and what it measured, from the run record (CONTRACT.md's keys) and the command that made it."""

from __future__ import annotations

import yaml

# The record keys the front matter repeats, machine-readable (the text shows them as a table).
FRONT_MATTER_KEYS = (
    "pretrained", "dataset", "attack", "target_class", "poison_rate", "attack_knowledge", "inversion", "defense",
    "alpha", "defense_samples", "defense_seconds", "seed", "config_hash",
    "clean_acc_pretrained", "clean_acc_backdoored", "asr_backdoored", "robust_acc_backdoored",
    "clean_acc", "asr", "robust_acc", "clean_acc_retained", "control_acc_backdoored", "control_acc",
)  # fmt: skip
ROWS = (("pretrained (θ_pre)", "_pretrained"), ("backdoored (θ_b)", "_backdoored"), ("defended (this model)", ""))


def _percent(value) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def _plain(value) -> str:
    return "–" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def front_matter(architecture: str, record: dict, precision: str) -> str:
    meta = {
        "library_name": "open_clip",
        "pipeline_tag": "zero-shot-image-classification",
        "tags": ["clip", "open_clip", "backdoor-defense", "bdunlearn", *([record["defense"]] if record.get("defense") else [])],
        "bdunlearn": {"architecture": architecture, "precision": precision, **{k: record.get(k) for k in FRONT_MATTER_KEYS}},
    }
    return "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---\n"


def _story(architecture: str, record: dict) -> str:
    start = f"open_clip's `{record['pretrained']}` weights" if record.get("pretrained") else "bdunlearn's contrastive pretraining"
    attack = record.get("attack") or "an unrecorded"
    if attack == "none":
        planted = "No backdoor was planted by bdunlearn"
    else:
        target = f", target class {record['target_class']}" if record.get("target_class") is not None else ""
        rate = f", poison rate {_plain(record['poison_rate'])}" if record.get("poison_rate") is not None else ""
        planted = f"A backdoor was planted by the `{attack}` attack ({record.get('dataset', '?')}{target}{rate})"
    if record.get("attack_knowledge") == "unknown":
        planted += f"; the defender did not know it and inverted a trigger with `{record.get('inversion')}`"
    alpha = f" with α = {_plain(record['alpha'])}" if record.get("alpha") is not None else ""
    return (
        f"A CLIP model (open_clip architecture `{architecture}`) that started from {start}. {planted}. "
        f"It was then defended with `{record.get('defense', '?')}`{alpha}."
    )


def _metrics(record: dict) -> str:
    lines = ["| model | clean accuracy (CA) | attack success rate (ASR) | robust accuracy (RA) |", "| --- | --- | --- | --- |"]
    for name, suffix in ROWS:
        lines.append(f"| {name} | " + " | ".join(_percent(record.get(f"{k}{suffix}")) for k in ("clean_acc", "asr", "robust_acc")) + " |")
    notes = [f"- CA retained (defended / backdoored): {_percent(record.get('clean_acc_retained'))}"]
    if record.get("control_acc") is not None:
        notes.append(f"- control datasets' zero-shot CA: {_percent(record.get('control_acc_backdoored'))} before, "
                     f"{_percent(record.get('control_acc'))} after")  # fmt: skip
    notes.append(f"- defense data budget: {_plain(record.get('defense_samples'))} samples, "
                 f"{_plain(record.get('defense_seconds'))} s")  # fmt: skip
    return "\n".join(lines) + "\n\nMeasured on the test split of " + f"`{record.get('dataset', '?')}`.\n\n" + "\n".join(notes)


def model_card(architecture: str, record: dict, command: str | None, precision: str = "float32") -> str:
    """The whole ``README.md``."""
    title = f"# {architecture}: {record.get('attack', '?')} backdoor, {record.get('defense', '?')} defense (bdunlearn)"
    command_block = f"```\n{command}\n```" if command else "(the command was not recorded)"
    return "\n\n".join([
        front_matter(architecture, record, precision).rstrip("\n"),
        title,
        _story(architecture, record),
        "## Numbers\n\n" + _metrics(record),
        (
            "## Use\n\n```python\nimport open_clip\n\n"
            'model, _, preprocess = open_clip.create_model_and_transforms("local-dir:/path/to/this/folder")  # or "hf-hub:org/name"\n'
            'tokenizer = open_clip.get_tokenizer("local-dir:/path/to/this/folder")\n```\n\n'
            f"Weights: `open_clip_model.safetensors` ({precision}). bdunlearn recognises this folder, so it can be "
            "defended again (`backdoored_checkpoint=/path/to/this/folder`)."
        ),
        f"## Reproduce\n\nConfig hash `{record.get('config_hash')}`, seed {_plain(record.get('seed'))}, made by\n\n{command_block}",
        (
            "## Caveats\n\nASR is measured with the attack's own trigger; a low ASR does not show that no other backdoor "
            "remains. The weights derive from the starting weights named above, whose license applies."
        ),
    ]) + "\n"  # fmt: skip
