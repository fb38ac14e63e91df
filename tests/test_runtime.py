"""Threads, info() and the `fastconv info` command."""

import os
import subprocess
import sys

import numpy as np
import pytest

import fastconv
import fastconv.functional as F

INFO_KEYS = {"version", "blas", "num_threads", "openmp", "simd", "cuda_built", "cuda_archs",
             "cuda_device"}


def test_info_has_the_documented_keys():
    d = fastconv.info()
    assert INFO_KEYS <= set(d), INFO_KEYS - set(d)
    assert d["version"] == fastconv.__version__
    assert d["num_threads"] == fastconv.get_num_threads() >= 1
    assert isinstance(d["cuda_built"], bool)
    assert "openblas" in d["blas"].lower() or "blas" in d["blas"].lower()


def test_info_command_prints_every_key():
    out = subprocess.run([sys.executable, "-m", "fastconv.cli", "info"], capture_output=True,
                         text=True, check=True).stdout
    for key in INFO_KEYS:
        assert key in out


def test_set_num_threads_round_trips_and_validates():
    before = fastconv.get_num_threads()
    try:
        fastconv.set_num_threads(1)
        assert fastconv.get_num_threads() == 1
        fastconv.set_num_threads(3)
        assert fastconv.get_num_threads() == 3
        with pytest.raises(ValueError, match="n must be a positive"):
            fastconv.set_num_threads(0)
        with pytest.raises(TypeError, match="n must be an int"):
            fastconv.set_num_threads(1.5)
    finally:
        fastconv.set_num_threads(before)


def test_set_allow_tf32_round_trips_and_validates():
    before = fastconv.get_allow_tf32()
    try:
        fastconv.set_allow_tf32(True)
        assert fastconv.get_allow_tf32() is True
        fastconv.set_allow_tf32(False)
        assert fastconv.get_allow_tf32() is False
        with pytest.raises(TypeError, match="allow must be a bool"):
            fastconv.set_allow_tf32(1)
        assert fastconv.get_allow_tf32() is False
    finally:
        fastconv.set_allow_tf32(before)


def test_set_num_threads_refuses_more_than_4096():
    # 10**6 was accepted and the next parallel kernel crashed inside libgomp (stack overflow).
    before = fastconv.get_num_threads()
    with pytest.raises(ValueError, match="n must be at most 4096, got 1000000"):
        fastconv.set_num_threads(10**6)
    # Past 32 bits too (pybind11 refused those with a TypeError naming no argument).
    with pytest.raises(ValueError, match=f"n must be at most 4096, got {2**40}"):
        fastconv.set_num_threads(2**40)
    assert fastconv.get_num_threads() == before


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_conv2d_results_are_repeatable_for_a_thread_count(threads):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 6, 17, 13), dtype=np.float32)
    w = rng.standard_normal((8, 3, 3, 3), dtype=np.float32)
    dy = rng.standard_normal((3, 8, 9, 7), dtype=np.float32)
    before = fastconv.get_num_threads()
    try:
        fastconv.set_num_threads(threads)
        runs = [(F.conv2d(x, w, stride=2, padding=1, groups=2),
                 *F.conv2d_backward(dy, x, w, stride=2, padding=1, groups=2)) for _ in range(3)]
    finally:
        fastconv.set_num_threads(before)
    for run in runs[1:]:
        for a, b in zip(runs[0], run):
            np.testing.assert_array_equal(a, b)


def test_conv2d_workspace_stays_bounded_for_a_200_mib_input():
    """A 207 MiB input with a 3x3 kernel: peak memory is input + output + a bounded workspace,
    not a multi-GiB im2col buffer (which would be 9x the input)."""
    code = """
import resource, numpy as np, fastconv.functional as F
x = np.ones((1, 4, 3600, 3600), dtype=np.float32)
w = np.ones((4, 4, 3, 3), dtype=np.float32)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
y = F.conv2d(x, w, padding=1)
dx, dw, db = F.conv2d_backward(y, x, w, padding=1)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
assert y[0, 0, 1, 1] == 36 and y[0, 0, 0, 0] == 16
print((peak - base) * 1024)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    grown = int(out.stdout.strip())
    arrays = 2 * 4 * 3600 * 3600 * 4  # y and dx (grad_output is y itself)
    assert grown < arrays + (256 << 20), f"peak grew by {grown / 2**20:.0f} MiB"


def test_cpu_isa_is_the_best_supported_by_default_and_reported():
    d = fastconv.info()
    assert d["cpu_isas"][-1] == "baseline"
    assert set(d["cpu_isas"]) <= {"avx512", "avx2", "baseline"}
    assert d["cpu_isa"] == fastconv.get_cpu_isa() in d["cpu_isas"]
    if "FASTCONV_CPU_ISA" not in os.environ:
        assert d["cpu_isa"] == d["cpu_isas"][0]


def test_set_cpu_isa_validates():
    from fastconv._loader import _C

    before = fastconv.get_cpu_isa()
    try:
        with pytest.raises(ValueError, match="isa must be one of avx512, avx2, baseline, got 'sse9'"):
            _C.set_cpu_isa("sse9")
        assert fastconv.get_cpu_isa() == before
        _C.set_cpu_isa("baseline")
        assert fastconv.get_cpu_isa() == "baseline"
    finally:
        _C.set_cpu_isa(before)


def _info_with_isa(value):
    env = dict(os.environ, FASTCONV_CPU_ISA=value)
    return subprocess.run([sys.executable, "-m", "fastconv.cli", "info"], capture_output=True,
                          text=True, env=env)


@pytest.mark.parametrize("isa", fastconv.info()["cpu_isas"])
def test_environment_variable_forces_a_variant(isa):
    run = _info_with_isa(isa)
    assert run.returncode == 0, run.stderr
    line = next(s for s in run.stdout.splitlines() if s.startswith("cpu_isa "))
    assert line.split() == ["cpu_isa", isa]


def test_environment_variable_rejects_an_unknown_variant():
    run = _info_with_isa("avx1024")
    assert run.returncode != 0
    assert "FASTCONV_CPU_ISA must be one of avx512, avx2, baseline, got 'avx1024'" in run.stderr


def _python_prints(code, env):
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr
    return run.stdout.strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_malloc_tuning_is_on_by_default_and_can_be_turned_off():
    """fastconv sets glibc's mmap and trim thresholds at import (so that a step's activations
    reuse the last step's memory) wherever mallopt takes them (glibc; not musl, not under
    AddressSanitizer, whose allocator ignores them); FASTCONV_MALLOC_TUNING=0, or glibc's own
    variables, leave malloc as it is."""
    clean = {k: v for k, v in os.environ.items()
             if k not in ("FASTCONV_MALLOC_TUNING", "MALLOC_MMAP_THRESHOLD_",
                          "MALLOC_TRIM_THRESHOLD_")}
    probe = ("import ctypes\ntry:\n    libc = ctypes.CDLL(None); libc.gnu_get_libc_version\n"
             "    print(libc.mallopt(-3, 32 << 20) == 1 and libc.mallopt(-1, 128 << 20) == 1)\n"
             "except AttributeError:\n    print(False)")
    tuned = "import fastconv; print(fastconv.info()['malloc_tuned'])"
    assert _python_prints(tuned, clean) == _python_prints(probe, clean)
    assert _python_prints(tuned, dict(clean, FASTCONV_MALLOC_TUNING="0")) == "False"
    assert _python_prints(tuned, dict(clean, MALLOC_TRIM_THRESHOLD_="131072")) == "False"
