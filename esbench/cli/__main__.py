"""`python -m esbench.cli ...`, as the `esbench` script."""

import sys

from esbench.cli import main

sys.exit(main())
