"""Shared test helpers: tolerance comparison, random data, the shape table."""

import contextlib
import math
import zlib
import os
import pathlib

import numpy as np

import pytest

from fastconv._opinfo.conv import resolve_padding, conv_output_size


def assert_close(actual, expected, rtol, atol=0.0, what=""):
    """Fail unless |actual - expected| <= rtol * max|expected| + atol everywhere.

    Fails on any NaN/inf in ``actual`` and on shape mismatch; on failure reports
    the maximum error, its index, the values there and how many elements are out
    of tolerance.
    """
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    pre = f"{what}: " if what else ""
    assert actual.shape == expected.shape, (
        f"{pre}shape mismatch: actual {actual.shape} vs expected {expected.shape}")
    a = actual.astype(np.float64)
    e = expected.astype(np.float64)
    bad = ~np.isfinite(a)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise AssertionError(
            f"{pre}{int(bad.sum())} non-finite element(s) in result, first at index "
            f"{idx}: {a[idx]!r} (expected {e[idx]!r})")
    if a.size == 0:
        return
    scale = float(np.max(np.abs(e)))
    tol = rtol * scale + atol
    err = np.abs(a - e)
    imax = np.unravel_index(int(np.argmax(err)), err.shape)
    emax = float(err[imax])
    if emax > tol:
        nbad = int((err > tol).sum())
        raise AssertionError(
            f"{pre}max abs error {emax:.3e} at index {tuple(int(i) for i in imax)} "
            f"(actual {a[imax]!r}, expected {e[imax]!r}); tolerance {tol:.3e} = "
            f"rtol {rtol:.1e} * max|expected| {scale:.3e} + atol {atol:.1e}; "
            f"{nbad}/{err.size} elements out of tolerance; "
            f"relative max error {emax / scale if scale else float('inf'):.3e}")


def rtol_for(dtype, reduction_len=1):
    """Relative (to max|ref|) tolerance for a result reducing over reduction_len terms.

    float64: 1e-10.  float32: 1e-5, grown like sqrt(L) only beyond L=1000 terms
    (rounding error of an L-term float32 sum relative to the largest of many
    such sums grows at most ~sqrt(L)); a single missing/extra product term is a
    relative error of ~1/(4 sqrt(L)), always far above this tolerance.
    """
    if np.dtype(dtype) == np.float64:
        return 1e-10
    return 1e-5 * max(1.0, math.sqrt(reduction_len / 1000.0))


def rand(rng, shape, dtype):
    """Standard normal values, generated in float64 then cast (so float32
    inputs are exactly representable and the reference sees the same values)."""
    return rng.standard_normal(shape).astype(dtype)


# ---------------------------------------------------------------------------
# Shape table.  Each case: N, C, H, W, K, R, S and conv arguments.
# ---------------------------------------------------------------------------

def _case(id, N, C, H, W, K, R, S, stride=1, padding=0, dilation=1, groups=1):
    return dict(id=id, N=N, C=C, H=H, W=W, K=K, R=R, S=S, stride=stride,
                padding=padding, dilation=dilation, groups=groups)


