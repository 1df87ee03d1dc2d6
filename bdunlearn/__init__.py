"""bdunlearn: backdoor unlearning benchmarks for CLIP (TBAR and baseline defenses)."""

__version__ = "0.1.0"
