"""Write results/unknown_attack.md: known-trigger TBAR vs DECREE-TBAR vs BTI-DBF-TBAR, and clean-model detection.

    bdunlearn -m attack=badnets,blended,wanet seed=0,1 defense=tbar hydra.sweep.dir=/tmp/inv/sweep-known
    bdunlearn -m attack=badnets,blended,wanet,none seed=0,1 defense=tbar attack_knowledge=unknown inversion=decree \\
        hydra.sweep.dir=/tmp/inv/sweep-decree
    bdunlearn -m ... inversion=bti_dbf hydra.sweep.dir=/tmp/inv/sweep-bti
    bdunlearn -m attack=none seed=2,3 defense=none attack_knowledge=unknown inversion=decree,bti_dbf \\
        hydra.sweep.dir=/tmp/inv/sweep-calibration
    python scripts/unknown_attack_table.py /tmp/inv/sweep-known /tmp/inv/sweep-decree /tmp/inv/sweep-bti \\
        --calibration /tmp/inv/sweep-calibration --out results/unknown_attack.md --previews results/

Every number comes from a ``result.json``; the commands are read back from each sweep's ``multirun.yaml``.
Runs on ``attack=none`` are the clean-model detection rows; ``--calibration`` sweeps (models the detection
thresholds or an inversion's settings were chosen on, never the reported seeds) get their own table, and
``--replication`` sweeps (models nothing was chosen on, e.g. built on a GPU by scripts/device_unknown_attack.sh)
a summary of their own. An
inversion run's label names the settings that differ from its config's defaults.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
from collections import defaultdict
from pathlib import Path

from omegaconf import OmegaConf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from attack_table import load_runs, mean_std, sweep_command  # noqa: E402
from machine import describe as hardware  # noqa: E402

from bdunlearn.atomic import write_bytes_atomic, write_text_atomic  # noqa: E402
from bdunlearn.config import CONFIG_DIR  # noqa: E402
from bdunlearn.inversion.stage import VERDICT_KEYS  # noqa: E402

NAMES = {"decree": "DECREE", "bti_dbf": "BTI-DBF"}
REMOVED = 0.1  # a defended ASR below this counts as "backdoor removed" (as in results/attacks.md)


def defaults(inversion: str) -> dict:
    return OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "inversion" / f"{inversion}.yaml"))


def default_threshold(inversion: str) -> float:
    return float(defaults(inversion)["detection_threshold"])


def method(record: dict, run_dir: Path) -> str:
    """'known trigger', or the inversion's name with the settings that differ from its defaults (e.g. a
    threshold every score passes, which makes TBAR run on whatever was inverted)."""
    if record.get("attack_knowledge", "known") == "known":
        return "known trigger"
    inversion = record["inversion"]
    used = OmegaConf.to_container(OmegaConf.load(run_dir / ".hydra" / "config.yaml").inversion)
    label = NAMES.get(inversion, inversion)
    reference = defaults(inversion)
    changed = [
        f"{k}={json.dumps(v) if isinstance(v, bool) or v is None else v}"
        for k, v in used.items()
        if k not in (*VERDICT_KEYS, "name") and v != reference.get(k)
    ]
    if changed:
        label += f" ({', '.join(changed)})"
    verdict_changed = [
        f"{k}={used[k]}" for k in VERDICT_KEYS if k != "detection_threshold" and k in used and used[k] != reference.get(k)
    ]
    if used["detection_threshold"] != float(reference["detection_threshold"]):
        verdict_changed.insert(0, f"threshold {used['detection_threshold']:g}")
    if verdict_changed:
        label += f" ({', '.join(verdict_changed)})"
    return label


def own_flags(records: list[dict]) -> str:
    """How many the method's own statistic flags (with the run's detection_threshold)."""
    flags = [r.get("inversion_statistic_detected") for r in records]
    return "–" if any(f is None for f in flags) else fraction(flags)


def own_scores(records: list[dict]) -> str:
    return scores([r.get("inversion_statistic", r.get("detection_score")) for r in records])


def transfers(records: list[dict]) -> str:
    return scores3([r.get("inversion_transfer") for r in records])


def fraction(flags: list) -> str:
    return f"{sum(bool(f) for f in flags)}/{len(flags)}"


def scores(values: list) -> str:
    return ", ".join(f"{v:.4f}" if v is not None else "–" for v in values)


def scores3(values: list) -> str:
    return ", ".join(f"{v:.3f}" if v is not None else "–" for v in values)


def budgets(records: list[dict]) -> str:
    """The pixel budget of the candidate each run kept (BTI-DBF's ladder; "–" for single-candidate methods)."""
    kept = [(r.get("inversion_details") or {}).get("norm_bound") for r in records]
    return "–" if all(b is None for b in kept) else ", ".join("–" if b is None else f"{b:g}" for b in kept)


def targets(records: list[dict]) -> str:
    estimated = [r.get("target_class_estimated") for r in records]
    if all(t is None for t in estimated):
        return "–"
    right = sum(t == r["target_class"] for t, r in zip(estimated, records, strict=True))
    return f"{', '.join(str(t) for t in estimated)} ({right}/{len(records)} right)"


def verdict(records: list[dict]) -> str:
    asr = statistics.mean(r["asr"] for r in records)
    skipped = sum(bool(r.get("defense_skipped")) for r in records)
    text = "removed" if asr < REMOVED else "not removed"
    return f"{text}" + (f"; TBAR skipped in {skipped}/{len(records)}" if skipped else "")


def grouped(sweeps: list[Path]) -> dict[tuple, list]:
    """The ok records of ``sweeps`` by (attack, inversion label)."""
    groups: dict[tuple, list] = defaultdict(list)
    for sweep in sweeps:
        for record, _, run_dir in load_runs(sweep):
            if record.get("status") == "ok":
                groups[(record["attack"], method(record, run_dir))].append(record)
    return groups


def summary_table(groups: dict[tuple, list]) -> list[str]:
    """Per (attack, inversion): how many models each verdict flags, how many of those with the right target."""
    lines = [
        "| attack | inversion | seeds | flagged by the own statistic | flagged (default verdict) | right target (of those flagged) | transfer (min–max) | pixel budget kept (of those flagged) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for (attack, label), records in sorted(groups.items(), key=lambda item: (item[0][1], item[0][0])):
        records = sorted(records, key=lambda r: r["seed"])
        flagged = [r for r in records if r["detected"]]
        right = "–" if attack == "none" else f"{sum(r['target_class_estimated'] == r['target_class'] for r in flagged)}/{len(flagged)}"
        values = [r["inversion_transfer"] for r in records if r.get("inversion_transfer") is not None]
        spread = f"{min(values):.3f}–{max(values):.3f}" if values else "–"
        kept = [(r.get("inversion_details") or {}).get("norm_bound") for r in flagged]
        tally = ", ".join(f"{b:g}: {kept.count(b)}" for b in sorted({b for b in kept if b is not None})) or "–"
        lines.append(
            f"| `{attack}` | {label} | {seed_list(records)} | {own_flags(records)} | {fraction([r['detected'] for r in records])} | "
            f"{right} | {spread} | {tally} |"
        )
    return lines


def seed_list(records: list[dict]) -> str:
    """Seeds in order, three or more consecutive ones as a range (10-24)."""
    runs: list[list[int]] = []
    for seed in sorted(r["seed"] for r in records):
        if runs and seed == runs[-1][-1] + 1:
            runs[-1].append(seed)
        else:
            runs.append([seed])
    return ",".join(f"{run[0]}-{run[-1]}" if len(run) >= 3 else ",".join(map(str, run)) for run in runs)


def write(
    sweeps: list[Path], calibration: list[Path], out: Path, notes: list[str] = (), previews: Path | None = None,
    replication: list[Path] = (), replication_notes: list[str] = (),
) -> None:
    runs = [(r, d) for sweep in sweeps for r, _, d in load_runs(sweep)]
    ok = [(r, d) for r, d in runs if r.get("status") == "ok"]
    failed = [(r, d) for r, d in runs if r.get("status") != "ok"]
    attacked: dict[tuple, list] = defaultdict(list)
    clean: dict[str, list] = defaultdict(list)
    for record, run_dir in ok:
        if record["attack"] == "none":
            clean[method(record, run_dir)].append(record)
        else:
            attacked[(record["attack"], method(record, run_dir))].append(record)
    order = {"known trigger": 0, "DECREE": 1, "BTI-DBF": 2}
    keys = sorted(attacked, key=lambda k: (["badnets", "blended", "wanet"].index(k[0]) if k[0] in ("badnets", "blended", "wanet") else 9, order.get(k[1], 3), k[1]))
    everything = [d for _, d in runs] + [d for sweep in [*calibration, *replication] for _, _, d in load_runs(sweep)]
    stamp = max((d / "result.json").stat().st_mtime for d in everything) if everything else None
    lines = [
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
        f"- last run finished: {dt.datetime.fromtimestamp(stamp, dt.timezone.utc):%Y-%m-%d %H:%M} UTC" if stamp else "- no runs",
        f"- hardware: {hardware()}",
        *[f"- {note}" for note in notes],
        "- data and model: the embedded default (tiny CLIP pretrained here, scikit-learn digits at 16×16); "
        "`finetune.*`, `defense.*` and `inversion.*` at their defaults unless the command says otherwise; target class 0",
        f"- the methods' own statistics and thresholds: DECREE PL1-norm < {default_threshold('decree'):g}; BTI-DBF flip rate ≥ "
        f"{default_threshold('bti_dbf'):g}. The reference check: transfer = (flip rate of the inverted trigger towards the "
        "estimated target on θ_pre) / (the same on θ_b), specific to θ_b when < "
        f"{defaults('decree')['reference_threshold']:g}. Verdict (`detection`): DECREE `{defaults('decree')['detection']}`, "
        f"BTI-DBF `{defaults('bti_dbf')['detection']}` (how they were chosen: README, \"Unknown attacks\"). When nothing "
        "is detected TBAR is skipped and θ_b is returned as it is.",
        "- test CA / ASR / RA are always measured with the **real** trigger and target; under `attack_knowledge=unknown` "
        "TBAR's triggered set, its validation ASR (α choice) and its target come from the inversion only.",
        "- values: mean ± std over seeds; per-seed lists in seed order",
        "",
        "## Backdoored models",
        "",
        "| attack | TBAR's trigger | seeds | detected | transfer | own statistic (flagged by it) | pixel budget kept | estimated target | CA θ_b | ASR θ_b | CA | ASR (per seed) | RA | α | backdoor |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for key in keys:
        records = sorted(attacked[key], key=lambda r: r["seed"])
        known = key[1] == "known trigger"
        lines.append(
            f"| `{key[0]}` | {key[1]} | {','.join(str(r['seed']) for r in records)} | "
            f"{'–' if known else fraction([r['detected'] for r in records])} | "
            f"{'–' if known else transfers(records)} | "
            f"{'–' if known else own_scores(records) + ' (' + own_flags(records) + ')'} | "
            f"{'–' if known else budgets(records)} | "
            f"{'(known: ' + str(records[0]['target_class']) + ')' if known else targets(records)} | "
            + " | ".join(mean_std([r[k] for r in records]) for k in ("clean_acc_backdoored", "asr_backdoored", "clean_acc"))
            + f" | {mean_std([r['asr'] for r in records])} ({scores3([r['asr'] for r in records])}) | "
            + " | ".join(mean_std([r[k] for r in records]) for k in ("robust_acc", "alpha"))
            + f" | {verdict(records)} |"
        )
    lines += [
        "",
        "## Clean models (`attack=none`): must not be flagged",
        "",
        "| inversion | seeds | flagged backdoored | transfer | own statistic (flagged by it) | pixel budget kept | estimated target | CA θ (clean fine-tune) | CA after defense | TBAR skipped |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, records in sorted(clean.items(), key=lambda item: order.get(item[0], 3)):
        records = sorted(records, key=lambda r: r["seed"])
        lines.append(
            f"| {name} | {','.join(str(r['seed']) for r in records)} | {fraction([r['detected'] for r in records])} | "
            f"{transfers(records)} | {own_scores(records)} ({own_flags(records)}) | {budgets(records)} | "
            f"{', '.join(str(r['target_class_estimated']) for r in records)} | "
            f"{mean_std([r['clean_acc_backdoored'] for r in records])} | {mean_std([r['clean_acc'] for r in records])} | "
            f"{fraction([r.get('defense_skipped') for r in records])} |"
        )
    if calibration:
        development = grouped(calibration)
        lines += [
            "",
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
                    f"{'–' if attack == 'none' else record['target_class_estimated'] == record['target_class']} |"
                )
    if replication:
        lines += [
            "",
            "## Replication on models no table above has seen (not used to choose anything)",
            "",
            *[f"- {note}" for note in replication_notes],
            *[f"- `{sweep_command(s)}`" for s in replication],
            "",
            *summary_table(grouped(replication)),
        ]
    if previews is not None:
        previews.mkdir(parents=True, exist_ok=True)
        lines += ["", "Inverted triggers, seed 0 (rows: pool images, with the inverted trigger, |difference| stretched):", ""]
        for record, run_dir in ok:
            source = run_dir / "inverted_trigger.png"
            label = method(record, run_dir)
            if record["seed"] != 0 or not source.is_file() or "(" in label:  # defaults only
                continue
            target = previews / f"inverted_{record['inversion']}_{record['attack']}.png"
            write_bytes_atomic(target, source.read_bytes())
            lines.append(f"- {label}, `{record['attack']}` (estimated target {record['target_class_estimated']}): "
                         f"![{record['inversion']} {record['attack']}]({os.path.relpath(target, out.parent)})")
    if failed:
        lines += ["", "Runs that failed:", ""]
        lines += [f"- {d}: {r.get('attack')} seed {r.get('seed')}: {r.get('error')}" for r, d in failed]
    write_text_atomic(out, "\n".join(lines) + "\n")
    print(f"wrote {out} ({len(ok)} runs, {len(failed)} failed)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweeps", nargs="+", type=Path, help="hydra.sweep.dir of each sweep")
    parser.add_argument("--calibration", nargs="*", type=Path, default=[], help="sweeps of the calibration / development models")
    parser.add_argument("--out", type=Path, default=Path("results/unknown_attack.md"))
    parser.add_argument("--previews", type=Path, default=None, help="copy seed 0's inverted_trigger.png here")
    parser.add_argument("--note", action="append", default=[], help="a line for the header (e.g. the commit that ran)")
    parser.add_argument("--replication", nargs="*", type=Path, default=[], help="sweeps of models nothing was chosen on (e.g. another machine's)")
    parser.add_argument("--replication-note", action="append", default=[], help="a line for the replication section (where and how it ran)")
    args = parser.parse_args()
    write(args.sweeps, args.calibration, args.out, args.note, args.previews, args.replication, args.replication_note)


if __name__ == "__main__":
    main()
