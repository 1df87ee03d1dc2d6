"""Measurements beyond a single run (benchmarks, the disentanglement map, BTI-DBF's objective, theta_pre's ladder):
each sets its runs up through ``bdunlearn.pipeline.prepare`` and hands rows to ``bdunlearn.reports``; the scripts
in ``scripts/`` only parse their arguments."""
