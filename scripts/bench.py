"""Thin wrapper: `python scripts/bench.py [args]` is `mia-bench [args]` (see mia_lightning/bench.py)."""

from mia_lightning.bench import main

if __name__ == "__main__":
    main()
