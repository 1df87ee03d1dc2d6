"""Write results/defense_budget.{md,png} from the run records of ``bdunlearn -m experiment=defense_budget``.

    bdunlearn -m experiment=defense_budget
    python scripts/defense_budget.py 'multirun/experiment=defense_budget' --out results/

The table gives, at each budget, every defense's test CA and ASR (mean ± std over seeds), the share of
theta_b's CA it kept, and the samples and seconds it used; the figure plots CA against ASR per defense, one
point per budget. Every number comes from a ``result.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe  # noqa: E402

from bdunlearn.atomic import write_text_atomic  # noqa: E402
from bdunlearn.tables import load_records, mean_std, sweep_command  # noqa: E402

DEFENSES = ("none", "tbar", "finetune", "ft_sam", "cleanclip", "par")
BUDGET = "cfg.defense.num_samples"
KAPPA = 0.95  # the paper's bar for "clean accuracy kept", as TBAR's alpha rule uses it
REMOVED = 0.05  # the paper's bar for "backdoor removed"


def _cell(values: pd.Series, digits: int = 3) -> str:
    values = pd.to_numeric(values, errors="coerce").dropna()
    return mean_std(values.mean(), values.std(), len(values), digits) if len(values) else "–"


def summarise(frame: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (budget, defense), runs in frame.groupby([BUDGET, "defense"], sort=True):
        rows.append({
            "budget": int(budget), "defense": defense, "seeds": len(runs),
            "clean_acc": runs["clean_acc"].mean(), "asr": runs["asr"].mean(),
            "clean_acc_sd": runs["clean_acc"].std(), "asr_sd": runs["asr"].std(),
            "retained": runs["clean_acc_retained"].mean(),
            "CA": _cell(runs["clean_acc"]), "ASR": _cell(runs["asr"]), "CA kept": _cell(runs["clean_acc_retained"]),
            "samples": f"{runs['defense_samples'].mean():.0f}", "seconds": _cell(runs["defense_seconds"], 1),
        })  # fmt: skip
    table = pd.DataFrame(rows)
    table["order"] = table["defense"].map({d: i for i, d in enumerate(DEFENSES)}).fillna(len(DEFENSES))
    return table.sort_values(["budget", "order"]).drop(columns="order")


def findings(table: pd.DataFrame, train_size: int) -> list[str]:
    """One sentence per budget, computed from the table: who meets the paper's bar, and where TBAR stands."""
    lines = []
    for budget, rows in table.groupby("budget", sort=True):
        share = f"{100 * budget / train_size:g} %"
        meets = rows[(rows["asr"] <= REMOVED) & (rows["retained"] >= KAPPA)]["defense"].tolist()
        kept = rows[rows["retained"] >= KAPPA]
        best = kept.loc[kept["asr"].idxmin()] if len(kept) else None
        tbar = rows[rows["defense"] == "tbar"]
        text = f"- {budget} samples ({share}): "
        text += f"ASR ≤ {REMOVED} with CA kept ≥ {KAPPA}: {', '.join(meets) if meets else 'no defense'}; "
        if best is not None:
            text += f"lowest ASR among defenses keeping ≥ {KAPPA} of CA: `{best['defense']}` ({best['asr']:.3f})"
        if len(tbar):
            text += f"; TBAR: ASR {tbar['asr'].iloc[0]:.3f}, CA kept {tbar['retained'].iloc[0]:.3f}"
        lines.append(text + ".")
    return lines


def plot(table: pd.DataFrame, frame: pd.DataFrame, path: Path, train_size: int) -> None:
    fig, ax = plt.subplots(figsize=(7.2, 4.8))
    colours = plt.get_cmap("tab10")
    ax.scatter(frame["asr_backdoored"].mean(), frame["clean_acc_backdoored"].mean(), marker="x", s=80, color="black", label="θ_b", zorder=5)
    ax.axhline(frame["clean_acc_pretrained"].mean(), color="grey", ls=":", lw=1, label="θ_pre zero-shot CA")
    ax.axhline(KAPPA * frame["clean_acc_backdoored"].mean(), color="grey", ls="--", lw=0.8, label=f"{KAPPA} × CA(θ_b)")
    for i, defense in enumerate(d for d in DEFENSES if d in set(table["defense"]) and d != "none"):
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
    fig.tight_layout()
    fig.savefig(path, dpi=140)
    plt.close(fig)


def write_report(sweep_dir: Path, out: Path, train_size: int, note: str | None) -> None:
    frame = load_records([str(sweep_dir)])
    table = summarise(frame)
    plot(table, frame, out / "defense_budget.png", train_size)
    failed = len(load_records([str(sweep_dir)], only_ok=False)) - len(frame)
    lines = [
        "# Defenses at equal data budgets (Fashion-MNIST, tiny CLIP, BadNets)",
        "",
        "Produced by `scripts/defense_budget.py` from the run records of one sweep; no number is edited by hand.",
        "",
        f"- command (as Hydra recorded it): `{sweep_command(sweep_dir)}`, then "
        f"`python scripts/defense_budget.py {sweep_dir} --out {out}`",
        f"- {len(frame)} ok runs ({failed} not ok); written {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC on {describe()}",
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
    lines += ["", f"What the numbers say (computed by the script; bars from the paper: ASR ≤ {REMOVED}, CA kept ≥ {KAPPA}):", ""]
    lines += findings(table, train_size)
    write_text_atomic(out / "defense_budget.md", "\n".join(lines) + "\n")
    print(f"wrote {out / 'defense_budget.md'} and {out / 'defense_budget.png'} ({len(frame)} runs)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("--out", type=Path, default=Path("results"))
    parser.add_argument("--train-size", type=int, default=60000, help="training images the budgets are shares of")
    parser.add_argument("--note", default=None, help="a line about how the sweep ran (e.g. what else shared the machine)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    write_report(args.sweep_dir, args.out, args.train_size, args.note)


if __name__ == "__main__":
    main()
