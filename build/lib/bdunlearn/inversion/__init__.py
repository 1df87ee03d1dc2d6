"""Trigger inversion for ``attack_knowledge=unknown``: one module per method (conf/inversion/<name>.yaml), each
exposing

- ``Config``: the dataclass its config section is merged into (a subclass of ``base.InversionConfig``),
- ``check(cfg)``: range checks before any compute,
- ``invert(context, cfg) -> list[InversionResult]``: candidate triggers, each with the method's detection statistic
  and its own verdict, in the order they are judged (DECREE: one; BTI-DBF: one per pixel budget, smallest first),
- ``rebuild(tensors, cfg) -> InvertedTrigger``: the trigger again from its saved tensors (cache, run dir),
- ``is_detected(score, cfg) -> bool``: the verdict from the statistic (the threshold's direction differs).

``stage.run`` is what the pipeline calls: cached inversion, target estimate and verdict (``reference.py``) of each
candidate, the first judged backdoored kept (else the last), files in the run dir.
"""

from bdunlearn.inversion import bti_dbf, decree

REGISTRY = {"decree": decree, "bti_dbf": bti_dbf}
