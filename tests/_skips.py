"""`--strict-skips`: a run that fails when anything but the documented GPU/build skips skipped.

Users may run the suite without PyTorch, matplotlib or the datasets, and those tests skip with
their reason. CI may not: it runs `python -m pytest --strict-skips`, and every skip whose reason
does not start with one of ALLOWED (GPU tests on a machine without one, tests of the other
build flavour) turns the run's exit status into a failure, listing each offender.
"""

import pytest

# The documented skips: a test needing a GPU where none is usable ("GPU test: <why>"), a test of
# the other build (CUDA vs CPU-only: "build: <why>"), a test that only means something on a
# machine without a GPU ("GPU present: <why>").
ALLOWED = ("GPU test:", "build:", "GPU present:")


def pytest_addoption(parser):
    parser.addoption("--strict-skips", action="store_true",
                     help="fail the run if a test skips for a reason other than " +
                          ", ".join(repr(p) for p in ALLOWED))


def _reason(report):
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


class _Recorder:
    def __init__(self):
        self.offenders = []

    def _check(self, report):
        if report.skipped and not hasattr(report, "wasxfail"):
            reason = _reason(report)
            if not reason.startswith(ALLOWED):
                self.offenders.append((report.nodeid, reason))

    def pytest_runtest_logreport(self, report):
        self._check(report)

    def pytest_collectreport(self, report):
        self._check(report)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session):
        # A run whose only module skipped at import collected nothing (exit status 5).
        if self.offenders and session.exitstatus in (pytest.ExitCode.OK,
                                                     pytest.ExitCode.NO_TESTS_COLLECTED):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter):
        if not self.offenders:
            return
        terminalreporter.section("--strict-skips: skips that are not allowed", red=True)
        for nodeid, reason in self.offenders:
            terminalreporter.line(f"{nodeid}: {reason}")
        allowed = ", ".join(repr(p) for p in ALLOWED)
        terminalreporter.line(f"{len(self.offenders)} skip(s) with a reason not starting with "
                              f"{allowed}: the run fails")


def pytest_configure(config):
    if config.getoption("--strict-skips"):
        config.pluginmanager.register(_Recorder(), "strict-skips-recorder")
