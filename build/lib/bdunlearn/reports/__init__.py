"""The library behind every table and figure in ``results/``: records → numbers → Markdown, CSV, LaTeX, PNG.

``records`` reads run records, ``criteria`` holds every threshold and verdict, ``tables`` and ``plots`` format,
``provenance`` says where numbers come from, and ``studies/`` holds one module per report (the scripts in
``scripts/`` only parse their arguments and call these).
"""
