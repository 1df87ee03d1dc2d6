"""The scale study's report: does TBAR's premise appear as the CLIP grows, and with which variant?

    python scripts/scale_study.py 'multirun/experiment=scale_study' [--out results/] [--name scale_study]

Reads every ``ok`` run record of the sweep(s) (``bdunlearn -m experiment=scale_study``: rung × seed × study
arm, see ``conf/experiment/scale_study.yaml``) and writes into ``--out``:

- ``<name>.md``: per rung the testbed (θ_pre zero-shot CA, the clean fine-tune θ_c, θ_b, the control dataset)
  and the weight-space diagnostics (ξ of the clean and poison vectors, cosines of TBAR's vector with the
  attack's and the poison's); per rung × arm the defended test CA / ASR / CA kept and each arm's distance to
  the paper's claim (ASR ≤ 0.05 with ≥ 95 % of θ_b's CA kept), read off the validation α curve for the arms
  that have one; and the answer to "which rung and variant reaches the claim, and how far is each from it";
- ``<name>.csv``: the per rung × arm numbers (mean, std, count over seeds);
- ``<name>_alpha_curves.png``, ``<name>_tradeoff.png``, ``<name>_trend.png``, ``<name>_disentanglement.png``.

Every number comes from the records (and the ξ grids the reference arm writes beside its record).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe  # noqa: E402

from bdunlearn.atomic import write_text_atomic  # noqa: E402
from bdunlearn.errors import UserError  # noqa: E402
from bdunlearn.models.architectures import architecture  # noqa: E402
from bdunlearn.tables import load_records, mean_std, sweep_command  # noqa: E402

CLAIM_ASR = 0.05  # the paper's bar: backdoor removed ...
CLAIM_KEPT = 0.95  # ... with this share of theta_b's clean accuracy kept
ARM_ORDER = (
    "none", "tbar", "tbar_non_target", "tbar_minus_clean", "tbar_project_clean", "tbar_first_block", "tbar_attention",
    "tbar_from_pretrained", "tbar_long", "tbar_high_lr", "tbar_replay", "interpolate", "finetune_1x", "finetune_10x", "finetune_50x",
)  # fmt: skip
ARM_METRICS = ("clean_acc", "asr", "clean_acc_retained", "control_acc", "alpha", "defense_samples", "defense_seconds")
RUNG_METRICS = (
    "clean_acc_pretrained", "clean_acc_clean_model", "clean_acc_backdoored", "asr_backdoored", "gain",
    "control_acc_pretrained", "control_acc_backdoored", "xi_at_one", "xi_disentangled_area", "cosine_poison_clean",
)  # fmt: skip


def rung_size(model: str) -> tuple[int, int]:
    """(width, layers) of the image tower: the rungs' order."""
    vision = architecture(model)["vision_cfg"]
    return vision["width"], vision["layers"]


def rung_name(model: str) -> str:
    width, layers = rung_size(model)
    return f"{model.removeprefix('bdunlearn-')} (w{width}, {layers}L)"


def claim_distance(curve_json: str | float) -> tuple[float | None, float | None]:
    """From a validation α curve: (best CA kept among α with val ASR ≤ 0.05, lowest val ASR among α keeping ≥ 95 %)."""
    if not isinstance(curve_json, str):
        return None, None
    curve = json.loads(curve_json)
    reference = next(p for p in curve if p["alpha"] == 0.0)["val_clean_acc"]
    kept = [p["val_clean_acc"] / reference for p in curve if p["val_asr"] <= CLAIM_ASR]
    asr = [p["val_asr"] for p in curve if p["val_clean_acc"] >= CLAIM_KEPT * reference]
    return (max(kept) if kept else None), (min(asr) if asr else None)


def load(sources: list[str]) -> pd.DataFrame:
    frame = load_records(sources)
    missing = [c for c in ("model", "seed", "label") if c not in frame.columns]
    if missing:
        raise UserError(f"records lack {missing}: give the sweep of experiment=scale_study")
    frame["gain"] = frame["clean_acc_backdoored"] - frame["clean_acc_pretrained"]
    frame["meets_claim"] = (frame["asr"] <= CLAIM_ASR) & (frame["clean_acc_retained"] >= CLAIM_KEPT)
    distances = [claim_distance(c) for c in frame.get("alpha_curve", pd.Series([None] * len(frame)))]
    frame["val_kept_at_claim_asr"] = [d[0] for d in distances]
    frame["val_asr_at_claim_kept"] = [d[1] for d in distances]
    frame["rung"] = frame["model"].map(rung_name)
    return frame


