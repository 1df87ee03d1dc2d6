"""``results/unknown_attack.md``: TBAR with a known trigger against TBAR on an inverted one (DECREE, BTI-DBF), and
whether the inversions leave clean models alone.

Runs on ``attack=none`` are the clean-model detection rows; calibration sweeps (models the detection thresholds
or an inversion's settings were chosen on) get their own table, replication sweeps (models nothing was chosen
on) a summary of their own. An inversion run's label names the settings that differ from its config's defaults.
"""

from __future__ import annotations

import json
import os
import statistics
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

from bdunlearn.atomic import write_bytes_atomic, write_text_atomic
from bdunlearn.reports import criteria
from bdunlearn.reports.provenance import finished_at, sweep_command
from bdunlearn.reports.records import Run, sweep_runs
from bdunlearn.reports.studies.detection import (
    budgets,
    fraction,
    own_flags,
    own_scores,
    scores3,
    summary_table,
    targets,
    transfers,
)
from bdunlearn.reports.tables import values_cell

NAMES = {"decree": "DECREE", "bti_dbf": "BTI-DBF"}
METHOD_ORDER = {"known trigger": 0, "DECREE": 1, "BTI-DBF": 2}
ATTACK_ORDER = ("badnets", "blended", "wanet")


@dataclass(frozen=True)
class InversionDefaults:
    """Each inversion's config defaults, and which of its keys only turn statistics into a verdict."""

    defaults: dict[str, dict]  # inversion name → its Config's defaults
    verdict_keys: tuple[str, ...]

    @classmethod
    def of(cls, configs: dict[str, type], verdict_keys: tuple[str, ...]) -> InversionDefaults:
        """From each inversion's Config dataclass (``bdunlearn.inversion.REGISTRY[name].Config``)."""
        return cls({name: asdict(config()) for name, config in sorted(configs.items())}, tuple(verdict_keys))

    def threshold(self, inversion: str) -> float:
        return float(self.defaults[inversion]["detection_threshold"])


def method(run: Run, inversions: InversionDefaults) -> str:
    """'known trigger', or the inversion's name with the settings that differ from its defaults (e.g. a
    threshold every score passes, which makes TBAR run on whatever was inverted)."""
    record = run.record
    if record.get("attack_knowledge", "known") == "known":
        return "known trigger"
    inversion = record["inversion"]
    used = run.config("inversion")
    label = NAMES.get(inversion, inversion)
    reference = inversions.defaults[inversion]
    changed = [
        f"{k}={json.dumps(v) if isinstance(v, bool) or v is None else v}"
        for k, v in used.items()
        if k not in (*inversions.verdict_keys, "name") and v != reference.get(k)
    ]
    if changed:
        label += f" ({', '.join(changed)})"
    verdict_changed = [
        f"{k}={used[k]}" for k in inversions.verdict_keys if k != "detection_threshold" and k in used and used[k] != reference.get(k)
    ]
    if used["detection_threshold"] != float(reference["detection_threshold"]):
        verdict_changed.insert(0, f"threshold {used['detection_threshold']:g}")
    if verdict_changed:
        label += f" ({', '.join(verdict_changed)})"
    return label


def verdict(records: list[dict]) -> str:
    asr = statistics.mean(r["asr"] for r in records)
    skipped = sum(bool(r.get("defense_skipped")) for r in records)
    text = "removed" if criteria.removed(asr) else "not removed"
    return f"{text}" + (f"; TBAR skipped in {skipped}/{len(records)}" if skipped else "")


def grouped(sweeps: list[Path], inversions: InversionDefaults) -> dict[tuple, list]:
    """The ok records of ``sweeps`` by (attack, inversion label)."""
    groups: dict[tuple, list] = defaultdict(list)
    for sweep in sweeps:
        for run in sweep_runs(sweep):
            if run.ok:
                groups[(run.record["attack"], method(run, inversions))].append(run.record)
    return groups


