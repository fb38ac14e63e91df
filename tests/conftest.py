"""Make the helper modules in tests/ (reference.py, _util.py) importable, and set up Hypothesis.

The project runs pytest with --import-mode=importlib, which does not put the
test directory on sys.path.  Only tests/ itself is added -- never the source
tree -- so `import fastconv` still resolves to the installed package.

Hypothesis profiles (the property tests, tests/test_properties_*.py), chosen with the
HYPOTHESIS_PROFILE environment variable:

- ``ci`` (the default, what `python -m pytest` and CI run): derandomised, so every run tries
  the same examples; a fixed number of them per test; no deadline (the machine may be shared);
  no example database, so nothing is written into the tree.
- ``long``: for a local hunt, 25 times the examples, freshly random on every run, failures
  remembered in ~/.cache/fastconv/hypothesis (outside the tree) and replayed first next time:
  ``HYPOTHESIS_PROFILE=long python -m pytest tests/test_properties_*.py``
"""

import os
import pathlib
import sys

from hypothesis import HealthCheck, settings
from hypothesis.database import DirectoryBasedExampleDatabase

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

# Fixtures shared by the test modules: `poisoned` (see _cuda.py), `poisoned_outputs` (_props.py).
pytest_plugins = ["_cuda", "_props"]

CI_EXAMPLES = 60

settings.register_profile(
    "ci", derandomize=True, max_examples=CI_EXAMPLES, deadline=None, database=None,
    print_blob=True, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile(
    "long", derandomize=False, max_examples=25 * CI_EXAMPLES, deadline=None, print_blob=True,
    database=DirectoryBasedExampleDatabase(
        pathlib.Path.home() / ".cache" / "fastconv" / "hypothesis"),
    suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
