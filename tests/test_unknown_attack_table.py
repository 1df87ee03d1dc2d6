"""The unknown-attack report (``bdunlearn.reports.studies.unknown_attack``, behind scripts/unknown_attack_table.py)
on run directories laid out as a Hydra sweep writes them; and every script imports."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from omegaconf import OmegaConf

from bdunlearn.config.keys import INVERSION_VERDICT_KEYS
from bdunlearn.inversion import REGISTRY
from bdunlearn.inversion.bti_dbf import BtiDbfConfig
from bdunlearn.reports.studies import unknown_attack

REPO = Path(__file__).resolve().parents[1]
INVERSIONS = unknown_attack.InversionDefaults.of({name: module.Config for name, module in REGISTRY.items()}, INVERSION_VERDICT_KEYS)


def _sweep(root: Path, overrides: list[str], runs: list[dict]) -> Path:
    root.mkdir(parents=True)
    OmegaConf.save(OmegaConf.create({"hydra": {"overrides": {"task": overrides, "hydra": []}}}), root / "multirun.yaml")
    for number, (record, inversion) in enumerate(runs):
        run_dir = root / str(number)
        (run_dir / ".hydra").mkdir(parents=True)
        config = {"attack": {"name": record["attack"]}, "inversion": inversion}
        OmegaConf.save(OmegaConf.create(config), run_dir / ".hydra" / "config.yaml")
        (run_dir / "result.json").write_text(json.dumps(record))
    return root


def _record(attack: str, seed: int, inversion: str | None, asr: float, **extra) -> dict:
    record = {
        "status": "ok", "attack": attack, "seed": seed, "target_class": 0, "clean_acc_backdoored": 0.95,
        "asr_backdoored": None if attack == "none" else 0.99, "clean_acc": 0.9, "asr": asr, "robust_acc": 0.5, "alpha": 0.5,
        "attack_knowledge": "known" if inversion is None else "unknown",
    }  # fmt: skip
    if inversion is not None:
        record.update({
            "inversion": inversion, "detected": True, "detection_score": 0.1, "target_class_estimated": 0, "defense_skipped": False,
            "detection": "both", "inversion_statistic": 0.99, "inversion_statistic_detected": True, "inversion_transfer": 0.1,
        })  # fmt: skip
    return {**record, **extra}


def test_rows_name_the_changed_inversion_settings_and_the_right_target_share(tmp_path):
    bti = asdict(BtiDbfConfig())
    forced = {**bti, "detection_threshold": 0.001, "detection": "statistic"}
    ablation = {**bti, "pool_colours": False}
    known = _sweep(tmp_path / "known", ["attack=badnets", "seed=0,1"], [(_record("badnets", s, None, 0.3 + s / 10), None) for s in (0, 1)])
    inverted = _sweep(
        tmp_path / "bti", ["inversion=bti_dbf"],
        [
            (_record("badnets", 0, "bti_dbf", 0.05, inversion_details={"norm_bound": 0.02}), bti),
            (_record("badnets", 1, "bti_dbf", 0.15, target_class_estimated=5, inversion_details={"norm_bound": 0.04}), bti),
            (_record("badnets", 0, "bti_dbf", 0.02), forced),
            (_record("none", 0, "bti_dbf", None, detected=False, defense_skipped=True, inversion_statistic=0.2,
                     inversion_statistic_detected=False, inversion_transfer=0.75), bti),
        ],
    )  # fmt: skip
    development = _sweep(tmp_path / "dev", ["seed=2"], [(_record("blended", 2, "bti_dbf", 0.9, target_class_estimated=3), ablation)])
    out = tmp_path / "unknown_attack.md"
    unknown_attack.write([known, inverted], [development], out, INVERSIONS, "a test machine")
    text = out.read_text()
    assert "`bdunlearn -m attack=badnets seed=0,1`" in text and "`bdunlearn -m inversion=bti_dbf`" in text
    assert "- hardware: a test machine" in text and "DECREE PL1-norm < 0.022; BTI-DBF flip rate ≥ 0.9." in text
    rows = {line.split(" | ")[1]: line for line in text.splitlines() if line.startswith("| `badnets`")}
    assert set(rows) == {"known trigger", "BTI-DBF", "BTI-DBF (threshold 0.001, detection=statistic)"}
    assert "0, 5 (1/2 right)" in rows["BTI-DBF"] and "(0.050, 0.150)" in rows["BTI-DBF"]
    assert "| 0.02, 0.04 | 0, 5 (1/2 right) |" in rows["BTI-DBF"]  # the pixel budget each run kept, per seed
    assert "0.350 ± 0.071" in rows["known trigger"]
    clean = [line for line in text.splitlines() if line.startswith("| BTI-DBF | 0 |")]
    assert len(clean) == 1 and "| 0/1 | 0.750 | 0.2000 (0/1) | – |" in clean[0]
    development_rows = [line for line in text.splitlines() if line.startswith("| `blended` | BTI-DBF (pool_colours=false) | 2 | 0.100 |")]
    assert len(development_rows) == 1 and development_rows[0].endswith("| 0.9900 | True | True | – | 3 | False |")
    summary = [line for line in text.splitlines() if line.startswith("| `blended` | BTI-DBF (pool_colours=false) | 2 | 1/1 |")]
    assert len(summary) == 1 and "| 1/1 | 0/1 | 0.100–0.100 |" in summary[0]  # flagged, but towards the wrong target


def test_replication_sweeps_get_a_summary_with_seed_ranges_and_the_budgets_kept(tmp_path):
    bti = asdict(BtiDbfConfig())
    runs = [
        (_record("wanet", seed, "bti_dbf", 0.9, detected=seed != 13, inversion_details={"norm_bound": 0.04 if seed < 12 else 0.01}), bti)
        for seed in (10, 11, 12, 13, 15)
    ]
    replication = _sweep(tmp_path / "gpu", ["seed=10,11,12,13,15", "device=cuda"], runs)
    known = _sweep(tmp_path / "known", ["seed=0"], [(_record("wanet", 0, None, 0.3), None)])
    out = tmp_path / "unknown_attack.md"
    unknown_attack.write([known], [], out, INVERSIONS, "a test machine", replication=[replication], replication_notes=["on a GPU"])
    text = out.read_text()
    section = text[text.index("## Replication"):]
    assert "- on a GPU" in section and "`bdunlearn -m seed=10,11,12,13,15 device=cuda`" in section
    rows = [line for line in section.splitlines() if line.startswith("| `wanet` | BTI-DBF |")]
    assert rows == ["| `wanet` | BTI-DBF | 10-13,15 | 5/5 | 4/5 | 4/4 | 0.100–0.100 | 0.01: 2, 0.04: 2 |"]


def test_every_script_imports(monkeypatch):
    """A renamed helper must not leave a script broken until someone runs it (as happened to two scripts)."""
    import importlib.util

    monkeypatch.syspath_prepend(str(REPO / "scripts"))
    for path in sorted((REPO / "scripts").glob("*.py")):
        spec = importlib.util.spec_from_file_location(f"script_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)  # runs the imports and definitions; main() only runs under __main__
