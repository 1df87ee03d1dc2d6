"""bdunlearn: backdoor unlearning benchmarks for CLIP (TBAR and baseline defenses)."""

__version__ = "0.1.0"

from bdunlearn.api import config, run  # noqa: E402  (the Python API: bdunlearn.run([...overrides]) -> record)

__all__ = ["__version__", "config", "run"]