CASES = [
    _case("basic_3x3_pad1", 2, 3, 8, 8, 4, 3, 3, padding=1),
    _case("batch1", 1, 2, 7, 9, 3, 3, 3),
    _case("odd_nonsquare_3x5_on_13x17", 2, 3, 13, 17, 5, 3, 5),
    _case("nonsquare_pad_pair", 2, 3, 13, 17, 4, 3, 5, padding=(1, 2)),
    _case("stride3_not_dividing", 2, 3, 10, 10, 4, 3, 3, stride=3),
    _case("stride_2_3", 2, 4, 11, 13, 5, 3, 2, stride=(2, 3), padding=(1, 0)),
    _case("pad_larger_than_half_kernel", 2, 2, 6, 7, 3, 3, 3, padding=2),
    _case("pad_3_2_on_3x3", 2, 2, 5, 6, 3, 3, 3, padding=(3, 2), stride=2),
    _case("dilation2", 2, 3, 12, 12, 4, 3, 3, padding=2, dilation=2),
    _case("dilation_2_3", 2, 3, 14, 15, 4, 3, 3, stride=(1, 2), padding=(1, 2),
          dilation=(2, 3)),
    _case("groups2", 2, 4, 9, 9, 6, 3, 3, padding=1, groups=2),
    _case("groups3_stride2", 2, 6, 8, 10, 9, 3, 2, stride=2, groups=3),
    _case("depthwise", 2, 5, 10, 10, 5, 3, 3, padding=1, groups=5),
    _case("depthwise_mult2", 2, 4, 9, 11, 8, 3, 3, stride=2, padding=1, groups=4),
    _case("1x1_fast_path", 2, 8, 7, 9, 6, 1, 1),
    _case("1x1_stride2", 2, 5, 9, 8, 4, 1, 1, stride=2),
    _case("1x1_pad1", 2, 5, 6, 6, 3, 1, 1, padding=1),
    _case("kernel_larger_than_input_padded", 2, 2, 3, 4, 3, 5, 5, padding=2),
    _case("kernel_equals_input", 2, 3, 5, 4, 2, 5, 4),
    _case("same_odd_kernel", 2, 3, 9, 10, 4, 3, 3, padding="same"),
    _case("same_even_kernel", 2, 3, 8, 9, 4, 4, 2, padding="same"),
    _case("same_dilated_odd_total", 2, 3, 10, 11, 4, 2, 3, padding="same",
          dilation=(3, 2)),
    _case("same_dilated_groups", 2, 4, 9, 9, 4, 3, 4, padding="same", dilation=2,
          groups=2),
    _case("valid", 2, 3, 8, 7, 2, 3, 3, padding="valid"),
    _case("many_channels_64_48", 2, 64, 10, 10, 48, 3, 3, padding=1),
    _case("batch8_28x28", 8, 3, 28, 28, 8, 5, 5, padding=2),
    _case("combo_groups_stride_dil", 3, 6, 15, 13, 4, 3, 3, stride=(2, 1),
          padding=(2, 1), dilation=(1, 2), groups=2),
]

CASE_IDS = [c["id"] for c in CASES]
CASES_BY_ID = {c["id"]: c for c in CASES}


def conv_args(case):
    return dict(stride=case["stride"], padding=case["padding"],
                dilation=case["dilation"], groups=case["groups"])


def out_hw(case):
    pad4 = resolve_padding(case["padding"], (case["R"], case["S"]),
                           case["dilation"], case["stride"])
    return conv_output_size(case["H"], case["W"], (case["R"], case["S"]),
                            case["stride"], pad4, case["dilation"])


