"""``results/default_run.md`` and the measured block of README and docs/quickstart.md: the embedded default run, cold and warm cache."""

from __future__ import annotations

import datetime
import re

MARK = "<!-- measured: default-run -->"
END_MARK = MARK.replace("-->", "end -->")


def summary_block(table: str, record: dict, *, cold: float, warm: float, run_root: str, hardware: str) -> str:
    """The printed before/after ``table`` (``run_root`` shown as outputs/...), wall times and headline numbers."""
    return "\n".join([
        "```text",
        "$ bdunlearn",
        table.replace(run_root, "outputs/..."),
        "```",
        "",
        f"Cold (empty cache): {cold:.0f} s; warm (θ_pre and θ_b cached): {warm:.0f} s. "
        f"Fine-tuning adds {100 * (record['clean_acc_backdoored'] - record['clean_acc_pretrained']):.1f} points of clean "
        f"accuracy over zero-shot θ_pre ({record['clean_acc_pretrained']:.3f} → {record['clean_acc_backdoored']:.3f}). "
        f"TBAR chose α = {record['alpha']:g} on the validation split: test ASR {record['asr_backdoored']:.3f} → "
        f"{record['asr']:.3f}, CA retained {record['clean_acc_retained']:.3f}; cosine(τ_t, θ_b − θ_pre) = "
        f"{record['cosine_trigger_attack']:.3f}." + asr_target_sentence(record),
        f"Measured {datetime.date.today()} on {hardware} by `python scripts/measure_default.py`.",
    ])  # fmt: skip


def asr_target_sentence(record: dict) -> str:
    """TBAR's other operating point (the smallest α reaching the ASR target on validation), where recorded."""
    if record.get("alpha_asr_target") is None or record.get("alpha_rule") == "asr_target":
        return ""
    reached = "" if record.get("asr_target_reached_on_val", True) else " (no α reached the target on validation)"
    return (
        f" By the ASR-target rule instead (the smallest α with validation ASR ≤ {record['asr_target']:g}{reached}): α = "
        f"{record['alpha_asr_target']:g}, test ASR {record['asr_asr_target']:.3f}, CA retained "
        f"{record['clean_acc_retained_asr_target']:.3f}."
    )


def report(block: str, record: dict) -> str:
    """The whole of ``default_run.md``: the block and TBAR's validation curve."""
    curve = "\n".join(f"| {p['alpha']:g} | {p['val_clean_acc']:.3f} | {p['val_asr']:.3f} |" for p in record["alpha_curve"])
    return (
        "# The default run (`bdunlearn`, no overrides)\n\n" + block + "\n\n## TBAR's validation curve\n\n"
        "| alpha | val CA | val ASR |\n| --- | --- | --- |\n" + curve + "\n"
    )


def with_block(readme: str, block: str) -> str:
    """``readme`` with ``block`` between the measured markers (replacing what was there, or after a lone ``MARK``)."""
    pattern = re.compile(re.escape(MARK) + r".*?" + re.escape(END_MARK), re.S)
    replacement = f"{MARK}\n{block}\n{END_MARK}"
    if pattern.search(readme):
        return pattern.sub(lambda _: replacement, readme)
    return readme.replace(MARK, replacement, 1)
