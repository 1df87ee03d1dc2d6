"""The run record ``result.json`` (see CONTRACT.md) and the before/after summary printed at the end."""

from __future__ import annotations

from pathlib import Path

from bdunlearn.atomic import write_json_atomic
from bdunlearn.config import RunConfig, config_hash

METRIC_KEYS = (
    "clean_acc_pretrained", "asr_pretrained", "robust_acc_pretrained",
    "clean_acc_backdoored", "asr_backdoored", "robust_acc_backdoored",
    "clean_acc", "asr", "robust_acc", "clean_acc_retained",
    "control_acc_backdoored", "control_acc",
    "defense_samples", "defense_seconds", "alpha", "alpha_curve", "backdoored_from_cache",
    "detected", "detection_score", "target_class_estimated",
)  # fmt: skip


def base_record(cfg: RunConfig) -> dict:
    """The keys that say what ran; metrics start as null and are filled by the pipeline."""
    record = {
        "status": "running",
        "model": cfg.model.name,
        "pretrained": cfg.model.pretrained,
        "dataset": cfg.dataset.name,
        "attack": cfg.attack.name,
        "defense": cfg.defense.name,
        "label": cfg.label or cfg.defense.name,
        "seed": cfg.seed,
        "target_class": cfg.attack.target_class,
        "poison_rate": cfg.attack.poison_rate,
        "attack_knowledge": cfg.attack_knowledge,
        "inversion": cfg.inversion.name if cfg.inversion is not None else None,
        "config_hash": config_hash(cfg),
    }
    record.update({key: None for key in METRIC_KEYS})
    record.update({key: None for key in control_keys(cfg.control_datasets)})
    return record


def control_keys(names: list[str]) -> list[str]:
    """Record keys of the control datasets beyond the contract's means: θ_pre's mean, and each dataset's CA."""
    if not names:
        return []
    per_dataset = [f"control_acc_{name}{suffix}" for name in names for suffix in ("_pretrained", "_backdoored", "")]
    return ["control_acc_pretrained", *per_dataset]


def write_record(run_dir: str | Path, record: dict) -> Path:
    path = Path(run_dir) / "result.json"
    write_json_atomic(path, record)
    return path


OTHER_RULES = {"kappa": "by CA kept", "asr_target": "by ASR target"}


def _fmt(value) -> str:
    return "  -  " if value is None else f"{value:.3f}"


def summary_table(record: dict) -> str:
    """A short before/after table of CA, ASR and RA."""
    defended = record["defense"] + (f" (alpha={record['alpha']:g})" if record.get("alpha") is not None else "")
    rows = [
        ("pretrained", "_pretrained"),
        ("backdoored", "_backdoored"),
        (defended, ""),
    ]
    # a defense that picks among operating points (TBAR): the point the other rule picks, below the chosen one
    for rule, label in OTHER_RULES.items():
        other = record.get(f"alpha_{rule}")
        if record.get("alpha_rule") not in (None, rule) and other is not None and other != record.get("alpha"):
            rows.append((f"  {label} (alpha={record[f'alpha_{rule}']:g})", f"_{rule}"))
    width = max(len(name) for name, _ in rows) + 2
    lines = [f"{'model':<{width}}{'CA':>7}{'ASR':>7}{'RA':>7}"]
    for name, suffix in rows:
        values = [record.get(f"{k}{suffix}") for k in ("clean_acc", "asr", "robust_acc")]
        lines.append(f"{name:<{width}}" + "".join(f"{_fmt(v):>7}" for v in values))
    return "\n".join(lines)
