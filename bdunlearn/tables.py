"""Run records → pandas → tables (mean ± std over seeds) in CSV, Markdown and LaTeX.

Each record is one ``result.json``; its run's resolved config (``.hydra/config.yaml`` beside it) is joined
as ``cfg.<dotted key>`` columns, so tables can group by any setting (e.g. ``cfg.defense.num_samples``).
"""

from __future__ import annotations

import glob
import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

from bdunlearn.errors import UserError

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


def _order_key(index: pd.Index) -> pd.Index:
    order = ORDER.get(index.name)
    if order is None:
        return index
    return index.map(lambda v: f"{order.index(v):03d}" if v in order else f"999{v}")


def record_paths(sources: Iterable[str]) -> list[Path]:
    """Every ``result.json`` under each source: a run dir, a sweep dir, a glob of either, or a record file."""
    found: list[Path] = []
    for source in sources:
        matches = [Path(m) for m in sorted(glob.glob(source))] or [Path(source)]
        for match in matches:
            if match.is_file() and match.name == "result.json":
                found.append(match)
            elif match.is_dir():
                found.extend(sorted(match.rglob("result.json")))
    unique = list(dict.fromkeys(p.resolve() for p in found))
    if not unique:
        raise UserError(f"no result.json under {', '.join(sources)}; give run or sweep directories")
    return unique


def _flatten(node, prefix: str) -> dict:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            out.update(_flatten(value, f"{prefix}.{key}"))
        return out
    return {prefix: node if not isinstance(node, list) else json.dumps(node)}


def load_records(sources: Iterable[str], *, only_ok: bool = True) -> pd.DataFrame:
    """One row per run record (``status`` ok only, unless told otherwise), with ``run_dir`` and ``cfg.*``."""
    rows = []
    for path in record_paths(sources):
        record = json.loads(path.read_text())
        if only_ok and record.get("status") != "ok":
            continue
        row = {k: (json.dumps(v) if isinstance(v, (list, dict)) else v) for k, v in record.items()}
        row["run_dir"] = str(path.parent)
        config = path.parent / ".hydra" / "config.yaml"
        if config.is_file():
            row.update(_flatten(OmegaConf.to_container(OmegaConf.load(config), resolve=False), "cfg"))
        rows.append(row)
    return pd.DataFrame(rows)


def aggregate(frame: pd.DataFrame, by: Sequence[str], metrics: Sequence[str]) -> pd.DataFrame:
    """Mean, std (sample, ddof=1; NaN for one seed) and count of each metric per group, in long form."""
    missing = [c for c in [*by, *metrics] if c not in frame.columns]
    if missing:
        raise UserError(f"no column {missing[0]!r} in the records; columns: {', '.join(sorted(map(str, frame.columns)))}")
    parts = []
    for metric in metrics:
        values = pd.to_numeric(frame[metric], errors="coerce")
        stats = values.groupby([frame[c] for c in by], sort=True, dropna=False).agg(["mean", "std", "count"])
        stats["metric"] = metric
        parts.append(stats.reset_index())
    return pd.concat(parts, ignore_index=True)


def mean_std(mean: float, std: float, count: int, digits: int = 3) -> str:
    if count == 0 or pd.isna(mean):
        return "–"
    if count == 1 or pd.isna(std):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def pivot(long: pd.DataFrame, rows: Sequence[str], cols: Sequence[str], metrics: Sequence[str], digits: int = 3) -> pd.DataFrame:
    """Wide table: one row per ``rows`` group; a "mean ± std" column per (``cols`` value..., metric)."""
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


def sweep_command(sweep_dir: str | Path) -> str:
    """The command line that produced a sweep, rebuilt from Hydra's ``multirun.yaml``."""
    overrides = OmegaConf.load(Path(sweep_dir) / "multirun.yaml").hydra.overrides
    hydra = [o for o in overrides.hydra if not o.startswith("hydra.mode=")]
    return " ".join(["bdunlearn", "-m", *overrides.task, *hydra])