def rungs(frame: pd.DataFrame) -> list[str]:
    return sorted(frame["model"].unique(), key=rung_size)


def arms(frame: pd.DataFrame) -> list[str]:
    present = set(frame["label"])
    return [a for a in ARM_ORDER if a in present] + sorted(present - set(ARM_ORDER))


def cell(values: pd.Series, digits: int = 3) -> str:
    values = pd.to_numeric(values, errors="coerce").dropna()
    return mean_std(values.mean(), values.std(), len(values), digits) if len(values) else "–"


def rung_table(frame: pd.DataFrame) -> list[str]:
    head = (
        "| rung | image-tower params | seeds | CA θ_pre (zero-shot) | CA θ_c (clean fine-tune) | ASR θ_c | CA θ_b | ASR θ_b | fine-tune gain "
        "| control CA θ_pre | control CA θ_b | ξ(1, 1) | ξ ≤ 0.1 area | cos(θ_b−θ_c, θ_c−θ_pre) | cos(τ_t, θ_b−θ_pre) | cos(τ_t, θ_b−θ_c) |"
    )
    lines = [head, "|" + " --- |" * (head.count("|") - 1)]
    for model in rungs(frame):
        runs = frame[frame["model"] == model]
        reference = runs[runs["label"] == "none"]
        tbar = runs[runs["label"] == "tbar"]
        base = reference if len(reference) else runs.drop_duplicates("seed")
        params = _params(model)
        lines.append(
            f"| {rung_name(model)} | {params:,} | {base['seed'].nunique()} | {cell(base['clean_acc_pretrained'])} | "
            f"{cell(base.get('clean_acc_clean_model', pd.Series(dtype=float)))} | {cell(base.get('asr_clean_model', pd.Series(dtype=float)))} | "
            f"{cell(base['clean_acc_backdoored'])} | "
            f"{cell(base['asr_backdoored'])} | {cell(base['gain'])} | {cell(base.get('control_acc_pretrained', pd.Series(dtype=float)))} | "
            f"{cell(base.get('control_acc_backdoored', pd.Series(dtype=float)))} | {cell(reference.get('xi_at_one', pd.Series(dtype=float)))} | "
            f"{cell(reference.get('xi_disentangled_area', pd.Series(dtype=float)), 2)} | {cell(reference.get('cosine_poison_clean', pd.Series(dtype=float)))} | "
            f"{cell(tbar.get('cosine_trigger_attack', pd.Series(dtype=float)))} | {cell(tbar.get('cosine_trigger_poison', pd.Series(dtype=float)))} |"
        )
    return lines


def _params(model: str) -> int:
    """Parameters of the image tower (the part every fine-tune here trains)."""
    import math

    from bdunlearn.models.clip import state_shapes

    return sum(math.prod(shape) for name, shape in state_shapes(model).items() if name.startswith("visual"))


def arm_table(frame: pd.DataFrame) -> tuple[list[str], pd.DataFrame]:
    head = (
        "| rung | arm | seeds | CA | ASR | CA kept | control CA | α | samples | meets the claim (seeds) "
        "| val: best CA kept at ASR ≤ 0.05 | val: lowest ASR keeping ≥ 95 % |"
    )
    lines = [head, "|" + " --- |" * (head.count("|") - 1)]
    rows = []
    for model in rungs(frame):
        base = frame[frame["model"] == model].drop_duplicates("seed")
        kept = pd.to_numeric(base["clean_acc_pretrained"]) / pd.to_numeric(base["clean_acc_backdoored"])
        lines.append(
            f"| {rung_name(model)} | θ_pre (zero-shot) | {len(base)} | {cell(base['clean_acc_pretrained'])} | "
            f"{cell(base['asr_pretrained'])} | {cell(kept)} | {cell(base.get('control_acc_pretrained', pd.Series(dtype=float)))} | – | – | – | – | – |"
        )
        for arm in arms(frame):
            runs = frame[(frame["model"] == model) & (frame["label"] == arm)]
            if runs.empty:
                continue
            met = int(runs["meets_claim"].sum())
            lines.append(
                f"| {rung_name(model)} | `{arm}` | {len(runs)} | {cell(runs['clean_acc'])} | {cell(runs['asr'])} | "
                f"{cell(runs['clean_acc_retained'])} | {cell(runs.get('control_acc', pd.Series(dtype=float)))} | "
                f"{cell(runs['alpha'], 2)} | {cell(runs['defense_samples'], 0)} | {met}/{len(runs)} | "
                f"{cell(runs['val_kept_at_claim_asr'])} | {cell(runs['val_asr_at_claim_kept'])} |"
            )
            for metric in (*ARM_METRICS, "val_kept_at_claim_asr", "val_asr_at_claim_kept"):
                values = pd.to_numeric(runs.get(metric, pd.Series(dtype=float)), errors="coerce").dropna()
                rows.append({"model": model, "arm": arm, "metric": metric, "mean": values.mean(), "std": values.std(), "count": len(values)})
    return lines, pd.DataFrame(rows)


