"""Defenses: one module per defense, each exposing ``defend(inputs, cfg) -> DefenseOutcome``."""

from bdunlearn.defenses import none, tbar

REGISTRY = {"none": none.defend, "tbar": tbar.defend}
