"""Binding coverage: a pytest plugin, active only when loaded (tests/ on PYTHONPATH and
`-p _bind_coverage`).

Every function of fastconv._C is wrapped before any test runs. A call counts once it returns
(a rejected argument never reaches a kernel), with the float dtypes of its NumPy arguments. At
the end the session fails, naming each function never run to completion and each one that took
float arrays but never ran for both float32 and float64. .ci/sanitize uses it to show that its
test selection drives every CPU kernel under the sanitizers.

Under pytest-xdist each worker counts its own calls and hands them to the controller when it
finishes (xdist's workeroutput); only the controller, which has them all, judges the gaps.
"""

import functools

import numpy as np
import pytest

from fastconv._loader import _C

_FLOATS = ("float32", "float64")
_seen = {}  # name -> float dtypes seen in calls that returned; a key once any call returned


def _wrap(name, fn):
    @functools.wraps(fn)
    def counted(*args, **kwargs):
        out = fn(*args, **kwargs)
        dtypes = _seen.setdefault(name, set())
        for a in (*args, *kwargs.values()):
            if isinstance(a, np.ndarray) and a.dtype.name in _FLOATS:
                dtypes.add(a.dtype.name)
        return out
    return counted


def _functions():
    return sorted(n for n in dir(_C)
                  if not n.startswith("_") and callable(getattr(_C, n))
                  and not isinstance(getattr(_C, n), type))


def pytest_configure(config):
    for name in _functions():
        setattr(_C, name, _wrap(name, getattr(_C, name)))


def _is_worker(config):
    return hasattr(config, "workerinput")


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    for name, dtypes in getattr(node, "workeroutput", {}).get("fc_bind_seen", {}).items():
        _seen.setdefault(name, set()).update(dtypes)


def _gaps():
    gaps = []
    for name in _functions():
        if name not in _seen:
            gaps.append(f"{name}: never returned")
        elif _seen[name] and len(_seen[name]) < len(_FLOATS):
            missing = sorted(set(_FLOATS) - _seen[name])
            gaps.append(f"{name}: never ran with {', '.join(missing)} arrays")
    return gaps


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session):
    if _is_worker(session.config):
        session.config.workeroutput["fc_bind_seen"] = {n: sorted(d) for n, d in _seen.items()}
        return
    if _gaps() and session.exitstatus == 0:
        session.exitstatus = 1


def pytest_terminal_summary(terminalreporter, config):
    if _is_worker(config):
        return
    gaps = _gaps()
    tr = terminalreporter
    if gaps:
        tr.section("fastconv._C binding coverage: FAILED", red=True)
        for g in gaps:
            tr.write_line(g)
    else:
        n = len(_functions())
        tr.write_line(f"fastconv._C binding coverage: all {n} functions returned"
                      " (float32 and float64 wherever they take float arrays)")