def answer(frame: pd.DataFrame) -> list[str]:
    """The question of the study, answered from the numbers."""
    lines = []
    met = frame[frame["meets_claim"]]
    defended = frame[frame["label"] != "none"]
    if met.empty:
        lines.append(
            f"- **No rung and no arm reaches the claim** (test ASR ≤ {CLAIM_ASR} with ≥ {CLAIM_KEPT:.0%} of θ_b's CA kept) in any seed."
        )
    else:
        pairs = sorted({(rung_name(m), a) for m, a in zip(met["model"], met["label"])})
        lines.append("- **Reached in at least one seed by:** " + ", ".join(f"{r} `{a}`" for r, a in pairs) + ".")
    for model in rungs(frame):
        runs = defended[defended["model"] == model]
        if runs.empty:
            continue
        means = runs.groupby("label")[["asr", "clean_acc_retained"]].mean()
        kept_ok = means[means["clean_acc_retained"] >= CLAIM_KEPT]
        best_asr = kept_ok["asr"].idxmin() if len(kept_ok) else None
        removed = means[means["asr"] <= CLAIM_ASR]
        best_kept = removed["clean_acc_retained"].idxmax() if len(removed) else None
        parts = []
        if best_asr is not None:
            parts.append(f"among arms keeping ≥ {CLAIM_KEPT:.0%} of CA (means over seeds) the lowest ASR is `{best_asr}`'s {kept_ok.loc[best_asr, 'asr']:.3f}")
        else:
            parts.append(f"no arm keeps {CLAIM_KEPT:.0%} of CA on average")
        if best_kept is not None:
            parts.append(f"among arms with ASR ≤ {CLAIM_ASR}, `{best_kept}` keeps the most CA ({removed.loc[best_kept, 'clean_acc_retained']:.3f})")
        else:
            parts.append(f"no arm brings mean ASR to {CLAIM_ASR} or below")
        tbar_curves = runs[runs["label"].str.startswith("tbar")]
        curve_best = pd.to_numeric(tbar_curves["val_kept_at_claim_asr"], errors="coerce")
        if curve_best.notna().any():
            arm = tbar_curves.loc[curve_best.idxmax(), "label"]
            parts.append(f"on the validation curves the best TBAR variant at ASR ≤ {CLAIM_ASR} keeps {curve_best.max():.3f} of CA (`{arm}`)")
        lines.append(f"- {rung_name(model)}: " + "; ".join(parts) + ".")
    trend = _trend(frame)
    if trend:
        lines.append("- Across rungs (small to large), " + trend + ".")
    return lines


def _trend(frame: pd.DataFrame) -> str:
    order = rungs(frame)
    if len(order) < 2:
        return ""
    parts = []
    for arm in ("tbar", "interpolate"):
        runs = frame[frame["label"] == arm]
        series = [pd.to_numeric(runs[runs["model"] == m]["val_kept_at_claim_asr"], errors="coerce").mean() for m in order]
        if any(pd.notna(v) for v in series):
            shown = " → ".join("–" if pd.isna(v) else f"{v:.3f}" for v in series)
            parts.append(f"`{arm}`'s CA kept at validation ASR ≤ {CLAIM_ASR} goes {shown}")
    reference = frame[frame["label"] == "none"]
    if "xi_at_one" in reference:
        series = [pd.to_numeric(reference[reference["model"] == m]["xi_at_one"], errors="coerce").mean() for m in order]
        parts.append("ξ(1, 1) of the clean and poison vectors goes " + " → ".join("–" if pd.isna(v) else f"{v:.3f}" for v in series))
    tbar = frame[frame["label"] == "tbar"]
    if "cosine_trigger_poison" in tbar:
        series = [pd.to_numeric(tbar[tbar["model"] == m]["cosine_trigger_poison"], errors="coerce").mean() for m in order]
        parts.append("cos(τ_t, θ_b − θ_c) goes " + " → ".join("–" if pd.isna(v) else f"{v:.3f}" for v in series))
    return "; ".join(parts)


