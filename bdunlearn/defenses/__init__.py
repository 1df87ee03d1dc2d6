"""Defenses: one module per defense (conf/defense/<name>.yaml), each exposing

- ``Config``: the dataclass its config section is merged into,
- ``check(cfg)``: range checks before any compute,
- ``defend(inputs, cfg) -> DefenseOutcome``.
"""

from bdunlearn.defenses import none, tbar

REGISTRY = {"none": none, "tbar": tbar}