def make_data(case, dtype, seed, bias=True):
    """(x, w, b, grad_output) for a case; b is None when bias=False."""
    rng = np.random.default_rng(seed)
    N, C, H, W, K, R, S, g = (case[k] for k in "N C H W K R S groups".split())
    P, Q = out_hw(case)
    x = rand(rng, (N, C, H, W), dtype)
    w = rand(rng, (K, C // g, R, S), dtype)
    b = rand(rng, (K,), dtype) if bias else None
    dout = rand(rng, (N, K, P, Q), dtype)
    return x, w, b, dout


def reduction_lengths(case):
    """Number of summed terms for (forward/grad_input-ish, grad_weight/bias)."""
    P, Q = out_hw(case)
    g = case["groups"]
    fwd = (case["C"] // g) * case["R"] * case["S"]
    dx = (case["K"] // g) * case["R"] * case["S"]
    dw = case["N"] * P * Q
    return fwd, dx, dw


def check_conv2d_passes(case, dtype, seed):
    """conv2d's forward and its three gradients on a case's data (make_data, with `seed`)
    against the float64 reference, each at rtol_for its reduction length."""
    import fastconv.functional as F
    from fastconv._opinfo.conv import conv2d_backward_ref, conv2d_ref

    x, w, b, dout = make_data(case, dtype, seed)
    l_out, l_dx, l_dw = reduction_lengths(case)
    out = F.conv2d(x, w, b, **conv_args(case))
    assert out.dtype == dtype and out.shape == dout.shape and not np.isnan(out).any()
    assert_close(out, conv2d_ref(x, w, b, **conv_args(case)), rtol_for(dtype, l_out),
                 what="forward")
    got = F.conv2d_backward(dout, x, w, **conv_args(case))
    ref = conv2d_backward_ref(dout, x, w, **conv_args(case))
    for name, g, r, n in zip(("grad_input", "grad_weight", "grad_bias"), got, ref,
                             (l_dx, l_dw, l_dw)):
        assert g.dtype == dtype and g.shape == r.shape and not np.isnan(g).any(), name
        assert_close(g, r, rtol_for(dtype, n), what=name)


# The algorithms whose outputs are each summed in a fixed order, whoever computes them; the BLAS paths cut their GEMMs by the thread count, and a BLAS may round a
# product of another shape differently (README, "What the thread count changes": OpenBLAS's
# Haswell kernels did at batch 1, its SkylakeX kernels did not).
FIXED_ORDER_ALGORITHMS = {"direct", "direct_rows", "winograd", "depthwise"}


def fixed_order_passes(case, variant):
    """Which of conv2d's forward (0) and input gradient (1) run a fixed-order algorithm on a
    case's float32 shapes under the CPU variant `variant`."""
    import fastconv.functional as F

    x = np.zeros((case["N"], case["C"], case["H"], case["W"]), np.float32)
    w = np.zeros((case["K"], case["C"] // case["groups"], case["R"], case["S"]),
                 np.float32)
    with cpu_variant(variant):
        algo = F.conv2d_algorithm(x, w, **conv_args(case))
    return [i for i, name in enumerate(("forward", "grad_input"))
            if algo[name] in FIXED_ORDER_ALGORITHMS]


def check_same_bits_for_thread_counts(case, variant, seed):
    """conv2d's forward and input gradient on a case's data give the same bits with 1, 2 and 3
    threads under the CPU variant `variant`, for each pass on a fixed-order algorithm (at least
    one of the two)."""
    import fastconv.functional as F

    passes = fixed_order_passes(case, variant)
    assert passes, f"{case['id']}: neither pass on a fixed-order algorithm under {variant}"
    x, w, b, dout = make_data(case, np.float32, seed)
    runs = []
    for n in (1, 2, 3):
        with num_threads(n), cpu_variant(variant):
            runs.append((F.conv2d(x, w, b, **conv_args(case)),
                         F.conv2d_backward(dout, x, w, **conv_args(case),
                                           output_mask=(True, False, False))[0]))
    for n, run in zip((2, 3), runs[1:]):
        for i in passes:
            np.testing.assert_array_equal(run[i], runs[0][i],
                                          err_msg=f"{('forward', 'grad_input')[i]}, {n} threads vs 1")


# ---------------------------------------------------------------------------
# The real datasets: ../shared/data beside the repository (as CI places it), or $FASTCONV_DATA.
# ---------------------------------------------------------------------------

def _shared_data():
    repo = pathlib.Path(__file__).resolve().parent.parent
    for root in (os.environ.get("FASTCONV_DATA"), repo.parent / "shared" / "data"):
        if root and (pathlib.Path(root) / "fashion-mnist").is_dir():
            return pathlib.Path(root)
    return None


ROOT = _shared_data()
needs_data = pytest.mark.skipif(ROOT is None, reason="the Fashion-MNIST/MNIST files are not "
                                "beside the repository (../shared/data) and FASTCONV_DATA is unset")


def stable_seed(*parts):
    """A seed that depends only on the given values (stable across runs and processes)."""
    return zlib.crc32(repr(parts).encode())


def upstream_grad(rng, loss_shape, reduction, dtype):
    """A random grad_output for a loss: per element for reduction 'none', else a 0-d array."""
    if reduction == "none":
        return rand(rng, loss_shape, dtype)
    return np.asarray(rng.standard_normal(), dtype=dtype)


@contextlib.contextmanager
def cpu_variant(name):
    """The CPU variant name (fastconv.info()["cpu_isas"]) in force inside the block."""
    from fastconv._loader import _C
    before = _C.get_cpu_isa()
    _C.set_cpu_isa(name)
    try:
        yield
    finally:
        _C.set_cpu_isa(before)


@contextlib.contextmanager
def num_threads(n):
    """fastconv's process-wide thread count set to n inside the block, restored after."""
    import fastconv
    before = fastconv.get_num_threads()
    fastconv.set_num_threads(n)
    try:
        yield
    finally:
        fastconv.set_num_threads(before)