# --- plots -----------------------------------------------------------------------------------------------


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def plot_alpha_curves(frame: pd.DataFrame, path: Path, curve_arms=("tbar", "interpolate")) -> None:
    order = rungs(frame)
    fig, axes = plt.subplots(1, len(order), figsize=(4.6 * len(order), 3.8), squeeze=False)
    colors = {"tbar": "tab:blue", "interpolate": "tab:green"}
    for ax, model in zip(axes[0], order):
        for arm in curve_arms:
            for _, run in frame[(frame["model"] == model) & (frame["label"] == arm)].iterrows():
                curve = pd.DataFrame(json.loads(run["alpha_curve"]))
                kept = curve["val_clean_acc"] / curve.loc[curve["alpha"] == 0.0, "val_clean_acc"].iloc[0]
                color = colors.get(arm, "tab:purple")
                ax.plot(curve["alpha"], kept, "-", color=color, alpha=0.8, label=f"{arm}: CA kept" if run["seed"] == 0 else None)
                ax.plot(curve["alpha"], curve["val_asr"], "--", color=color, alpha=0.8, label=f"{arm}: ASR" if run["seed"] == 0 else None)
        ax.axhline(CLAIM_KEPT, color="grey", lw=0.8, ls=":")
        ax.axhline(CLAIM_ASR, color="grey", lw=0.8, ls=":")
        ax.set(title=rung_name(model), xlabel="α", ylabel="validation", ylim=(-0.02, 1.05))
        ax.legend(fontsize=7)
    fig.suptitle("Validation CA kept (solid) and ASR (dashed) against α; dotted: the claim's bars", fontsize=9)
    _save(fig, path)