def header_lines(sweeps: list[Path], calibration: list[Path], replication: list[Path], runs: list[Run],
                 notes: list[str], hardware: str, inversions: InversionDefaults) -> list[str]:  # fmt: skip
    everything = [run.run_dir for run in runs] + [run.run_dir for sweep in [*calibration, *replication] for run in sweep_runs(sweep)]
    finished = finished_at(everything)
    decree, bti = inversions.defaults["decree"], inversions.defaults["bti_dbf"]
    return [
        "# Unknown attacks: TBAR with a known trigger vs an inverted one (DECREE, BTI-DBF)",
        "",
        "Produced by `scripts/unknown_attack_table.py` from the run records of the sweeps below; no number is "
        "edited by hand.",
        "",
        "Commands (as Hydra recorded them in each sweep's `multirun.yaml`):",
        "",
        *[f"- `{sweep_command(s)}`" for s in [*sweeps, *calibration]],
        *(["- replication sweeps: their own section at the end"] if replication else []),
        "",
        f"- last run finished: {finished:%Y-%m-%d %H:%M} UTC" if finished else "- no runs",
        f"- hardware: {hardware}",
        *[f"- {note}" for note in notes],
        "- data and model: the embedded default (tiny CLIP pretrained here, scikit-learn digits at 16×16); "
        "`finetune.*`, `defense.*` and `inversion.*` at their defaults unless the command says otherwise; target class 0",
        f"- the methods' own statistics and thresholds: DECREE PL1-norm < {inversions.threshold('decree'):g}; BTI-DBF flip rate ≥ "
        f"{inversions.threshold('bti_dbf'):g}. The reference check: transfer = (flip rate of the inverted trigger towards the "
        "estimated target on θ_pre) / (the same on θ_b), specific to θ_b when < "
        f"{decree['reference_threshold']:g}. Verdict (`detection`): DECREE `{decree['detection']}`, "
        f"BTI-DBF `{bti['detection']}` (how they were chosen: docs/unknown-attacks.md). When nothing "
        "is detected TBAR is skipped and θ_b is returned as it is.",
        "- test CA / ASR / RA are always measured with the **real** trigger and target; under `attack_knowledge=unknown` "
        "TBAR's triggered set, its validation ASR (α choice) and its target come from the inversion only.",
        "- values: mean ± std over seeds; per-seed lists in seed order",
    ]


