"""Write results/attacks.md from the run records of an attack sweep, and copy its trigger previews.

    bdunlearn -m attack=badnets,blended,wanet,sig,badclip defense=tbar seed=0,1 hydra.sweep.dir=/tmp/attacks-sweep
    python scripts/attack_table.py /tmp/attacks-sweep --out results/attacks.md --previews results/

Every number comes from a ``result.json``; the command is read back from the sweep's ``multirun.yaml``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import statistics
from collections import defaultdict
from pathlib import Path

from omegaconf import OmegaConf

from bdunlearn.atomic import write_bytes_atomic, write_text_atomic
from bdunlearn.tables import sweep_command

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe  # noqa: E402

ASR_GOAL = 0.9  # what a default attack must reach on the default data and model
REMOVED = 0.1  # a defended ASR below this counts as "backdoor removed"
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


def load_runs(sweep_dir: Path) -> list[tuple[dict, dict, Path]]:
    """(record, attack config section, run dir) of every finished run, in sweep order."""
    runs = []
    for path in sorted(sweep_dir.glob("*/result.json"), key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0):
        record = json.loads(path.read_text())
        attack = OmegaConf.to_container(OmegaConf.load(path.parent / ".hydra" / "config.yaml").attack, resolve=True)
        runs.append((record, attack, path.parent))
    return runs


def mean_std(values: list) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def settings(attack: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in attack.items() if k not in ("name", "target_class") and v is not None)


def verdict(asr_backdoored: list[float], asr_defended: list[float]) -> str:
    planted = statistics.mean(asr_backdoored) >= ASR_GOAL
    removed = statistics.mean(asr_defended) < REMOVED
    if not planted:
        return f"backdoor **not planted** (mean ASR θ_b < {ASR_GOAL})"
    return f"TBAR **removed** it (mean ASR < {REMOVED})" if removed else f"TBAR **did not remove** it (mean ASR ≥ {REMOVED})"


def write_table(sweep_dir: Path, out: Path, previews: Path | None) -> None:
    runs = load_runs(sweep_dir)
    ok = [(r, a, d) for r, a, d in runs if r.get("status") == "ok"]
    failed = [(r, d) for r, _, d in runs if r.get("status") != "ok"]
    by_attack: dict[str, list] = defaultdict(list)
    for record, attack, run_dir in ok:
        by_attack[record["attack"]].append((record, attack, run_dir))

    finished = max((d / "result.json").stat().st_mtime for _, _, d in runs) if runs else None
    lines = [
        "# Attacks on the default data and model, and TBAR's effect",
        "",
        "Produced by `scripts/attack_table.py` from the run records of one sweep; no number is edited by hand.",
        "",
        f"- command (as Hydra recorded it in `multirun.yaml`): `{sweep_command(sweep_dir)}`",
        f"- sweep finished: {dt.datetime.fromtimestamp(finished, dt.timezone.utc):%Y-%m-%d %H:%M} UTC" if finished else "- no runs",
        f"- hardware: {describe()}",
        "- data and model: the embedded default (tiny CLIP pretrained here, scikit-learn digits at 16×16), "
        "`finetune.*` and `defense.*` at their defaults; target class 0",
        f"- values: mean ± std over seeds; ASR goal for a planted backdoor: ≥ {ASR_GOAL}",
        "",
        "| attack | seeds | " + " | ".join(name for _, name in METRICS) + " | verdict |",
        "| --- | --- | " + " | ".join("---" for _ in METRICS) + " | --- |",
    ]
    for name, group in by_attack.items():
        records = [r for r, _, _ in group]
        cells = [mean_std([r[key] for r in records]) for key, _ in METRICS]
        seeds = ",".join(str(r["seed"]) for r in records)
        lines.append(
            f"| `{name}` | {seeds} | " + " | ".join(cells) + f" | {verdict([r['asr_backdoored'] for r in records], [r['asr'] for r in records])} |"
        )
    lines += ["", "Settings of each attack (its config section as run):", ""]
    for name, group in by_attack.items():
        cached = sum(bool(r.get("backdoored_from_cache")) for r, _, _ in group)
        reuse = f" (θ_b of {cached} of {len(group)} runs reused from the cache: same config, same code path)" if cached else ""
        lines.append(f"- `{name}`: {settings(group[0][1])}{reuse}")
    if failed:
        lines += ["", "Runs that failed:", ""]
        lines += [f"- {d.name}: {r.get('attack')} seed {r.get('seed')}: {r.get('error')}" for r, d in failed]
    if previews is not None:
        previews.mkdir(parents=True, exist_ok=True)
        lines += ["", "Trigger previews (first run of each attack; rows: clean, triggered, |difference| stretched to white):", ""]
        for name, group in by_attack.items():
            source = group[0][2] / "triggers.png"
            if source.is_file():
                target = previews / f"triggers_{name}.png"
                write_bytes_atomic(target, source.read_bytes())
                lines.append(f"![{name}]({os.path.relpath(target, out.parent)})")
    write_text_atomic(out, "\n".join(lines) + "\n")
    print(f"wrote {out} ({len(ok)} runs, {len(failed)} failed)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path, help="hydra.sweep.dir of the attack sweep")
    parser.add_argument("--out", type=Path, default=Path("results/attacks.md"))
    parser.add_argument("--previews", type=Path, default=None, help="copy each attack's triggers.png here as triggers_<attack>.png")
    args = parser.parse_args()
    write_table(args.sweep_dir, args.out, args.previews)


if __name__ == "__main__":
    main()