def plot_tradeoff(frame: pd.DataFrame, path: Path) -> None:
    order = rungs(frame)
    fig, axes = plt.subplots(1, len(order), figsize=(4.8 * len(order), 4.2), squeeze=False)
    present = arms(frame)
    cmap = plt.get_cmap("tab20")
    for ax, model in zip(axes[0], order):
        ax.axvspan(0, CLAIM_ASR, ymin=0, ymax=1, color="tab:green", alpha=0.08)
        ax.axhline(CLAIM_KEPT, color="grey", lw=0.8, ls=":")
        for i, arm in enumerate(present):
            runs = frame[(frame["model"] == model) & (frame["label"] == arm)]
            if runs.empty:
                continue
            marker = "X" if arm == "none" else ("s" if arm.startswith("finetune") else ("D" if arm == "interpolate" else "o"))
            ax.scatter(runs["asr"], runs["clean_acc_retained"], color=cmap(i % 20), marker=marker, alpha=0.35, s=18)
            ax.errorbar(runs["asr"].mean(), runs["clean_acc_retained"].mean(), xerr=runs["asr"].std(), yerr=runs["clean_acc_retained"].std(),
                        color=cmap(i % 20), marker=marker, ms=7, lw=1, label=arm)  # fmt: skip
        ax.set(title=rung_name(model), xlabel="test ASR", ylabel="test CA kept (CA / CA θ_b)", xlim=(-0.03, 1.03))
    axes[0][-1].legend(fontsize=6, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.suptitle(f"Test trade-off per arm (faint: seeds, bold: mean ± std)\ngreen: ASR ≤ {CLAIM_ASR}; dotted: {CLAIM_KEPT:.0%} of CA kept", fontsize=9)
    _save(fig, path)


def plot_trend(frame: pd.DataFrame, path: Path) -> None:
    order = rungs(frame)
    x = list(range(len(order)))
    labels = [rung_name(m) for m in order]
    fig, (asr_ax, claim_ax, diag_ax) = plt.subplots(1, 3, figsize=(15, 4.2))
    cmap = plt.get_cmap("tab20")
    for i, arm in enumerate(arms(frame)):
        runs = frame[frame["label"] == arm]
        style = {"color": "black", "lw": 2.4, "zorder": 5} if arm == "tbar" else {"color": cmap(i % 20), "lw": 1.1}
        asr = [pd.to_numeric(runs[runs["model"] == m]["asr"], errors="coerce") for m in order]
        asr_ax.errorbar(x, [a.mean() for a in asr], yerr=[a.std() for a in asr], marker="o", capsize=2, label=arm, **style)
        if arm == "none":
            continue
        kept = [pd.to_numeric(runs[runs["model"] == m]["val_kept_at_claim_asr"], errors="coerce").mean() for m in order]
        if any(pd.notna(v) for v in kept):
            claim_ax.plot(x, kept, marker="o", label=arm, **style)
    asr_ax.axhline(CLAIM_ASR, color="grey", lw=0.8, ls=":")
    asr_ax.set(xticks=x, xticklabels=labels, ylabel="test ASR at the chosen α (mean ± std)", ylim=(-0.03, 1.03),
               title="Backdoor left after each arm (lower is better)")  # fmt: skip
    asr_ax.legend(fontsize=6, ncol=2)
    claim_ax.axhline(CLAIM_KEPT, color="grey", lw=0.8, ls=":")
    claim_ax.set(xticks=x, xticklabels=labels, ylabel=f"val CA kept at ASR ≤ {CLAIM_ASR}", title="Distance to the claim (higher is better)")
    claim_ax.legend(fontsize=6, ncol=2)
    reference = frame[frame["label"] == "none"]
    tbar = frame[frame["label"] == "tbar"]
    for data, key, label in (
        (reference, "xi_at_one", "ξ(1, 1): clean vs poison vector"),
        (reference, "xi_disentangled_area", "share of the ξ grid ≤ 0.1"),
        (tbar, "cosine_trigger_poison", "cos(τ_t, θ_b − θ_c)"),
        (tbar, "cosine_trigger_attack", "cos(τ_t, θ_b − θ_pre)"),
    ):
        if key in data:
            diag_ax.plot(x, [pd.to_numeric(data[data["model"] == m][key], errors="coerce").mean() for m in order], "o-", label=label)
    diag_ax.set(xticks=x, xticklabels=labels, title="Weight-space diagnostics")
    diag_ax.legend(fontsize=7)
    _save(fig, path)


def plot_disentanglement(frame: pd.DataFrame, path: Path) -> bool:
    reference = frame[(frame["label"] == "none")].sort_values("seed")
    maps = []
    for model in rungs(frame):
        runs = reference[reference["model"] == model]
        grids = [Path(d) / "disentanglement.csv" for d in runs["run_dir"]]
        grids = [g for g in grids if g.is_file()]
        if grids:
            maps.append((model, pd.concat([pd.read_csv(g) for g in grids]).groupby(["alpha_t", "alpha_c"])["xi"].mean().unstack()))
    if not maps:
        return False
    fig, axes = plt.subplots(1, len(maps), figsize=(4.2 * len(maps), 3.8), squeeze=False)
    for ax, (model, grid) in zip(axes[0], maps):
        image = ax.imshow(grid.values, origin="lower", cmap="viridis", vmin=0, vmax=max(1.0, float(grid.values.max())))
        ax.set_xticks(range(len(grid.columns)), [f"{a:g}" for a in grid.columns])
        ax.set_yticks(range(len(grid.index)), [f"{a:g}" for a in grid.index])
        for i in range(grid.shape[0]):
            for j in range(grid.shape[1]):
                ax.text(j, i, f"{grid.values[i, j]:.2f}", ha="center", va="center", fontsize=7, color="white" if grid.values[i, j] < 0.6 else "black")
        ax.set(title=rung_name(model), xlabel="α_c (θ_c − θ_pre)", ylabel="α_t (θ_b − θ_c)")
        fig.colorbar(image, ax=ax, fraction=0.046)
    fig.suptitle("ξ(α_c, α_t) of the clean and poison vectors, mean over seeds (0: disentangled)", fontsize=9)
    _save(fig, path)
    return True


def fidelity_row(frame: pd.DataFrame) -> list[str]:
    """The record ``bdunlearn experiment=fidelity_cpu`` reproduces: the study's run of the same rung, arm and seed."""
    from hydra import compose, initialize_config_dir

    from bdunlearn.config import CONFIG_DIR

    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR), job_name="scale_study"):
        cfg = compose(config_name="config", overrides=["experiment=fidelity_cpu"])
    match = frame[(frame["model"] == cfg.model.name) & (frame["label"] == cfg.label) & (frame["seed"] == cfg.seed)]
    if match.empty:
        return [f"- `experiment=fidelity_cpu` ({cfg.model.name}, `{cfg.label}`, seed {cfg.seed}) has no run in these records."]
    run = match.iloc[0]
    return [
        f"`bdunlearn experiment=fidelity_cpu` is this study's {rung_name(run['model'])} `{run['label']}` run with seed {run['seed']} "
        f"(without the θ_c diagnostics, which change no number of it); it reproduces this row:",
        "",
        "| rung | arm | seed | CA θ_pre | CA θ_b | ASR θ_b | CA | ASR | CA kept | control CA | α |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        f"| {rung_name(run['model'])} | `{run['label']}` | {run['seed']} | {run['clean_acc_pretrained']:.4f} | {run['clean_acc_backdoored']:.4f} | "
        f"{run['asr_backdoored']:.4f} | {run['clean_acc']:.4f} | {run['asr']:.4f} | {run['clean_acc_retained']:.4f} | "
        f"{_fmt(run.get('control_acc'))} | {_fmt(run.get('alpha'), 2)} |",
    ]


