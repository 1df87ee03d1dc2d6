"""Weight disentanglement of a clean task vector and a trigger vector: ξ(α_c, α_t) on a grid, per attack.

    python scripts/disentanglement.py --attacks badnets blended wanet --out results/

For each attack (on the default data and model, or whatever Hydra overrides follow ``--``):

- τ_c = θ_c − θ_pre, θ_c the attacker's fine-tune recipe run on the *clean* training split (``attack=none``,
  same seed): the clean task;
- τ_t, the trigger task, by ``--trigger-vector``:
  - ``triggered`` (default): θ_pre fine-tuned on the training split with *every* image carrying the trigger and
    labelled with the target class (``--trigger-steps`` steps at the attacker's lr and batch size); τ_t is the
    trigger task on its own, learnt from θ_pre as τ_c is, which is what Ortiz-Jimenez et al.'s definition asks
    for (each task vector fine-tuned from the same θ_pre on its own task's data);
  - ``difference``: θ_b − θ_c, the part of the attacker's fine-tune that the poison added (θ_pre + τ_c + τ_t
    is then exactly θ_b); closer to what TBAR subtracts, but not a fine-tune on the trigger task alone.
- ξ(α_c, α_t) (Ortiz-Jimenez et al. 2023, "Task arithmetic in the tangent space"; computed by
  ``bdunlearn.disentanglement``), with f_θ the zero-shot classifier with image tower θ:

      ξ = P_{x ∈ clean test}[f_{θ_pre+α_c τ_c+α_t τ_t}(x) ≠ f_{θ_pre+α_c τ_c}(x)]
        + P_{x ∈ triggered non-target test}[f_{θ_pre+α_c τ_c+α_t τ_t}(x) ≠ f_{θ_pre+α_t τ_t}(x)]

  0 means each vector keeps doing its own task when the other is added (disentangled); up to 2.

Writes ``disentanglement_<attack>[_difference].png`` (heat map) and ``.csv`` (every grid point: ξ, its two
terms, clean accuracy and ASR of the combined model) into ``--out``, and ``disentanglement.md`` (summary).
Weights are swapped in place (``load_state_dict`` into one model); evaluation is batched under
``torch.inference_mode()``. θ_pre, θ_c, θ_b and the triggered fine-tune go through the artifact cache.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bdunlearn.experiments.disentanglement import run
from bdunlearn.reports.criteria import DISENTANGLED_XI


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attacks", nargs="+", default=["badnets", "blended", "wanet"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--grid", default="0:2:0.25", help="start:stop:step of both coefficients (default 0:2:0.25)")
    parser.add_argument("--trigger-vector", nargs="+", choices=("triggered", "difference"), default=["triggered"])
    parser.add_argument("--trigger-steps", type=int, default=100, help="steps of the triggered fine-tune of θ_pre")
    parser.add_argument("--low", type=float, default=DISENTANGLED_XI, help="ξ at or below this counts as disentangled")
    parser.add_argument("--out", type=Path, default=Path("results"))
    parser.add_argument("overrides", nargs="*", help="Hydra overrides (after --), e.g. dataset=fashion_mnist")
    run(parser.parse_args())


if __name__ == "__main__":
    main()
