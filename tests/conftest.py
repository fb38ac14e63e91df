"""Make the helper modules in tests/ (_util.py, _props.py, ...) importable, and set up Hypothesis.

The project runs pytest with --import-mode=importlib, which does not put the
test directory on sys.path.  Only tests/ itself is added -- never the source
tree -- so `import fastconv` still resolves to the installed package.

Hypothesis profiles (the property tests, tests/test_properties_*.py), chosen with the
HYPOTHESIS_PROFILE environment variable:

- ``ci`` (the default, what `python -m pytest` and CI run): derandomised, so every run tries
  the same examples; a fixed number of them per test; no deadline (the machine may be shared);
  no example database.
- ``long``: for a local hunt, 25 times the examples, freshly random on every run, failures
  remembered in the example database and replayed first next time:
  ``HYPOTHESIS_PROFILE=long python -m pytest tests/test_properties_*.py``

Hypothesis keeps its files (the long profile's database, a cache of constants read from the
source) in ~/.cache/fastconv/hypothesis, or $HYPOTHESIS_STORAGE_DIRECTORY: never in the tree.
"""

import os
import pathlib
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

# Under pytest-xdist (-n auto) each worker is a process with its own OpenMP team and PyTorch's;
# at the default width every worker starts a thread per core, N workers x N threads on N cores,
# and OpenMP's spin-waiting then slows them all. Each worker takes its share of the cores, set
# before fastconv or PyTorch is imported (OpenMP reads it when it loads). Tests about the thread
# count set it themselves; a width the user chose is left alone.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1 and "OMP_NUM_THREADS" not in os.environ and hasattr(os, "sched_getaffinity"):
    os.environ["OMP_NUM_THREADS"] = str(max(1, len(os.sched_getaffinity(0)) // _WORKERS))

# Fixtures shared by the test modules: `poisoned` (see _cuda.py), `cpu_isa` (_isa.py),
# `poisoned_outputs` (_props.py);
# the --strict-skips option CI runs with (_skips.py).
pytest_plugins = ["_cuda", "_isa", "_skips"]

try:
    from hypothesis import HealthCheck, settings
    from hypothesis.configuration import set_hypothesis_home_dir
    from hypothesis.database import DirectoryBasedExampleDatabase
except ImportError:
    # Only the property tests need Hypothesis (pip install ".[test]"); an environment without
    # it, such as a bare wheel on a GPU machine, still runs everything else.
    collect_ignore_glob = ["test_properties_*.py"]
else:
    pytest_plugins.append("_props")

    CI_EXAMPLES = 100
    _STORAGE = pathlib.Path(os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY")
                            or pathlib.Path.home() / ".cache" / "fastconv" / "hypothesis")
    set_hypothesis_home_dir(_STORAGE)

    settings.register_profile(
        "ci", derandomize=True, max_examples=CI_EXAMPLES, deadline=None, database=None,
        print_blob=True, suppress_health_check=[HealthCheck.too_slow])
    settings.register_profile(
        "long", derandomize=False, max_examples=25 * CI_EXAMPLES, deadline=None,
        print_blob=True, database=DirectoryBasedExampleDatabase(_STORAGE / "examples"),
        suppress_health_check=[HealthCheck.too_slow])
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_configure(config):
    # Leaving the property tests out is a skip like any other: CI's --strict-skips refuses it.
    if "collect_ignore_glob" in globals() and config.getoption("--strict-skips"):
        raise pytest.UsageError("--strict-skips: hypothesis is not installed, so "
                                "tests/test_properties_*.py would not run (pip install \".[test]\")")


def pytest_collection_modifyitems(items):
    # The long runs first: under pytest-xdist (-n auto) a minute-long test started last would
    # leave the other workers idle while it finishes. The sort is stable and the same in every
    # worker, as xdist requires.
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def pytest_report_header(config):
    if "collect_ignore_glob" in globals():
        return "hypothesis is not installed: tests/test_properties_*.py are not collected"
    return f"hypothesis profile: {os.environ.get('HYPOTHESIS_PROFILE', 'ci')}"
