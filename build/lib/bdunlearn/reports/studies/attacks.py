"""``results/attacks.md``: every attack on the default data and model, and whether TBAR removed it."""

from __future__ import annotations

import os
import statistics
from collections import defaultdict
from pathlib import Path

from bdunlearn.atomic import write_bytes_atomic, write_text_atomic
from bdunlearn.reports import criteria
from bdunlearn.reports.provenance import finished_at, sweep_command
from bdunlearn.reports.records import Run, sweep_runs
from bdunlearn.reports.tables import values_cell

METRICS = (
    ("clean_acc_pretrained", "CA θ_pre"),
    ("clean_acc_backdoored", "CA θ_b"),
    ("asr_backdoored", "ASR θ_b"),
    ("clean_acc", "CA TBAR"),
    ("asr", "ASR TBAR"),
    ("robust_acc", "RA TBAR"),
    ("alpha", "α"),
    ("cosine_trigger_attack", "cos(τ_t, θ_b − θ_pre)"),
)


def settings(attack: dict) -> str:
    """An attack's config section as run, without its name and target."""
    return ", ".join(f"{k}={v}" for k, v in attack.items() if k not in ("name", "target_class") and v is not None)


def verdict(asr_backdoored: list[float], asr_defended: list[float]) -> str:
    planted = criteria.planted(statistics.mean(asr_backdoored))
    removed = criteria.removed(statistics.mean(asr_defended))
    if not planted:
        return f"backdoor **not planted** (mean ASR θ_b < {criteria.PLANTED_ASR})"
    bar = criteria.REMOVED_BELOW
    return f"TBAR **removed** it (mean ASR < {bar})" if removed else f"TBAR **did not remove** it (mean ASR ≥ {bar})"


def by_attack(runs: list[Run]) -> dict[str, list[Run]]:
    """The ok runs per attack, attacks in the order the sweep first ran them."""
    groups: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        if run.ok:
            groups[run.record["attack"]].append(run)
    return groups


def table_lines(groups: dict[str, list[Run]]) -> list[str]:
    lines = [
        "| attack | seeds | " + " | ".join(name for _, name in METRICS) + " | verdict |",
        "| --- | --- | " + " | ".join("---" for _ in METRICS) + " | --- |",
    ]
    for name, group in groups.items():
        records = [run.record for run in group]
        cells = [values_cell([r[key] for r in records]) for key, _ in METRICS]
        seeds = ",".join(str(r["seed"]) for r in records)
        judged = verdict([r["asr_backdoored"] for r in records], [r["asr"] for r in records])
        lines.append(f"| `{name}` | {seeds} | " + " | ".join(cells) + f" | {judged} |")
    return lines


def settings_lines(groups: dict[str, list[Run]]) -> list[str]:
    lines = []
    for name, group in groups.items():
        cached = sum(bool(run.record.get("backdoored_from_cache")) for run in group)
        reuse = f" (θ_b of {cached} of {len(group)} runs reused from the cache: same config, same code path)" if cached else ""
        lines.append(f"- `{name}`: {settings(group[0].config('attack', resolve=True))}{reuse}")
    return lines


def copy_previews(groups: dict[str, list[Run]], previews: Path, out: Path) -> list[str]:
    """Copy the first run's ``triggers.png`` of each attack into ``previews``; Markdown images relative to ``out``."""
    previews.mkdir(parents=True, exist_ok=True)
    lines = []
    for name, group in groups.items():
        source = group[0].run_dir / "triggers.png"
        if source.is_file():
            target = previews / f"triggers_{name}.png"
            write_bytes_atomic(target, source.read_bytes())
            lines.append(f"![{name}]({os.path.relpath(target, out.parent)})")
    return lines


def write(sweep_dir: Path, out: Path, previews: Path | None, hardware: str) -> str:
    """Write the report of one attack sweep to ``out``; returns the line to print."""
    runs = sweep_runs(sweep_dir)
    groups = by_attack(runs)
    failed = [run for run in runs if not run.ok]
    finished = finished_at([run.run_dir for run in runs])
    lines = [
        "# Attacks on the default data and model, and TBAR's effect",
        "",
        "Produced by `scripts/attack_table.py` from the run records of one sweep; no number is edited by hand.",
        "",
        f"- command (as Hydra recorded it in `multirun.yaml`): `{sweep_command(sweep_dir)}`",
        f"- sweep finished: {finished:%Y-%m-%d %H:%M} UTC" if finished else "- no runs",
        f"- hardware: {hardware}",
        "- data and model: the embedded default (tiny CLIP pretrained here, scikit-learn digits at 16×16), "
        "`finetune.*` and `defense.*` at their defaults; target class 0",
        f"- values: mean ± std over seeds; ASR goal for a planted backdoor: ≥ {criteria.PLANTED_ASR}",
        "",
        *table_lines(groups),
        "",
        "Settings of each attack (its config section as run):",
        "",
        *settings_lines(groups),
    ]
    if failed:
        lines += ["", "Runs that failed:", ""]
        lines += [f"- {run.run_dir.name}: {run.record.get('attack')} seed {run.record.get('seed')}: {run.record.get('error')}" for run in failed]
    if previews is not None:
        lines += ["", "Trigger previews (first run of each attack; rows: clean, triggered, |difference| stretched to white):", ""]
        lines += copy_previews(groups, previews, out)
    write_text_atomic(out, "\n".join(lines) + "\n")
    return f"wrote {out} ({sum(len(g) for g in groups.values())} runs, {len(failed)} failed)"
