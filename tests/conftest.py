"""Make the helper modules in tests/ (reference.py, _util.py) importable.

The project runs pytest with --import-mode=importlib, which does not put the
test directory on sys.path.  Only tests/ itself is added -- never the source
tree -- so `import fastconv` still resolves to the installed package.
"""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

# Fixtures shared by the test modules: `poisoned` (see _cuda.py); the --strict-skips option
# CI runs with (see _skips.py).
pytest_plugins = ["_cuda", "_skips"]
