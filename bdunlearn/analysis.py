"""Diagnostics of a run beyond the contract's metrics (config section ``analysis``), for studies of *why* a
defense works or fails:

- ``clean_reference``: θ_c, the attacker's recipe on the clean training split (``attack=none``, the same seed;
  cached like θ_b). Its CA is what the fine-tune reaches without the poison, and θ_b − θ_c is the poison's own
  direction in weight space, which a defense's vector can be compared with.
- ``disentanglement_grid``: the weight-disentanglement error ξ(α_c, α_t) (``bdunlearn.disentanglement``) of the
  clean task vector τ_c = θ_c − θ_pre and the poison vector τ_p = θ_b − θ_c on the grid, over
  ``disentanglement_samples`` test images: low ξ means the backdoor is a direction that can be added to or
  removed from the clean skill without disturbing it, the premise of TBAR. Needs ``clean_reference``. Where the
  defense estimates a vector of its own (TBAR's τ_t), ξ of τ_c and τ_t too (``disentanglement_trigger_vector.csv``,
  record keys ``xi_trigger_vector_*``): the map the paper plots.
"""

from __future__ import annotations

import csv
import io
import logging
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from bdunlearn import task_vectors
from bdunlearn.atomic import write_text_atomic
from bdunlearn.disentanglement import as_rows, disentanglement_grid
from bdunlearn.task_vectors import StateDict

log = logging.getLogger(__name__)


def vector_alignment(trigger_vector: StateDict | None, poison: StateDict, clean: StateDict) -> dict:
    """Cosines between the defense's vector, the poison's direction θ_b − θ_c and the clean task vector θ_c − θ_pre."""
    record = {"cosine_poison_clean": task_vectors.cosine(poison, clean), "poison_norm": task_vectors.norm(poison)}
    if trigger_vector is not None:
        shared = {k: poison[k] for k in trigger_vector if k in poison}
        record["cosine_trigger_poison"] = task_vectors.cosine(trigger_vector, shared)
    return record


def grid_summary(rows: list[dict], below: float) -> dict:
    at_one = next((r for r in rows if r["alpha_c"] == 1.0 and r["alpha_t"] == 1.0), None)
    return {
        "xi_at_one": at_one["xi"] if at_one else None,
        "xi_mean": sum(r["xi"] for r in rows) / len(rows),
        "xi_disentangled_area": sum(r["xi"] <= below for r in rows) / len(rows),
    }


def write_grid(rows: list[dict], path: Path) -> None:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows({k: f"{v:.6g}" for k, v in row.items()} for row in rows)
    write_text_atomic(path, out.getvalue())


@dataclass
class Context:
    """What the pipeline hands over once the defense has run."""

    cfg: object  # the RunConfig
    classifier: object  # ZeroShotClassifier whose weights may be swapped
    pretrained: StateDict
    backdoored: StateDict
    clean_model: StateDict  # theta_c
    test: object  # ImageSet
    attack: object  # the real attack (its trigger and target)
    image_size: int
    precision: object
    run_dir: Path
    trigger_vector: StateDict | None = None  # the defense's vector, where it has one (TBAR)


def clean_model_config(cfg):
    """The run's config with the attack replaced by ``attack=none``: what determines theta_c."""
    from bdunlearn.attacks.none import NoAttackConfig

    return replace(cfg, attack=NoAttackConfig(name="none", target_class=cfg.attack.target_class))


def analyse(context: Context) -> dict:
    """Record keys of the configured diagnostics (and ``disentanglement.csv`` in the run dir)."""
    cfg = context.cfg.analysis
    tower = [k for k, v in context.backdoored.items() if k.startswith("visual") and v.is_floating_point()]  # what the attacker trains
    clean = task_vectors.subtract({k: context.clean_model[k] for k in tower}, context.pretrained)
    poison = task_vectors.subtract({k: context.backdoored[k] for k in tower}, context.clean_model)
    record = vector_alignment(context.trigger_vector, poison, clean)
    if not cfg.disentanglement_grid:
        return record
    test = context.test
    count = min(cfg.disentanglement_samples, len(test))
    chosen = torch.randperm(len(test), generator=torch.Generator().manual_seed(0))[:count].to(test.labels.device)
    images = (test.images[chosen], test.labels[chosen])
    record.update(map_summary(context, clean, poison, images, "disentanglement.csv", ""))
    log.info("disentanglement: xi(1, 1) = %s, area with xi <= %g: %.2f", record["xi_at_one"], cfg.disentangled_below, record["xi_disentangled_area"])
    if context.trigger_vector is not None:
        # the map the paper plots: xi of the defense's own estimate tau_t against the clean vector
        trigger = {k: context.trigger_vector[k] if k in context.trigger_vector else torch.zeros_like(v) for k, v in poison.items()}
        record.update(map_summary(context, clean, trigger, images, "disentanglement_trigger_vector.csv", "trigger_vector_"))
        log.info("disentanglement of tau_t: xi(1, 1) = %s", record["xi_trigger_vector_at_one"])
    return record


def map_summary(context: Context, clean: StateDict, vector: StateDict, images: tuple, filename: str, prefix: str) -> dict:
    """xi of ``clean`` and ``vector`` on the configured grid: the CSV in the run dir, the summary as record keys
    (``xi_<prefix>at_one``, ..., and CA/ASR of theta_pre + both vectors at (1, 1))."""
    cfg = context.cfg.analysis
    clean_images, labels = images
    victims = clean_images[labels != context.attack.target_class]
    points = disentanglement_grid(
        context.classifier, context.pretrained, clean, vector, clean_images, labels, victims, context.attack,
        context.image_size, sorted(set(map(float, cfg.disentanglement_grid))), context.cfg.eval_batch_size,
        seed=context.cfg.seed, precision=context.precision,
    )  # fmt: skip
    rows = as_rows(points)
    write_grid(rows, context.run_dir / filename)
    summary = grid_summary(rows, cfg.disentangled_below)
    record = {f"xi_{prefix}{key[3:]}": value for key, value in summary.items()}
    at_one = next((r for r in rows if r["alpha_c"] == 1.0 and r["alpha_t"] == 1.0), None)
    if prefix and at_one:
        record[f"xi_{prefix}clean_acc_at_one"] = at_one["clean_acc"]
        record[f"xi_{prefix}asr_at_one"] = at_one["asr"]
    return record
