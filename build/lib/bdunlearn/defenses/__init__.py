"""Defenses: one module per defense (conf/defense/<name>.yaml), each exposing

- ``Config``: the dataclass its config section is merged into,
- ``check(cfg)``: range checks before any compute,
- ``defend(inputs, cfg) -> DefenseOutcome``,
- optionally ``NEEDS_TRIGGER = True``: refused at validation with attacks that plant no trigger (attack=none),
- optionally ``CONTRASTIVE = True``: it has a contrastive form (``setting=contrastive``: the CLIP loss on the
  defender's image-caption pairs, ``DefenseInputs.pairs``); the others are refused in that setting.
"""

from bdunlearn.defenses import cleanclip, finetune, ft_sam, interpolate, none, par, tbar

REGISTRY = {
    "none": none, "tbar": tbar, "finetune": finetune, "ft_sam": ft_sam, "cleanclip": cleanclip, "par": par,
    "interpolate": interpolate,
}  # fmt: skip
