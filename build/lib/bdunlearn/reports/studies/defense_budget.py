"""``results/defense_budget.{md,png}``: every defense at equal data budgets (``experiment=defense_budget``)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from bdunlearn.atomic import write_text_atomic
from bdunlearn.reports import criteria, plots
from bdunlearn.reports.criteria import PAPER_ASR, PAPER_CA_KEPT
from bdunlearn.reports.provenance import sweep_command
from bdunlearn.reports.records import count_not_ok, load_records
from bdunlearn.reports.tables import ORDER, cell

BUDGET = "cfg.defense.num_samples"


def summarise(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (budget, defense): means and stds over seeds, and the table's cells."""
    rows = []
    for (budget, defense), runs in frame.groupby([BUDGET, "defense"], sort=True):
        rows.append({
            "budget": int(budget), "defense": defense, "seeds": len(runs),
            "clean_acc": runs["clean_acc"].mean(), "asr": runs["asr"].mean(),
            "clean_acc_sd": runs["clean_acc"].std(), "asr_sd": runs["asr"].std(),
            "retained": runs["clean_acc_retained"].mean(),
            "CA": cell(runs["clean_acc"]), "ASR": cell(runs["asr"]), "CA kept": cell(runs["clean_acc_retained"]),
            "samples": f"{runs['defense_samples'].mean():.0f}", "seconds": cell(runs["defense_seconds"], 1),
        })  # fmt: skip
    table = pd.DataFrame(rows)
    defenses = ORDER["defense"]
    table["order"] = table["defense"].map({d: i for i, d in enumerate(defenses)}).fillna(len(defenses))
    return table.sort_values(["budget", "order"]).drop(columns="order")


def findings(table: pd.DataFrame, train_size: int) -> list[str]:
    """One sentence per budget, computed from the table: who meets the paper's claim, and where TBAR stands."""
    lines = []
    for budget, rows in table.groupby("budget", sort=True):
        share = f"{100 * budget / train_size:g} %"
        meets = rows[criteria.meets_claim(rows["asr"], rows["retained"])]["defense"].tolist()
        kept = rows[criteria.keeps_clean_accuracy(rows["retained"])]
        best = kept.loc[kept["asr"].idxmin()] if len(kept) else None
        tbar = rows[rows["defense"] == "tbar"]
        text = f"- {budget} samples ({share}): "
        text += f"ASR ≤ {PAPER_ASR} with CA kept ≥ {PAPER_CA_KEPT}: {', '.join(meets) if meets else 'no defense'}; "
        if best is not None:
            text += f"lowest ASR among defenses keeping ≥ {PAPER_CA_KEPT} of CA: `{best['defense']}` ({best['asr']:.3f})"
        if len(tbar):
            text += f"; TBAR: ASR {tbar['asr'].iloc[0]:.3f}, CA kept {tbar['retained'].iloc[0]:.3f}"
        lines.append(text + ".")
    return lines


def plot(table: pd.DataFrame, frame: pd.DataFrame, path: Path, train_size: int) -> None:
    """CA against ASR, one line per defense through its budgets (labelled with the share of the training set)."""
    fig, ax = plt.subplots(figsize=(7.2, 4.8))
    colours = plt.get_cmap("tab10")
    ax.scatter(frame["asr_backdoored"].mean(), frame["clean_acc_backdoored"].mean(), marker="x", s=80, color="black", label="θ_b", zorder=5)
    ax.axhline(frame["clean_acc_pretrained"].mean(), color="grey", ls=":", lw=1, label="θ_pre zero-shot CA")
    ax.axhline(PAPER_CA_KEPT * frame["clean_acc_backdoored"].mean(), color="grey", ls="--", lw=0.8, label=f"{PAPER_CA_KEPT} × CA(θ_b)")
    for i, defense in enumerate(d for d in ORDER["defense"] if d in set(table["defense"]) and d != "none"):
        rows = table[table["defense"] == defense]
        ax.errorbar(rows["asr"], rows["clean_acc"], xerr=rows["asr_sd"], yerr=rows["clean_acc_sd"], fmt="-o", ms=4, lw=1,
                    color=colours(i), label=defense, capsize=2, alpha=0.9)  # fmt: skip
        for _, row in rows.iterrows():
            ax.annotate(f"{100 * row['budget'] / train_size:g}%", (row["asr"], row["clean_acc"]), fontsize=6,
                        xytext=(3, 3), textcoords="offset points", color=colours(i))  # fmt: skip
    ax.set(xlabel="ASR (test)", ylabel="CA (test)", xlim=(-0.03, 1.03), title="Defenses at equal data budgets (labels: % of the training set)")
    ax.title.set_fontsize(10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    plots.save(fig, path, dpi=140)


def write(sweep_dir: Path, out: Path, train_size: int, hardware: str) -> str:
    """Write ``defense_budget.md`` and ``.png`` into ``out``; returns the line to print."""
    frame = load_records([str(sweep_dir)])
    table = summarise(frame)
    plot(table, frame, out / "defense_budget.png", train_size)
    failed = count_not_ok([str(sweep_dir)])
    lines = [
        "# Defenses at equal data budgets (Fashion-MNIST, tiny CLIP, BadNets)",
        "",
        "Produced by `scripts/defense_budget.py` from the run records of one sweep; no number is edited by hand.",
        "",
        f"- command (as Hydra recorded it): `{sweep_command(sweep_dir)}`, then "
        f"`python scripts/defense_budget.py {sweep_dir} --out {out}`",
        f"- {len(frame)} ok runs ({failed} not ok); written {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC on {hardware}",
        f"- budget: `defense.num_samples`, clean images from the defender's pool (half of the {train_size:,} training images, "
        "disjoint from the attacker's 27,000, validation and test); TBAR triggers its samples, the others use them clean. "
        "Every defense trains for its configured steps whatever the budget (TBAR 100 × 32, the others 300 × 64), so a "
        "larger budget means more distinct images, not more compute",
        f"- θ_pre zero-shot CA {frame['clean_acc_pretrained'].mean():.3f}; θ_b CA {frame['clean_acc_backdoored'].mean():.3f}, "
        f"ASR {frame['asr_backdoored'].mean():.3f} (mean over seeds); mean ± std over seeds {sorted(frame['seed'].unique().tolist())}",
        "",
        "![CA against ASR per defense and budget](defense_budget.png)",
        "",
        "| budget | defense | seeds | CA | ASR | CA kept | samples | seconds |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for _, row in table.iterrows():
        share = f"{row['budget']} ({100 * row['budget'] / train_size:g} %)"
        lines.append(f"| {share} | `{row['defense']}` | {row['seeds']} | {row['CA']} | {row['ASR']} | {row['CA kept']} | {row['samples']} | {row['seconds']} |")
    lines += ["", f"What the numbers say (computed by the script; bars from the paper: ASR ≤ {PAPER_ASR}, CA kept ≥ {PAPER_CA_KEPT}):", ""]
    lines += findings(table, train_size)
    write_text_atomic(out / "defense_budget.md", "\n".join(lines) + "\n")
    return f"wrote {out / 'defense_budget.md'} and {out / 'defense_budget.png'} ({len(frame)} runs)"
