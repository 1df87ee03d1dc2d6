"""Interpolation towards theta_pre, a reference point for TBAR: theta = theta_b - alpha * (theta_b - theta_pre).

The attacker's whole task vector stands in for TBAR's trigger vector: alpha = 1 is theta_pre itself, alpha
between 0 and 1 walks back along the fine-tune. alpha is chosen on the validation split by TBAR's rule (lowest
validation ASR among the alphas that keep ``kappa`` of theta_b's validation CA; ties: the smaller alpha), so
the two defenses differ only in the vector they subtract. It needs theta_pre and no samples of the pool.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from bdunlearn import task_vectors
from bdunlearn.config import checks
from bdunlearn.defenses.base import DefenseConfig, DefenseInputs, DefenseOutcome
from bdunlearn.defenses.tbar import alpha_scan, select_alpha
from bdunlearn.errors import UserError
from bdunlearn.params import parameter_patterns, selects


@dataclass
class InterpolateConfig(DefenseConfig):
    """Interpolation towards theta_pre (a reference point for TBAR): theta_b - alpha (theta_b - theta_pre), alpha
    chosen on the validation split by TBAR's rule; alpha = 1 is theta_pre itself. Uses no samples of the pool."""

    name: str = "interpolate"
    params: str = "visual"  # tensors walked back towards theta_pre: prefixes or globs (the attacker's tower)
    alpha_grid: list[float] = field(default_factory=lambda: [round(0.1 * i, 1) for i in range(11)])  # alphas scanned (1: theta_pre)
    kappa: float = 0.95  # keep alphas whose validation CA >= kappa * CA(theta_b), as TBAR


Config = InterpolateConfig
NEEDS_TRIGGER = True  # alpha is chosen on validation ASR


def check(cfg: InterpolateConfig) -> None:
    checks.require(len(cfg.alpha_grid) > 0, "defense.alpha_grid is empty; give at least one alpha in [0, 1]")
    checks.require(all(0 <= a <= 1 for a in cfg.alpha_grid), f"defense.alpha_grid={cfg.alpha_grid}: alphas must lie in [0, 1]")
    checks.require(0 < cfg.kappa <= 1, f"defense.kappa={cfg.kappa} is out of range; it must lie in (0, 1]")


def defend(inputs: DefenseInputs, cfg: InterpolateConfig) -> DefenseOutcome:
    if inputs.pretrained is None:
        raise UserError("defense=interpolate needs theta_pre, which this run does not have")
    patterns = parameter_patterns(cfg.params)
    names = [k for k, v in inputs.backdoored.items() if v.is_floating_point() and selects(k, patterns)]
    vector = task_vectors.subtract({k: inputs.backdoored[k] for k in names}, inputs.pretrained)
    curve = alpha_scan(inputs, vector, cfg.alpha_grid)
    chosen = select_alpha(curve, cfg.kappa)
    return DefenseOutcome(
        state=task_vectors.add(inputs.backdoored, vector, -chosen.alpha),
        samples=0,
        alpha=chosen.alpha,
        alpha_curve=[asdict(p) for p in curve],
    )
