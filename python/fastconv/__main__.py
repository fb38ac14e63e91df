"""`python -m fastconv ...` is the `fastconv` command (so that `mpiexec -n 4 python -m mpi4py -m
fastconv train ...` runs it on every rank)."""

import sys

from .cli import main

sys.exit(main())
