"""``results/pretrain.md`` (``scripts/pretrain.py``): θ_pre of each rung of the scale ladder. A *row* is what the
script found for one model: its architecture, parameters, corpus, recipe, pretraining seconds and zero-shot CA.
"""

from __future__ import annotations

import datetime as dt


def report(rows: list[dict], command: str, hardware: str) -> str:
    lines = [
        "# θ_pre of the scale ladder",
        "",
        f"Produced by `{command}` on {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC; this machine: {hardware}.",
        "Pretraining seconds are those of the run that built the checkpoint (the cache keeps them; on a machine shared with",
        "other jobs they are longer than the recipe needs; a pretraining killed and resumed shows the step it resumed from, and",
        "its seconds add up the sittings whose resumable state kept their time); zero-shot CA is",
        "θ_pre's on the test split, through the zero-shot head of its own text tower.",
        "",
        "| model | architecture (image tower) | image-tower params | all params | corpus | pairs | steps × batch | pretraining s | zero-shot CA | controls |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        v = r["vision"]
        arch = f"{v['image_size']} px, patch {v['patch_size']}, width {v['width']}, {v['layers']} layers"
        seconds = f"{r['seconds']:.0f}" if r["seconds"] is not None else "–"
        if r["resumed_from_step"]:
            seconds += f" (resumed from step {r['resumed_from_step']})"
        controls = ", ".join(f"{k.removeprefix('control_acc_')} {v:.3f}" for k, v in r["controls"].items() if k != "control_acc") or "–"
        lines.append(
            f"| `{r['model']}` ({r['name']}) | {arch} | {r['visual_params']:,} | {r['params']:,} | {', '.join(r['corpus']) or 'published'} "
            f"| {r['corpus_size'] or '–'} | {r['steps']} × {r['batch_size']} | {seconds} | {r['zero_shot_ca']:.3f} ({r['dataset']}) | {controls} |"
        )
    return "\n".join(lines) + "\n"