def attacked_lines(attacked: dict[tuple, list]) -> list[str]:
    def order(key):
        return (ATTACK_ORDER.index(key[0]) if key[0] in ATTACK_ORDER else 9, METHOD_ORDER.get(key[1], 3), key[1])

    lines = [
        "## Backdoored models",
        "",
        "| attack | TBAR's trigger | seeds | detected | transfer | own statistic (flagged by it) | pixel budget kept | estimated target | CA θ_b | ASR θ_b | CA | ASR (per seed) | RA | α | backdoor |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for key in sorted(attacked, key=order):
        records = sorted(attacked[key], key=lambda r: r["seed"])
        known = key[1] == "known trigger"
        lines.append(
            f"| `{key[0]}` | {key[1]} | {','.join(str(r['seed']) for r in records)} | "
            f"{'–' if known else fraction([r['detected'] for r in records])} | "
            f"{'–' if known else transfers(records)} | "
            f"{'–' if known else own_scores(records) + ' (' + own_flags(records) + ')'} | "
            f"{'–' if known else budgets(records)} | "
            f"{'(known: ' + str(records[0]['target_class']) + ')' if known else targets(records)} | "
            + " | ".join(values_cell([r[k] for r in records]) for k in ("clean_acc_backdoored", "asr_backdoored", "clean_acc"))
            + f" | {values_cell([r['asr'] for r in records])} ({scores3([r['asr'] for r in records])}) | "
            + " | ".join(values_cell([r[k] for r in records]) for k in ("robust_acc", "alpha"))
            + f" | {verdict(records)} |"
        )
    return lines


def clean_lines(clean: dict[str, list]) -> list[str]:
    lines = [
        "## Clean models (`attack=none`): must not be flagged",
        "",
        "| inversion | seeds | flagged backdoored | transfer | own statistic (flagged by it) | pixel budget kept | estimated target | CA θ (clean fine-tune) | CA after defense | TBAR skipped |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, records in sorted(clean.items(), key=lambda item: METHOD_ORDER.get(item[0], 3)):
        records = sorted(records, key=lambda r: r["seed"])
        lines.append(
            f"| {name} | {','.join(str(r['seed']) for r in records)} | {fraction([r['detected'] for r in records])} | "
            f"{transfers(records)} | {own_scores(records)} ({own_flags(records)}) | {budgets(records)} | "
            f"{', '.join(str(r['target_class_estimated']) for r in records)} | "
            f"{values_cell([r['clean_acc_backdoored'] for r in records])} | {values_cell([r['clean_acc'] for r in records])} | "
            f"{fraction([r.get('defense_skipped') for r in records])} |"
        )
    return lines


def calibration_lines(development: dict[tuple, list]) -> list[str]:
    lines = [
        "## Calibration and development models (the thresholds and BTI-DBF's settings were chosen on these; "
        "not in the tables above)",
        "",
        "Summary:",
        "",
        *summary_table(development),
        "",
        "Per model:",
        "",
        "| attack | inversion | seed | transfer | own statistic | flagged by it | flagged (default verdict) | pixel budget kept | estimated target | right target |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for (attack, label), records in sorted(development.items(), key=lambda item: (item[0][1], item[0][0])):
        for record in sorted(records, key=lambda r: r["seed"]):
            lines.append(
                f"| `{attack}` | {label} | {record['seed']} | {transfers([record])} | "
                f"{own_scores([record])} | {record.get('inversion_statistic_detected', '–')} | "
                f"{record['detected']} | {budgets([record])} | {record['target_class_estimated']} | "
                f"{'–' if attack == 'none' else criteria.right_target(record)} |"
            )
    return lines


def preview_lines(ok: list[Run], labels: list[str], previews: Path, out: Path) -> list[str]:
    """Copy seed 0's ``inverted_trigger.png`` of each default-settings run into ``previews``; Markdown lines."""
    previews.mkdir(parents=True, exist_ok=True)
    lines = ["Inverted triggers, seed 0 (rows: pool images, with the inverted trigger, |difference| stretched):", ""]
    for run, label in zip(ok, labels, strict=True):
        record, source = run.record, run.run_dir / "inverted_trigger.png"
        if record["seed"] != 0 or not source.is_file() or "(" in label:  # defaults only
            continue
        target = previews / f"inverted_{record['inversion']}_{record['attack']}.png"
        write_bytes_atomic(target, source.read_bytes())
        lines.append(f"- {label}, `{record['attack']}` (estimated target {record['target_class_estimated']}): "
                     f"![{record['inversion']} {record['attack']}]({os.path.relpath(target, out.parent)})")  # fmt: skip
    return lines


def write(
    sweeps: list[Path], calibration: list[Path], out: Path, inversions: InversionDefaults, hardware: str, *,
    notes: list[str] = (), previews: Path | None = None, replication: list[Path] = (), replication_notes: list[str] = (),
) -> str:  # fmt: skip
    """Write the report to ``out``; returns the line to print."""
    runs = [run for sweep in sweeps for run in sweep_runs(sweep)]
    ok = [run for run in runs if run.ok]
    failed = [run for run in runs if not run.ok]
    labels = [method(run, inversions) for run in ok]
    attacked: dict[tuple, list] = defaultdict(list)
    clean: dict[str, list] = defaultdict(list)
    for run, label in zip(ok, labels, strict=True):
        if run.record["attack"] == "none":
            clean[label].append(run.record)
        else:
            attacked[(run.record["attack"], label)].append(run.record)
    lines = [*header_lines(sweeps, calibration, replication, runs, notes, hardware, inversions), "", *attacked_lines(attacked), "", *clean_lines(clean)]
    if calibration:
        lines += ["", *calibration_lines(grouped(calibration, inversions))]
    if replication:
        lines += [
            "",
            "## Replication on models no table above has seen (not used to choose anything)",
            "",
            *[f"- {note}" for note in replication_notes],
            *[f"- `{sweep_command(s)}`" for s in replication],
            "",
            *summary_table(grouped(replication, inversions)),
        ]
    if previews is not None:
        lines += ["", *preview_lines(ok, labels, previews, out)]
    if failed:
        lines += ["", "Runs that failed:", ""]
        lines += [f"- {run.run_dir}: {run.record.get('attack')} seed {run.record.get('seed')}: {run.record.get('error')}" for run in failed]
    write_text_atomic(out, "\n".join(lines) + "\n")
    return f"wrote {out} ({len(ok)} runs, {len(failed)} failed)"
