"""``results/contrastive.md``: the contrastive setting's defenses, before (θ_b) and after, against the paper's claim."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd

from bdunlearn.atomic import write_text_atomic
from bdunlearn.reports import criteria
from bdunlearn.reports.criteria import PAPER_ASR, PAPER_CA_KEPT
from bdunlearn.reports.provenance import sweep_command
from bdunlearn.reports.records import count_not_ok, load_records
from bdunlearn.reports.tables import cell, rank

COLUMNS = (  # (header, record key, digits)
    ("CA θ_b", "clean_acc_backdoored", 3), ("ASR θ_b", "asr_backdoored", 3), ("CA", "clean_acc", 3), ("ASR", "asr", 3),
    ("RA", "robust_acc", 3), ("CA kept", "clean_acc_retained", 3), ("pairs used", "defense_samples", 0),
    ("α", "alpha", 2), ("seconds", "defense_seconds", 1),
)  # fmt: skip


def summarise(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per defense: its cells, and the means ``_asr`` and ``_kept`` the findings judge."""
    order = rank("defense")
    rows = []
    for defense, runs in sorted(frame.groupby("defense"), key=lambda item: order.get(item[0], len(order))):
        row = {"defense": defense, "seeds": len(runs)}
        row.update({header: cell(runs[key], digits) for header, key, digits in COLUMNS})
        row.update({"_asr": runs["asr"].mean(), "_kept": runs["clean_acc_retained"].mean()})
        rows.append(row)
    return pd.DataFrame(rows)


def findings(table: pd.DataFrame) -> str:
    """Which defenses meet the paper's claim, computed from the table."""
    defended = table["defense"] != "none"
    meets = table[criteria.meets_claim(table["_asr"], table["_kept"]) & defended]["defense"].tolist()
    kept = table[criteria.keeps_clean_accuracy(table["_kept"]) & defended]
    best = kept.loc[kept["_asr"].idxmin()] if len(kept) else None
    text = f"ASR ≤ {PAPER_ASR} with CA kept ≥ {PAPER_CA_KEPT} (the paper's bar): {', '.join(meets) if meets else 'no defense'}."
    if best is not None:
        text += f" Lowest mean ASR among defenses keeping ≥ {PAPER_CA_KEPT} of CA: `{best['defense']}` ({best['_asr']:.3f})."
    return text


def markdown(table: pd.DataFrame) -> str:
    headers = ["defense", "seeds", *(h for h, _, _ in COLUMNS)]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(row[h]) for h in headers) + " |" for _, row in table.iterrows()]
    return "\n".join(lines)


def per_seed(frame: pd.DataFrame) -> str:
    keys = ("defense", "seed", "clean_acc_backdoored", "asr_backdoored", "clean_acc", "asr", "defense_samples", "alpha")
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    frame = frame.assign(_o=frame["defense"].map(rank("defense"))).sort_values(["_o", "seed"])
    for _, run in frame.iterrows():
        values = [f"{run[k]:.3f}" if isinstance(run[k], float) and k not in ("alpha",) else str(run[k]) for k in keys]
        lines.append("| " + " | ".join("–" if v in ("nan", "None") else v for v in values) + " |")
    return "\n".join(lines)


def alpha_curves(frame: pd.DataFrame) -> list[str]:
    """Per TBAR run, read off its validation curve: where ASR first meets the paper's bar, and at what CA kept."""
    lines = []
    for _, run in frame[frame["defense"] == "tbar"].sort_values("seed").iterrows():
        curve = json.loads(run["alpha_curve"])
        base = next(p["val_clean_acc"] for p in curve if p["alpha"] == 0.0)
        reach = criteria.first_removed_per_paper(curve)
        text = f"- seed {run['seed']}: chosen α = {run['alpha']:g}; "
        if reach is None:
            text += f"validation ASR never reaches {PAPER_ASR} on the grid"
        else:
            text += (f"validation ASR first ≤ {PAPER_ASR} at α = {reach['alpha']:g}, where validation CA is "
                     f"{reach['val_clean_acc']:.3f} ({reach['val_clean_acc'] / base:.3f} of θ_b's)")  # fmt: skip
        lines.append(text + f"; cosine(τ_t, θ_b − θ_pre) = {run['cosine_trigger_attack']:.3f}")
    return lines


def write(sweep_dir: Path, out: Path, command: str, hardware: str) -> str:
    """Write the report of one contrastive sweep to ``out``; returns its text."""
    frame = load_records([str(sweep_dir)])
    failed = count_not_ok([str(sweep_dir)])
    table = summarise(frame)
    first = frame.iloc[0]
    text = "\n".join([
        "# Contrastive setting: poisoned image–caption fine-tuning, zero-shot CA / ASR",
        "",
        f"Made by `{command}` on "
        f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC ({hardware}) from {len(frame)} ok run records "
        f"({failed} not ok) of the sweep `{sweep_command(sweep_dir)}`; mean ± std over seeds "
        f"{sorted(frame['seed'].unique().tolist())}. No number is edited by hand.",
        "",
        f"- model `{first['model']}`, caption data: {first['caption_data']} ({int(first['attacker_pairs']):,} attacker's pairs, "
        f"{int(first['num_poisoned'])} poisoned = {100 * first['poison_rate']:.2f} %), attack `{first['attack']}` → "
        f"target class {int(first['target_class'])}; zero-shot evaluation on `{first['dataset']}` (test split; TBAR's α on validation)",
        f"- θ_pre zero-shot CA {frame['clean_acc_pretrained'].mean():.3f}, ASR {frame['asr_pretrained'].mean():.3f}; "
        f"θ_b CA {frame['clean_acc_backdoored'].mean():.3f}, ASR {frame['asr_backdoored'].mean():.3f} (mean over seeds)",
        f"- {findings(table)}",
        "",
        "Before (θ_b) and after each defense; *pairs used*: the defender's clean image–caption pairs the defense consumed "
        "(TBAR triggers its images and pairs them with captions naming the target).",
        "",
        markdown(table.drop(columns=["_asr", "_kept"])),
        "",
        "TBAR's validation α curve (the trade-off it chose from):",
        "",
        *alpha_curves(frame),
        "",
        "Per run:",
        "",
        per_seed(frame),
        "",
    ])  # fmt: skip
    write_text_atomic(out, text)
    return text
