"""``results/bti_dbf_objective.md`` (``scripts/bti_dbf_objective.py``): BTI-DBF's objective terms for the attack's
real trigger and for the generators it found. A *row* is one trigger of one model: ``attack``, ``seed``,
``trigger`` ("real" or "G"), ``budget``, ``target``, ``flip_rate`` and the objective's terms.
"""

from __future__ import annotations

import datetime as dt
import statistics


def report(rows: list[dict], command: str, norm_bounds: list[float], hardware: str) -> str:
    lines = [
        "# BTI-DBF's objective: the attack's real trigger against the generators it found",
        "",
        f"Produced by `{command}`; no number is edited by hand.",
        "",
        f"- when: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC; hardware: {hardware}",
        "- data and model: the embedded default (tiny CLIP, scikit-learn digits at 16×16), BTI-DBF at its defaults "
        f"(pixel budgets {', '.join(f'{b:g}' for b in norm_bounds)}); every number is measured on the defender's pool",
        "- columns: pixel MSE of the trigger's change; benign- and other-feature MSE as step 2 weighs them (relative to the "
        "clean benign features' mean square); G maximises the other-feature MSE while pixel MSE ≤ its budget and benign "
        "MSE ≤ `benign_bound`; flip rate towards the target (the real trigger: the attack's own target; G: its estimate)",
        "",
        "## Summary",
        "",
        "| attack | models | real trigger: pixel MSE | real trigger: other-feature MSE | best G (any budget): other-feature MSE | models where it beats the real trigger | best G that changes the pixels no more than the real trigger: other-feature MSE | models where it beats the real trigger |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    by_attack: dict[str, list[dict]] = {}
    for row in rows:
        by_attack.setdefault(row["attack"], []).append(row)
    for attack, group in by_attack.items():
        reals = [r for r in group if r["trigger"] == "real"]
        cells = []
        for within in (False, True):
            beaten, best = 0, []
            for real in reals:
                rivals = [
                    r["other_feature_mse"] for r in group
                    if r["trigger"] == "G" and r["seed"] == real["seed"] and (not within or r["pixel_mse"] <= real["pixel_mse"])
                ]  # fmt: skip
                if rivals:
                    best.append(max(rivals))
                    beaten += max(rivals) > real["other_feature_mse"]
            cells.append(f"{spread(best)}{f' ({len(best)} models have one)' if within else ''} | {beaten}/{len(reals)}")
        lines.append(
            f"| `{attack}` | {len(reals)} | {spread([r['pixel_mse'] for r in reals])} | {spread([r['other_feature_mse'] for r in reals])} | "
            f"{' | '.join(cells)} |"
        )
    lines += [
        "",
        "## Per model",
        "",
        "| attack | seed | trigger | pixel budget | pixel MSE | benign-feature MSE | other-feature MSE | target | flip rate |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        lines.append(
            f"| `{row['attack']}` | {row['seed']} | {row['trigger']} | {budget(row['budget'])} | "
            f"{row['pixel_mse']:.4f} | {row['benign_feature_mse']:.3f} | {row['other_feature_mse']:.3f} | {row['target']} | {row['flip_rate']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def budget(value: float | None) -> str:
    return "–" if value is None else f"{value:g}"


def spread(values: list[float]) -> str:
    """median (min–max)"""
    if not values:
        return "–"
    return f"{statistics.median(values):.3f} ({min(values):.3f}–{max(values):.3f})"
