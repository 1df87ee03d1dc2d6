"""Tables from run records: "mean ± std" cells, wide pivots, and their Markdown and LaTeX (booktabs) text."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence

import pandas as pd

LABELS = {
    "clean_acc": "CA", "asr": "ASR", "robust_acc": "RA", "clean_acc_retained": "CA kept",
    "clean_acc_backdoored": "CA θ_b", "asr_backdoored": "ASR θ_b", "clean_acc_pretrained": "CA θ_pre",
    "defense_samples": "samples", "defense_seconds": "seconds", "alpha": "α",
}  # fmt: skip

# Rows in the order a reader expects (the reference first, then TBAR, then the baselines); others after, sorted.
ORDER = {
    "defense": ("none", "tbar", "finetune", "ft_sam", "cleanclip", "par"),
    "attack": ("none", "badnets", "blended", "wanet", "sig", "badclip"),
}


def ordered(values: Iterable[str], kind: str) -> list[str]:
    """``values`` (deduplicated) in ``ORDER[kind]``'s order, the ones it does not name after them, sorted."""
    present = set(values)
    order = ORDER[kind]
    return [v for v in order if v in present] + sorted(present - set(order))


def rank(kind: str) -> dict[str, int]:
    """Position of each name in ``ORDER[kind]`` (for sort keys)."""
    return {name: i for i, name in enumerate(ORDER[kind])}


def _order_key(index: pd.Index) -> pd.Index:
    order = ORDER.get(index.name)
    if order is None:
        return index
    return index.map(lambda v: f"{order.index(v):03d}" if v in order else f"999{v}")


def mean_std(mean: float, std: float, count: int, digits: int = 3) -> str:
    """The cell of a mean over seeds: "m ± s", just "m" for one seed, "–" for none."""
    if count == 0 or pd.isna(mean):
        return "–"
    if count == 1 or pd.isna(std):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def cell(values: pd.Series, digits: int = 3) -> str:
    """``mean_std`` of a column's numeric values (others dropped), with pandas' mean and sample std."""
    values = pd.to_numeric(values, errors="coerce").dropna()
    return mean_std(values.mean(), values.std(), len(values), digits) if len(values) else "–"


def values_cell(values: Iterable, digits: int = 3) -> str:
    """``mean_std`` of plain record values (None left out), with the statistics module's mean and stdev.

    Kept apart from ``cell`` because the two sums can differ in the last bit, and the tables made with each
    must not change.
    """
    present = [v for v in values if v is not None]
    if len(present) < 2:
        return mean_std(present[0], float("nan"), 1, digits) if present else "–"
    return mean_std(statistics.mean(present), statistics.stdev(present), len(present), digits)


def pivot(long: pd.DataFrame, rows: Sequence[str], cols: Sequence[str], metrics: Sequence[str], digits: int = 3) -> pd.DataFrame:
    """Wide table from ``records.aggregate``'s long form: one row per ``rows`` group; a "mean ± std" column per
    (``cols`` value..., metric)."""
    long = long.assign(cell=[mean_std(m, s, int(n), digits) for m, s, n in zip(long["mean"], long["std"], long["count"])])
    long["metric"] = pd.Categorical(long["metric"], categories=list(metrics), ordered=True)
    wide = long.pivot_table(index=list(rows), columns=[*cols, "metric"], values="cell", aggfunc="first", observed=True)
    wide = wide.sort_index(key=_order_key)
    return wide.sort_index(axis=1, level=list(range(len(cols))), sort_remaining=False) if cols else wide


def _header(column) -> str:
    parts = column if isinstance(column, tuple) else (column,)
    return " ".join(LABELS.get(str(p), str(p)) for p in parts)


def to_markdown(wide: pd.DataFrame) -> str:
    names = [str(n) for n in wide.index.names]
    head = [*names, *(_header(c) for c in wide.columns)]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for index, row in wide.iterrows():
        keys = index if isinstance(index, tuple) else (index,)
        cells = [str(k) for k in keys] + [str(v) if isinstance(v, str) else "–" for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _tex(text: str) -> str:
    text = str(text).replace("±", "$\\pm$").replace("θ_b", "$\\theta_b$").replace("θ_pre", "$\\theta_{pre}$").replace("α", "$\\alpha$")
    return text.replace("_", "\\_").replace("%", "\\%").replace("–", "--")


def to_latex(wide: pd.DataFrame) -> str:
    """A booktabs table: one header row per column level (e.g. dataset over CA / ASR)."""
    names = [str(n) for n in wide.index.names]
    levels = wide.columns.nlevels
    lines = ["\\begin{tabular}{" + "l" * len(names) + "c" * len(wide.columns) + "}", "\\toprule"]
    for level in range(levels):
        values = [c[level] if isinstance(c, tuple) else c for c in wide.columns]
        cells, start = [], 0
        while start < len(values):
            end = start
            while end + 1 < len(values) and values[end + 1] == values[start] and level < levels - 1:
                end += 1
            label = _tex(LABELS.get(str(values[start]), str(values[start])))
            span = end - start + 1
            cells.append(f"\\multicolumn{{{span}}}{{c}}{{{label}}}" if span > 1 else label)
            start = end + 1
        lead = [_tex(n) for n in names] if level == levels - 1 else [""] * len(names)
        lines.append(" & ".join(lead + cells) + " \\\\")
    lines.append("\\midrule")
    for index, row in wide.iterrows():
        keys = index if isinstance(index, tuple) else (index,)
        lines.append(" & ".join([_tex(k) for k in keys] + [_tex(v if isinstance(v, str) else "–") for v in row]) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}"]
    return "\n".join(lines) + "\n"
