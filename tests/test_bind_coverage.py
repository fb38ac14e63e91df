"""The binding-coverage gate of .ci/sanitize (tests/_bind_coverage.py) can fail."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_bind_coverage_fails_naming_each_function_never_run():
    path = os.pathsep.join(p for p in (os.path.join(ROOT, "tests"), os.environ.get("PYTHONPATH"))
                           if p)
    one_test = "tests/test_runtime.py::test_info_has_the_documented_keys"
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "-p", "_bind_coverage", one_test],
                         cwd=ROOT, env=dict(os.environ, PYTHONPATH=path), capture_output=True,
                         text=True)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "1 passed" in out.stdout, out.stdout
    assert "fastconv._C binding coverage: FAILED" in out.stdout, out.stdout
    assert "relu_forward: never returned" in out.stdout, out.stdout
    assert "build_info: never returned" not in out.stdout, out.stdout
