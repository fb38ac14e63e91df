"""The `cpu_isa` fixture: a test that uses it runs once for every instruction-set variant of
the CPU kernels this machine supports (fastconv.info()["cpu_isas"]; see csrc/cpu/isa.h), with
that variant in force. A module opts in whole with
``pytestmark = pytest.mark.usefixtures("cpu_isa")``. Only supported variants are generated, so
a CPU without AVX-512 runs fewer cases rather than skipping any."""

import pytest

import fastconv
from fastconv._loader import _C

ISAS = fastconv.info()["cpu_isas"]


def pytest_generate_tests(metafunc):
    if "cpu_isa" in metafunc.fixturenames:
        metafunc.parametrize("cpu_isa", ISAS, indirect=True, ids=[f"isa_{i}" for i in ISAS])


@pytest.fixture
def cpu_isa(request):
    before = _C.get_cpu_isa()
    _C.set_cpu_isa(request.param)
    yield request.param
    _C.set_cpu_isa(before)
