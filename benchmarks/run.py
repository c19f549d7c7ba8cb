"""`python benchmarks/run.py --mode full` is `esbench bench --mode full` (same arguments)."""

import sys

from esbench.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
