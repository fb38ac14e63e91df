"""``python -m fastconv.bench``: the same as ``fastconv bench``."""

import sys

from . import main

sys.exit(main())
