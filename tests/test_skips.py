"""The --strict-skips gate CI relies on: it fails a run that skipped anything undocumented."""

import os
import subprocess
import sys
import textwrap

HERE = os.path.dirname(os.path.abspath(__file__))

DOCUMENTED = '''
import pytest

def test_runs():
    pass

@pytest.mark.skipif(True, reason="GPU test: no device here")
def test_needs_a_gpu():
    pass

@pytest.mark.skipif(True, reason="build: the other flavour")
def test_other_build():
    pass
'''

UNDOCUMENTED_IN_TEST = '''
import pytest

def test_needs_a_missing_module():
    pytest.importorskip("fastconv_no_such_module")
'''

UNDOCUMENTED_AT_IMPORT = '''
import pytest

pytest.importorskip("fastconv_no_such_module_either")

def test_never_collected():
    pass
'''


def run_strict(tmp_path, **files):
    for name, source in files.items():
        (tmp_path / f"test_{name}.py").write_text(textwrap.dedent(source))
    env = dict(os.environ, PYTHONPATH=HERE + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "_skips", "-p", "no:cacheprovider", "-q",
         "--rootdir", str(tmp_path), "--strict-skips", str(tmp_path)],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)


def test_strict_skips_passes_the_documented_skips(tmp_path):
    run = run_strict(tmp_path, documented=DOCUMENTED)
    assert run.returncode == 0, run.stdout
    assert "1 passed, 2 skipped" in run.stdout


def test_strict_skips_fails_on_undocumented_skips(tmp_path):
    run = run_strict(tmp_path, documented=DOCUMENTED, in_test=UNDOCUMENTED_IN_TEST,
                     at_import=UNDOCUMENTED_AT_IMPORT)
    assert run.returncode == 1, run.stdout
    assert ("test_in_test.py::test_needs_a_missing_module: could not import "
            "'fastconv_no_such_module'") in run.stdout
    assert "test_at_import.py: could not import 'fastconv_no_such_module_either'" in run.stdout
    assert "2 skip(s) with a reason not starting with 'GPU test:'" in run.stdout
