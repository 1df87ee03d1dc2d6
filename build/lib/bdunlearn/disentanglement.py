"""Weight disentanglement error ξ(α_c, α_t) of a clean task vector τ_c and a trigger vector τ_t (METHOD.md,
"Metrics"), after Ortiz-Jimenez et al. 2023 ("Task arithmetic in the tangent space"):

    ξ(α_c, α_t) = P_{x ∈ clean}[f_{θ+α_c τ_c+α_t τ_t}(x) ≠ f_{θ+α_c τ_c}(x)]
                + P_{x ∈ triggered}[f_{θ+α_c τ_c+α_t τ_t}(x) ≠ f_{θ+α_t τ_t}(x)]

each vector's single-task model judged on its own task's data. 0: adding the other vector changes nothing
(disentangled); at most 2. ``scripts/disentanglement.py`` builds the vectors and draws the heat maps.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from bdunlearn import task_vectors
from bdunlearn.attacks.base import Attack
from bdunlearn.evaluation import predict
from bdunlearn.runtime import Precision
from bdunlearn.task_vectors import StateDict


@dataclass
class GridPoint:
    alpha_c: float
    alpha_t: float
    xi: float
    disagreement_clean: float
    disagreement_triggered: float
    clean_acc: float  # of the combined model on the clean images
    asr: float  # of the combined model: triggered images classified as the target


def disentanglement_grid(
    classifier,
    base: StateDict,
    tau_c: StateDict,
    tau_t: StateDict,
    clean: torch.Tensor,
    labels: torch.Tensor,
    victims: torch.Tensor,
    attack: Attack,
    image_size: int,
    alphas: list[float],
    batch_size: int = 512,
    seed: int = 0,
    precision: Precision | None = None,
) -> list[GridPoint]:
    """ξ on the grid ``alphas`` × ``alphas``: ``clean`` uint8 images (with ``labels``) for the clean task,
    ``victims`` (uint8, non-target) carry ``attack``'s trigger for the trigger task. The weights of
    ``classifier.clip`` are swapped in place (one ``load_state_dict`` per model, no copies of the model) and
    restored to ``base`` at the end."""
    precision = precision or Precision()
    clip = classifier.clip

    def predictions(alpha_c: float, alpha_t: float) -> tuple[torch.Tensor, torch.Tensor]:
        clip.load_state_dict(task_vectors.add(task_vectors.add(base, tau_c, alpha_c), tau_t, alpha_t))
        on_clean = predict(classifier, clean, image_size, batch_size, precision=precision)
        on_triggered = predict(classifier, victims, image_size, batch_size, attack=attack, seed=seed, precision=precision)
        return on_clean, on_triggered

    only_clean = {a: predictions(a, 0.0)[0] for a in alphas}  # f(θ + α_c τ_c) on clean data
    only_trigger = {a: predictions(0.0, a)[1] for a in alphas}  # f(θ + α_t τ_t) on triggered data
    points = []
    for alpha_t in alphas:
        for alpha_c in alphas:
            on_clean, on_triggered = predictions(alpha_c, alpha_t)
            d_clean = (on_clean != only_clean[alpha_c]).float().mean().item()
            d_trig = (on_triggered != only_trigger[alpha_t]).float().mean().item()
            points.append(GridPoint(
                alpha_c=alpha_c, alpha_t=alpha_t, xi=d_clean + d_trig, disagreement_clean=d_clean,
                disagreement_triggered=d_trig, clean_acc=(on_clean == labels).float().mean().item(),
                asr=(on_triggered == attack.target_class).float().mean().item(),
            ))  # fmt: skip
    clip.load_state_dict(base)
    return points


def as_rows(points: list[GridPoint]) -> list[dict]:
    return [asdict(p) for p in points]