def _fmt(value, digits: int = 4) -> str:
    return "–" if value is None or pd.isna(value) else f"{float(value):.{digits}f}"


def provenance(sources: list[str], frame: pd.DataFrame) -> list[str]:
    """The sweeps' commands, read from the ``multirun.yaml`` above each record's run dir (sources may be globs)."""
    sweeps = sorted({Path(d).parent for d in frame["run_dir"]})
    commands = [sweep_command(sweep) for sweep in sweeps if (sweep / "multirun.yaml").is_file()]
    try:
        commit = subprocess.run(
            ["git", "-C", str(Path(__file__).resolve().parent), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return [
        f"- sweeps: {'; '.join(f'`{c}`' for c in dict.fromkeys(commands)) or ', '.join(sources)}",
        f"- report: `python scripts/scale_study.py {' '.join(sys.argv[1:])}` at commit {commit}, "
        f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- hardware (this report's machine; the sweep ran on the same kind): {describe()}",
        f"- runs: {len(frame)} ok records; seeds {sorted(frame['seed'].unique().tolist())}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sources", nargs="+", help="sweep dirs (or globs) of experiment=scale_study")
    parser.add_argument("--out", type=Path, default=Path("results"))
    parser.add_argument("--name", default="scale_study")
    args = parser.parse_args()
    frame = load(args.sources)
    args.out.mkdir(parents=True, exist_ok=True)
    name = args.name
    arm_lines, long = arm_table(frame)
    long.to_csv(args.out / f"{name}.csv", index=False)
    plot_alpha_curves(frame, args.out / f"{name}_alpha_curves.png")
    plot_tradeoff(frame, args.out / f"{name}_tradeoff.png")
    plot_trend(frame, args.out / f"{name}_trend.png")
    has_maps = plot_disentanglement(frame, args.out / f"{name}_disentanglement.png")
    text = [
        "# Scale study: TBAR's premise across the scale ladder",
        "",
        "Produced by `scripts/scale_study.py` from the run records of the sweep(s) below; no number is edited by hand.",
        "",
        *provenance(args.sources, frame),
        "",
        "## The answer",
        "",
        *answer(frame),
        "",
        "## The testbed and the weight-space diagnostics, per rung",
        "",
        "CA and ASR on the test split (ASR θ_c: the trigger's effect on a model that never saw it, the floor a defense can reach);",
        "the fine-tune gain is CA θ_b − CA θ_pre; ξ (the reference arm, test images) of",
        "τ_c = θ_c − θ_pre and the poison vector θ_b − θ_c; τ_t is TBAR's trigger vector (paper variant).",
        "",
        *rung_table(frame),
        "",
        "## Every arm, per rung",
        "",
        f"Test numbers at the chosen α (mean ± std over seeds). 'Meets the claim': test ASR ≤ {CLAIM_ASR} and CA kept ≥ {CLAIM_KEPT}.",
        "The last two columns read the validation α curve (TBAR and its variants, interpolation): how much CA is kept",
        f"where ASR first reaches {CLAIM_ASR}, and how low ASR gets while {CLAIM_KEPT:.0%} of CA is kept (the κ rule's choice).",
        "",
        *arm_lines,
        "",
        "## `experiment=fidelity_cpu`",
        "",
        *fidelity_row(frame),
        "",
        "## Figures",
        "",
        f"- α curves: ![alpha curves]({name}_alpha_curves.png)",
        f"- trade-offs: ![trade-offs]({name}_tradeoff.png)",
        f"- trend across rungs: ![trend]({name}_trend.png)",
        *( [f"- ξ maps: ![disentanglement]({name}_disentanglement.png)"] if has_maps else [] ),
        "",
    ]  # fmt: skip
    write_text_atomic(args.out / f"{name}.md", "\n".join(text))
    print(f"wrote {args.out / (name + '.md')} and its figures ({len(frame)} records)")


if __name__ == "__main__":
    main()
