"""Write the configuration reference page from the schema and the plug-ins' Config dataclasses.

    python scripts/config_reference.py [--out docs/configuration.md]

Run it after adding or changing a config key; ``tests/test_docs.py`` fails while the committed page is stale.
"""

from __future__ import annotations

import argparse

from bdunlearn.reports.config_reference import write


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/configuration.md")
    args = parser.parse_args()
    print(f"wrote {write(args.out)}")


if __name__ == "__main__":
    main()
