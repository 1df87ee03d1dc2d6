"""Write results/contrastive.md from the run records of a contrastive-setting sweep.

    bdunlearn -m experiment=contrastive_cpu defense=none,tbar,cleanclip,finetune seed=0,1
    python scripts/contrastive_table.py 'multirun/experiment=contrastive_cpu_defense=none,tbar,cleanclip,finetune_seed=0,1'

Per defense: zero-shot test CA and ASR of theta_b (before) and of the defended model (after), RA, the share of
theta_b's CA kept, the image–caption pairs the defense used, TBAR's alpha and the defense's seconds; mean ± std
over seeds. Every number comes from a ``result.json``; none is edited by hand.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe  # noqa: E402

from bdunlearn.atomic import write_text_atomic  # noqa: E402
from bdunlearn.tables import ORDER, load_records, mean_std, sweep_command  # noqa: E402

KAPPA = 0.95  # the paper's bar for "clean accuracy kept"
REMOVED = 0.05  # the paper's bar for "backdoor removed"
COLUMNS = (  # (header, record key, digits)
    ("CA θ_b", "clean_acc_backdoored", 3), ("ASR θ_b", "asr_backdoored", 3), ("CA", "clean_acc", 3), ("ASR", "asr", 3),
    ("RA", "robust_acc", 3), ("CA kept", "clean_acc_retained", 3), ("pairs used", "defense_samples", 0),
    ("α", "alpha", 2), ("seconds", "defense_seconds", 1),
)  # fmt: skip


def cell(values: pd.Series, digits: int) -> str:
    values = pd.to_numeric(values, errors="coerce").dropna()
    return mean_std(values.mean(), values.std(), len(values), digits) if len(values) else "–"


def summarise(frame: pd.DataFrame) -> pd.DataFrame:
    order = {d: i for i, d in enumerate(ORDER["defense"])}
    rows = []
    for defense, runs in sorted(frame.groupby("defense"), key=lambda item: order.get(item[0], len(order))):
        row = {"defense": defense, "seeds": len(runs)}
        row.update({header: cell(runs[key], digits) for header, key, digits in COLUMNS})
        row.update({"_asr": runs["asr"].mean(), "_kept": runs["clean_acc_retained"].mean()})
        rows.append(row)
    return pd.DataFrame(rows)


def findings(table: pd.DataFrame) -> str:
    """Which defenses meet the paper's bar, computed from the table."""
    meets = table[(table["_asr"] <= REMOVED) & (table["_kept"] >= KAPPA) & (table["defense"] != "none")]["defense"].tolist()
    kept = table[(table["_kept"] >= KAPPA) & (table["defense"] != "none")]
    best = kept.loc[kept["_asr"].idxmin()] if len(kept) else None
    text = f"ASR ≤ {REMOVED} with CA kept ≥ {KAPPA} (the paper's bar): {', '.join(meets) if meets else 'no defense'}."
    if best is not None:
        text += f" Lowest mean ASR among defenses keeping ≥ {KAPPA} of CA: `{best['defense']}` ({best['_asr']:.3f})."
    return text


def markdown(table: pd.DataFrame) -> str:
    headers = ["defense", "seeds", *(h for h, _, _ in COLUMNS)]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(row[h]) for h in headers) + " |" for _, row in table.iterrows()]
    return "\n".join(lines)


def per_seed(frame: pd.DataFrame) -> str:
    keys = ("defense", "seed", "clean_acc_backdoored", "asr_backdoored", "clean_acc", "asr", "defense_samples", "alpha")
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    order = {d: i for i, d in enumerate(ORDER["defense"])}
    frame = frame.assign(_o=frame["defense"].map(order)).sort_values(["_o", "seed"])
    for _, run in frame.iterrows():
        values = [f"{run[k]:.3f}" if isinstance(run[k], float) and k not in ("alpha",) else str(run[k]) for k in keys]
        lines.append("| " + " | ".join("–" if v in ("nan", "None") else v for v in values) + " |")
    return "\n".join(lines)


def alpha_curves(frame: pd.DataFrame) -> list[str]:
    """Per TBAR run, read off its validation curve: where ASR first reaches the paper's bar, and at what CA kept."""
    lines = []
    for _, run in frame[frame["defense"] == "tbar"].sort_values("seed").iterrows():
        curve = json.loads(run["alpha_curve"])
        base = next(p["val_clean_acc"] for p in curve if p["alpha"] == 0.0)
        reach = next((p for p in curve if p["val_asr"] <= REMOVED), None)
        text = f"- seed {run['seed']}: chosen α = {run['alpha']:g}; "
        if reach is None:
            text += f"validation ASR never reaches {REMOVED} on the grid"
        else:
            text += (f"validation ASR first ≤ {REMOVED} at α = {reach['alpha']:g}, where validation CA is "
                     f"{reach['val_clean_acc']:.3f} ({reach['val_clean_acc'] / base:.3f} of θ_b's)")
        lines.append(text + f"; cosine(τ_t, θ_b − θ_pre) = {run['cosine_trigger_attack']:.3f}")
    return lines


def write_report(sweep_dir: Path, out: Path) -> str:
    frame = load_records([str(sweep_dir)])
    failed = len(load_records([str(sweep_dir)], only_ok=False)) - len(frame)
    table = summarise(frame)
    first = frame.iloc[0]
    text = "\n".join([
        "# Contrastive setting: poisoned image–caption fine-tuning, zero-shot CA / ASR",
        "",
        f"Made by `python scripts/contrastive_table.py {' '.join(sys.argv[1:])}` on "
        f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC ({describe()}) from {len(frame)} ok run records "
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
    ])
    write_text_atomic(out, text)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("--out", type=Path, default=Path("results/contrastive.md"))
    args = parser.parse_args()
    print(write_report(args.sweep_dir, args.out))


if __name__ == "__main__":
    main()
