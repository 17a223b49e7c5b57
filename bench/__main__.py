"""``python -m bench``: see bench/run.py and BENCHMARKS.md."""

from .run import main

raise SystemExit(main())
