"""Cells of the trigger-inversion tables: what each inversion flagged, its statistics, the target it estimated."""

from __future__ import annotations

from bdunlearn.reports import criteria


def fraction(flags: list) -> str:
    """"k/n": how many of the flags are set."""
    return f"{sum(bool(f) for f in flags)}/{len(flags)}"


def scores(values: list) -> str:
    return ", ".join(f"{v:.4f}" if v is not None else "–" for v in values)


def scores3(values: list) -> str:
    return ", ".join(f"{v:.3f}" if v is not None else "–" for v in values)


def own_flags(records: list[dict]) -> str:
    """How many the method's own statistic flags (with the run's detection_threshold)."""
    flags = [r.get("inversion_statistic_detected") for r in records]
    return "–" if any(f is None for f in flags) else fraction(flags)


def own_scores(records: list[dict]) -> str:
    return scores([r.get("inversion_statistic", r.get("detection_score")) for r in records])


def transfers(records: list[dict]) -> str:
    return scores3([r.get("inversion_transfer") for r in records])


def budgets(records: list[dict]) -> str:
    """The pixel budget of the candidate each run kept (BTI-DBF's ladder; "–" for single-candidate methods)."""
    kept = [(r.get("inversion_details") or {}).get("norm_bound") for r in records]
    return "–" if all(b is None for b in kept) else ", ".join("–" if b is None else f"{b:g}" for b in kept)


def targets(records: list[dict]) -> str:
    """The estimated targets in seed order, and how many are the real one."""
    estimated = [r.get("target_class_estimated") for r in records]
    if all(t is None for t in estimated):
        return "–"
    right = sum(criteria.right_target(r) for r in records)
    return f"{', '.join(str(t) for t in estimated)} ({right}/{len(records)} right)"


def seed_list(records: list[dict]) -> str:
    """Seeds in order, three or more consecutive ones as a range (10-24)."""
    runs: list[list[int]] = []
    for seed in sorted(r["seed"] for r in records):
        if runs and seed == runs[-1][-1] + 1:
            runs[-1].append(seed)
        else:
            runs.append([seed])
    return ",".join(f"{run[0]}-{run[-1]}" if len(run) >= 3 else ",".join(map(str, run)) for run in runs)


def summary_table(groups: dict[tuple, list]) -> list[str]:
    """Per (attack, inversion): how many models each verdict flags, how many of those with the right target."""
    lines = [
        "| attack | inversion | seeds | flagged by the own statistic | flagged (default verdict) | right target (of those flagged) | transfer (min–max) | pixel budget kept (of those flagged) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for (attack, label), records in sorted(groups.items(), key=lambda item: (item[0][1], item[0][0])):
        records = sorted(records, key=lambda r: r["seed"])
        flagged = [r for r in records if r["detected"]]
        right = "–" if attack == "none" else f"{sum(criteria.right_target(r) for r in flagged)}/{len(flagged)}"
        values = [r["inversion_transfer"] for r in records if r.get("inversion_transfer") is not None]
        spread = f"{min(values):.3f}–{max(values):.3f}" if values else "–"
        kept = [(r.get("inversion_details") or {}).get("norm_bound") for r in flagged]
        tally = ", ".join(f"{b:g}: {kept.count(b)}" for b in sorted({b for b in kept if b is not None})) or "–"
        lines.append(
            f"| `{attack}` | {label} | {seed_list(records)} | {own_flags(records)} | {fraction([r['detected'] for r in records])} | "
            f"{right} | {spread} | {tally} |"
        )
    return lines
