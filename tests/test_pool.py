"""fastconv.functional pooling ops vs the float64 NumPy reference (fastconv/_opinfo/pool.py).

Expected values always come from the reference, never from fastconv itself.
"""

import zlib

import numpy as np
import pytest

import fastconv
import fastconv.functional as F
from fastconv._arrays import empty
from fastconv._loader import _C

from fastconv._opinfo import pool as R
from fastconv._opinfo.pool import POOL_CASES, POOL_CASE_IDS, ids, undilated, unpadded, window_args
from _util import assert_close, rtol_for, rand

DTYPES = [np.float32, np.float64]
DTYPE_IDS = ["f32", "f64"]


def _seed(case, extra=0):
    return zlib.crc32(case["id"].encode()) + extra


def _distinct(rng, shape, dtype):
    """Distinct values, exactly representable in float32, in random order (no ties)."""
    n = int(np.prod(shape))
    return ((rng.permutation(n) - n // 2) / 64.0).reshape(shape).astype(dtype)


def _check(got, want, dtype, what, length=1):
    assert isinstance(got, np.ndarray) and got.dtype == dtype, f"{what}: {type(got)} {got.dtype}"
    assert_close(got, want, rtol_for(dtype, length), what=what)


# ---------------------------------------------------------------------------
# max / min
# ---------------------------------------------------------------------------

EXTREME = {
    "max": (F.max_pool2d, F.max_pool2d_backward, R.max_pool2d_ref, R.max_pool2d_backward_ref),
    "min": (F.min_pool2d, F.min_pool2d_backward, R.min_pool2d_ref, R.min_pool2d_backward_ref),
}


@pytest.mark.parametrize("op", ["max", "min"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", POOL_CASES, ids=POOL_CASE_IDS)
def test_pool_extreme_forward_backward(case, dtype, op):
    fwd, bwd, fwd_ref, bwd_ref = EXTREME[op]
    rng = np.random.default_rng(_seed(case))
    x = _distinct(rng, case["shape"], dtype)
    kw = window_args(case)
    ref_out, ref_idx = fwd_ref(x, **kw)
    out = fwd(x, **kw)
    assert out.dtype == dtype and out.shape == ref_out.shape
    assert np.array_equal(out, ref_out.astype(dtype))
    out2, idx = fwd(x, **kw, return_indices=True)
    assert np.array_equal(out2, out)
    assert idx.dtype == np.int64 and np.array_equal(idx, ref_idx)
    g = rand(rng, ref_out.shape, dtype)
    want = bwd_ref(g, x, **kw)
    _check(bwd(g, x, **kw), want, dtype, f"{op} backward (recomputed argmax)", 9)
    _check(bwd(g, x, **kw, indices=idx), want, dtype, f"{op} backward (indices)", 9)


@pytest.mark.parametrize("op", ["max", "min"])
def test_pool_extreme_ties_first_wins(op):
    fwd, bwd, fwd_ref, bwd_ref = EXTREME[op]
    rng = np.random.default_rng(11)
    x = rng.integers(0, 3, (2, 3, 9, 10)).astype(np.float64)
    for kw in (dict(kernel_size=3, stride=2, padding=1), dict(kernel_size=(2, 3), ceil_mode=True),
               dict(kernel_size=3, stride=1, dilation=2)):
        out, idx = fwd(x, **kw, return_indices=True)
        ref_out, ref_idx = fwd_ref(x, **kw)
        assert np.array_equal(out, ref_out) and np.array_equal(idx, ref_idx), kw
        g = rng.standard_normal(out.shape)
        assert_close(bwd(g, x, **kw), bwd_ref(g, x, **kw), 1e-12)


@pytest.mark.usefixtures("cpu_isa")
@pytest.mark.parametrize("op", ["max", "min"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("hw", [(2, 2), (5, 28), (9, 34), (4, 64), (3, 130), (7, 6), (3, 4096),
                                (2, 4098)])
def test_pool_2x2_stride_2_ties_nan_and_signed_zeros(op, hw, dtype):
    """2x2 windows at stride 2 over planes of even width take csrc/cpu/pool.cpp's
    extreme_2x2_plane (each row's pairs first, in vectors; float32 under AVX-512 its
    extreme_2x2_avx512, 16 windows a step with masked tails): on ties the first pixel in scan
    order wins, of -0 and +0 the first, of several NaNs the last, as in the scalar loop and
    PyTorch. Values from {-2, ..., 2} make ties common; odd heights leave a row unused; rows
    of 4096 fill a block of pairs, rows of 4098 exceed it (the scalar loop)."""
    fwd, _, fwd_ref, _ = EXTREME[op]
    H, W = hw
    rng = np.random.default_rng(H * 1000 + W)
    x = rng.integers(-2, 3, (3, 2, H, W)).astype(dtype)
    zero = x == 0
    x[zero] = np.where(rng.random(int(zero.sum())) < 0.5, -0.0, 0.0)
    x[rng.random(x.shape) < 0.05] = np.nan
    ref_out, ref_idx = fwd_ref(x, kernel_size=2)
    out, idx = fwd(x, 2, return_indices=True)
    values = fwd(x, 2)
    for got in (out, values):
        np.testing.assert_array_equal(got, ref_out.astype(dtype))
        np.testing.assert_array_equal(np.signbit(got), np.signbit(ref_out))
    np.testing.assert_array_equal(idx, ref_idx)


WIDE_WINDOWS = [dict(kernel_size=3, stride=2, padding=1), dict(kernel_size=3, stride=1, padding=1),
                dict(kernel_size=2, stride=3), dict(kernel_size=3, stride=2, dilation=2),
                dict(kernel_size=(2, 3), stride=(1, 2), padding=(0, 1), ceil_mode=True)]


@pytest.mark.usefixtures("cpu_isa")
@pytest.mark.parametrize("op", ["max", "min"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("kw", WIDE_WINDOWS, ids=[str(i) for i in range(len(WIDE_WINDOWS))])
def test_pool_wide_rows_ties_nan_and_signed_zeros(op, kw, dtype):
    """Rows of 50 to 160 interior windows run csrc/cpu/pool.cpp's interior_taps in whole
    vectors (unit, 2 and other strides, dilation, padding): first extreme, last NaN and first
    of -0/+0 in scan order, values and indices, as the reference."""
    fwd, _, fwd_ref, _ = EXTREME[op]
    rng = np.random.default_rng(len(str(kw)))
    x = rng.integers(-2, 3, (2, 3, 9, 161)).astype(dtype)
    zero = x == 0
    x[zero] = np.where(rng.random(int(zero.sum())) < 0.5, -0.0, 0.0)
    x[rng.random(x.shape) < 0.05] = np.nan
    ref_out, ref_idx = fwd_ref(x, **kw)
    out, idx = fwd(x, **kw, return_indices=True)
    values = fwd(x, **kw)
    for got in (out, values):
        np.testing.assert_array_equal(got, ref_out.astype(dtype))
        np.testing.assert_array_equal(np.signbit(got), np.signbit(ref_out))
    np.testing.assert_array_equal(idx, ref_idx)


@pytest.mark.parametrize("op", ["max", "min"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_pool_extreme_nan_and_inf(op, dtype):
    fwd, bwd, fwd_ref, bwd_ref = EXTREME[op]
    rng = np.random.default_rng(12)
    x = _distinct(rng, (2, 2, 7, 8), dtype)
    x[0, 0, 1, 1] = np.nan
    x[0, 0, 1, 2] = np.nan            # two NaNs in one window: the last one in scan order wins
    x[0, 1, 4, 4] = np.inf
    x[1, 0, 2, 5] = -np.inf
    x[1, 1, 5, 6] = np.nan
    for kw in (dict(kernel_size=3, stride=2, padding=1), dict(kernel_size=2, ceil_mode=True)):
        out, idx = fwd(x, **kw, return_indices=True)
        ref_out, ref_idx = fwd_ref(x, **kw)
        np.testing.assert_array_equal(out, ref_out.astype(dtype))
        np.testing.assert_array_equal(idx, ref_idx)
        assert np.isnan(out).sum() == np.isnan(ref_out).sum() > 0
        g = rand(rng, out.shape, dtype)
        want = bwd_ref(g, x, **kw)
        np.testing.assert_allclose(bwd(g, x, **kw), want, rtol=1e-6)
        np.testing.assert_allclose(bwd(g, x, **kw, indices=idx), want, rtol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_pool_max_padding_never_wins(dtype):
    x = -(np.arange(1, 1 + 2 * 3 * 5 * 6).reshape(2, 3, 5, 6).astype(dtype))  # all negative
    out, idx = F.max_pool2d(x, 3, 1, 1, return_indices=True)
    ref_out, ref_idx = R.max_pool2d_ref(x, 3, 1, 1)
    assert np.array_equal(out, ref_out.astype(dtype)) and np.array_equal(idx, ref_idx)
    assert (out < 0).all()
    out = F.max_pool2d(np.full((1, 1, 3, 3), -np.inf, dtype), 2, 1, 1)
    assert (out == -np.inf).all()
    out = F.min_pool2d(-x, 3, 1, 1)
    assert np.array_equal(out, -ref_out.astype(dtype)) and (out > 0).all()


# ---------------------------------------------------------------------------
# avg / lp
# ---------------------------------------------------------------------------

AVG_MODES = [(True, None), (False, None), (True, 5), (False, -3)]
AVG_MODE_IDS = ["incl_pad", "excl_pad", "divisor5", "divisor-3"]


@pytest.mark.parametrize("count_include_pad,divisor_override", AVG_MODES, ids=AVG_MODE_IDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", undilated(), ids=ids(undilated()))
def test_pool_avg_forward_backward(case, dtype, count_include_pad, divisor_override):
    rng = np.random.default_rng(_seed(case, 1))
    x = rand(rng, case["shape"], dtype)
    kw = dict(window_args(case, dilation=False), count_include_pad=count_include_pad,
              divisor_override=divisor_override)
    ref = R.avg_pool2d_ref(x, **kw)
    _check(F.avg_pool2d(x, **kw), ref, dtype, "avg_pool2d", 9)
    g = rand(rng, ref.shape, dtype)
    _check(F.avg_pool2d_backward(g, x, **kw), R.avg_pool2d_backward_ref(g, x, **kw), dtype,
           "avg_pool2d_backward", 9)


@pytest.mark.usefixtures("cpu_isa")
@pytest.mark.parametrize("count_include_pad,divisor_override", AVG_MODES, ids=AVG_MODE_IDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("shape,ceil_mode", [((2, 3, 28, 28), False), ((1, 2, 9, 70), False),
                                             ((2, 1, 6, 2), True), ((3, 2, 5, 40), False)],
                         ids=["28x28", "odd_height_wide", "one_column_ceil", "batch3_odd"])
def test_pool_avg_2x2_stride_2_whole_windows(shape, ceil_mode, dtype, count_include_pad,
                                             divisor_override):
    """2x2 windows at stride 2 that tile an even-width plane take csrc/cpu/pool.cpp's loops
    over whole windows (forward, and backward writing each window's share without a scatter);
    rows past the last window (odd heights) get no gradient."""
    rng = np.random.default_rng(sum(shape) + ceil_mode)
    x = rand(rng, shape, dtype)
    kw = dict(kernel_size=2, ceil_mode=ceil_mode, count_include_pad=count_include_pad,
              divisor_override=divisor_override)
    ref = R.avg_pool2d_ref(x, **kw)
    _check(F.avg_pool2d(x, **kw), ref, dtype, "avg_pool2d", 4)
    g = rand(rng, ref.shape, dtype)
    dx = F.avg_pool2d_backward(g, x, **kw)
    _check(dx, R.avg_pool2d_backward_ref(g, x, **kw), dtype, "avg_pool2d_backward", 4)
    if shape[2] % 2:
        assert not dx[:, :, -1].any()


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_pool_avg_nan_inf_propagate(dtype):
    x = rand(np.random.default_rng(13), (1, 2, 6, 6), dtype)
    x[0, 0, 0, 0] = np.nan
    x[0, 1, 3, 3] = np.inf
    x[0, 1, 0, 5] = -np.inf
    out = F.avg_pool2d(x, 3, 2, 1)
    with np.errstate(invalid="ignore"):
        ref = R.avg_pool2d_ref(x, 3, 2, 1)
    np.testing.assert_allclose(out, ref, rtol=1e-6)
    assert np.isnan(out[0, 0, 0, 0]) and np.isfinite(out[0, 0, 2, 2])
    assert out[0, 1, 1, 1] == np.inf and out[0, 1, 0, 2] == -np.inf


LP_NORMS = [(1, False), (2, False), (3, True), (1.5, True)]


@pytest.mark.parametrize("norm_type,positive", LP_NORMS, ids=[str(n) for n, _ in LP_NORMS])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", unpadded(), ids=ids(unpadded()))
def test_pool_lp_forward_backward(case, dtype, norm_type, positive):
    rng = np.random.default_rng(_seed(case, 2))
    x = rand(rng, case["shape"], dtype)
    if positive:
        x = (np.abs(x) + 0.25).astype(dtype)
    kw = window_args(case, dilation=False)
    del kw["padding"]
    ref = R.lp_pool2d_ref(x, norm_type, **kw)
    _check(F.lp_pool2d(x, norm_type, **kw), ref, dtype, "lp_pool2d", 9)
    g = rand(rng, ref.shape, dtype)
    _check(F.lp_pool2d_backward(g, x, norm_type, **kw),
           R.lp_pool2d_backward_ref(g, x, norm_type, **kw), dtype, "lp_pool2d_backward", 9)


def test_pool_lp_negative_windows_and_zero_windows():
    rng = np.random.default_rng(14)
    x = rng.standard_normal((2, 2, 6, 6))
    x[0, 0, :3, :3] = 0.0                          # zero window: zero gradient
    ref = R.lp_pool2d_ref(x, 3, 3)
    out = F.lp_pool2d(x, 3, 3)
    assert np.isnan(ref).any()                     # negative power sums: NaN, as torch
    np.testing.assert_allclose(out, ref, rtol=1e-12)
    g = rng.standard_normal(out.shape)
    dx = F.lp_pool2d_backward(g, x, 3, 3)
    np.testing.assert_allclose(dx, R.lp_pool2d_backward_ref(g, x, 3, 3), rtol=1e-10, atol=1e-14)
    assert (dx[0, 0, :3, :3] == 0).all()


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_pool_lp_inf_is_max_of_abs(dtype):
    rng = np.random.default_rng(15)
    x = _distinct(rng, (2, 3, 7, 7), dtype)
    ref, _ = R.max_pool2d_ref(np.abs(x), 2, 2, 0, 1, True)
    assert np.array_equal(F.lp_pool2d(x, float("inf"), 2, ceil_mode=True), ref)
    g = rng.standard_normal(ref.shape).astype(dtype)
    want = R.max_pool2d_backward_ref(g, np.abs(x), 2, 2, 0, 1, True) * np.sign(x)
    assert_close(F.lp_pool2d_backward(g, x, float("inf"), 2, ceil_mode=True), want, 1e-14)


# ---------------------------------------------------------------------------
# adaptive
# ---------------------------------------------------------------------------

ADAPTIVE = [
    ((2, 3, 10, 10), 3), ((2, 3, 5, 5), 7), ((2, 2, 10, 5), (3, 7)), ((1, 4, 7, 9), (1, 1)),
    ((2, 3, 8, 6), (None, 4)), ((2, 3, 8, 6), (5, None)), ((3, 9, 7), (4, 3)),
    ((2, 3, 8, 8), 4), ((1, 2, 6, 6), (6, 6)),
]
ADAPTIVE_IDS = [f"{'x'.join(map(str, s))}->{o}" for s, o in ADAPTIVE]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("shape,output_size", ADAPTIVE, ids=ADAPTIVE_IDS)
def test_pool_adaptive_forward_backward(shape, output_size, dtype):
    rng = np.random.default_rng(zlib.crc32(repr((shape, output_size)).encode()))
    x = rand(rng, shape, dtype)
    ref = R.adaptive_avg_pool2d_ref(x, output_size)
    n = shape[-1] * shape[-2]
    _check(F.adaptive_avg_pool2d(x, output_size), ref, dtype, "adaptive_avg_pool2d", n)
    g = rand(rng, ref.shape, dtype)
    _check(F.adaptive_avg_pool2d_backward(g, x, output_size),
           R.adaptive_avg_pool2d_backward_ref(g, x, output_size), dtype,
           "adaptive_avg_pool2d_backward", n)
    xd = _distinct(rng, shape, dtype)
    ref_out, ref_idx = R.adaptive_max_pool2d_ref(xd, output_size)
    out, idx = F.adaptive_max_pool2d(xd, output_size, return_indices=True)
    assert np.array_equal(out, ref_out.astype(dtype)) and np.array_equal(idx, ref_idx)
    assert np.array_equal(F.adaptive_max_pool2d(xd, output_size), out)
    want = R.adaptive_max_pool2d_backward_ref(g, xd, output_size)
    _check(F.adaptive_max_pool2d_backward(g, xd, output_size), want, dtype, "adaptive max bwd", n)
    _check(F.adaptive_max_pool2d_backward(g, xd, output_size, indices=idx), want, dtype,
           "adaptive max bwd (indices)", n)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_pool_global_average(dtype):
    x = rand(np.random.default_rng(16), (4, 6, 7, 7), dtype)
    out = F.adaptive_avg_pool2d(x, (1, 1))
    assert out.shape == (4, 6, 1, 1)
    _check(out, x.astype(np.float64).mean(axis=(2, 3), keepdims=True), dtype, "global avg", 49)
    g = rand(np.random.default_rng(17), out.shape, dtype)
    _check(F.adaptive_avg_pool2d_backward(g, x, 1),
           np.broadcast_to(g.astype(np.float64) / 49, x.shape), dtype, "global avg bwd", 49)


@pytest.mark.usefixtures("cpu_isa")
@pytest.mark.parametrize("hw", [(1, 1), (1, 7), (2, 4), (3, 3), (1, 9), (4, 4), (7, 7), (5, 13)],
                         ids=lambda hw: f"{hw[0]}x{hw[1]}")
def test_pool_global_average_float32_rounds_the_exact_mean(hw):
    """float32 planes are summed in double: with values whose double sums are exact (multiples
    of 2^-12 below 2^8), every mean is the float64 mean rounded once to float32, bit for bit,
    whatever the plane count (around the kernel's groups of 8) and thread count; a NaN or an
    infinity reaches its own plane's mean and no other."""
    rng = np.random.default_rng(zlib.crc32(repr(hw).encode()))
    before = fastconv.get_num_threads()
    try:
        for n, c in [(1, 1), (1, 7), (3, 5), (2, 8), (1, 17), (9, 61)]:
            k = rng.integers(-2**20, 2**20, size=(n, c) + hw)
            x = (k * 2.0**-12).astype(np.float32)
            x.flat[0], x.flat[-1] = np.nan, np.inf
            want = (x.astype(np.float64).sum(axis=(2, 3), keepdims=True) / (hw[0] * hw[1]))
            want = want.astype(np.float32)
            for threads in (1, 2, 3):
                fastconv.set_num_threads(threads)
                got = F.adaptive_avg_pool2d(x, 1)
                assert np.array_equal(got, want, equal_nan=True), (n, c, threads)
    finally:
        fastconv.set_num_threads(before)


# ---------------------------------------------------------------------------
# mixed
# ---------------------------------------------------------------------------

MIXED = [c for c in undilated() if not c["ceil_mode"]]


MIXED_ALPHAS = [(c, 0.3) for c in MIXED] + [(MIXED[0], 0.0), (MIXED[0], 1.0)]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case,alpha", MIXED_ALPHAS,
                         ids=[f"{c['id']}-alpha{a}" for c, a in MIXED_ALPHAS])
def test_pool_mixed_forward_backward(case, dtype, alpha):
    rng = np.random.default_rng(_seed(case, 3))
    x = _distinct(rng, case["shape"], dtype)
    kw = window_args(case, dilation=False, ceil=False)
    ref = R.mixed_pool2d_ref(x, **kw, alpha=alpha)
    _check(F.mixed_pool2d(x, **kw, alpha=alpha), ref, dtype, "mixed_pool2d", 9)
    g = rand(rng, ref.shape, dtype)
    _check(F.mixed_pool2d_backward(g, x, **kw, alpha=alpha),
           R.mixed_pool2d_backward_ref(g, x, **kw, alpha=alpha), dtype, "mixed backward", 9)


def test_pool_mixed_random_alpha():
    x = _distinct(np.random.default_rng(18), (2, 3, 8, 8), np.float64)
    out, alpha = F.mixed_pool2d(x, 2, alpha=None, generator=np.random.default_rng(5))
    assert alpha == np.random.default_rng(5).random()
    assert_close(out, R.mixed_pool2d_ref(x, 2, alpha=alpha), 1e-12)
    out2, alpha2 = F.mixed_pool2d(x, 2, alpha=None, generator=np.random.default_rng(5))
    assert alpha2 == alpha and np.array_equal(out2, out)
    fastconv.manual_seed(3)
    _, a1 = F.mixed_pool2d(x, 2, alpha=None)
    fastconv.manual_seed(3)
    _, a2 = F.mixed_pool2d(x, 2, alpha=None)
    assert a1 == a2 and 0 <= a1 < 1
    g = np.random.default_rng(19).standard_normal(out.shape)
    assert_close(F.mixed_pool2d_backward(g, x, 2, alpha=alpha),
                 R.mixed_pool2d_backward_ref(g, x, 2, alpha=alpha), 1e-12)
    assert isinstance(F.mixed_pool2d(x, 2), np.ndarray)


# ---------------------------------------------------------------------------
# every output element written, inputs untouched, layouts, threads
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_pool_outputs_fully_written(dtype):
    """Call the kernels with NaN-poisoned outputs: every element must be overwritten."""
    rng = np.random.default_rng(20)
    x = _distinct(rng, (2, 3, 9, 8), dtype)
    window = ((3, 3), (2, 2), (1, 1), (1, 1), True)
    lp_window = ((3, 3), (2, 2), (0, 0), (1, 1), True)
    mixed_window = ((3, 3), (2, 2), (1, 1), (1, 1), False)

    def poisoned(like, shape, dt=dtype):
        return np.full(shape, -7 if np.dtype(dt) == np.int64 else np.nan, dtype=dt)

    kw = dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)
    g = rand(rng, R.max_pool2d_ref(x, **kw)[0].shape, dtype)
    ga = rand(rng, R.adaptive_avg_pool2d_ref(x, (4, 3)).shape, dtype)
    for name, geo, ref_fn in (("max_pool2d", window, lambda: R.max_pool2d_ref(x, **kw)),
                              ("min_pool2d", window, lambda: R.min_pool2d_ref(x, **kw)),
                              ("adaptive_max_pool2d", (4, 3),
                               lambda: R.adaptive_max_pool2d_ref(x, (4, 3)))):
        out, idx = getattr(_C, name + "_forward")(poisoned, True, x, *geo)
        ref_out, ref_idx = ref_fn()
        assert np.array_equal(out, ref_out.astype(dtype)) and np.array_equal(idx, ref_idx), name
        out, idx = getattr(_C, name + "_forward")(poisoned, False, x, *geo)
        assert idx is None and np.array_equal(out, ref_out.astype(dtype)), f"{name} no indices"
    forward = [
        ("avg_pool2d_forward", (*window, True, None), R.avg_pool2d_ref(x, **kw)),
        ("lp_pool2d_forward", (*lp_window, 2.0), R.lp_pool2d_ref(x, 2, 3, 2, True)),
        ("adaptive_avg_pool2d_forward", (4, 3), R.adaptive_avg_pool2d_ref(x, (4, 3))),
        ("mixed_pool2d_forward", (*mixed_window, 0.4), R.mixed_pool2d_ref(x, 3, 2, 1, 0.4)),
    ]
    for name, args, ref in forward:
        out = getattr(_C, name)(poisoned, x, *args)
        _check(out, ref, dtype, name, 9)
    backward = [
        ("max_pool2d_backward", (g, None, x, *window), R.max_pool2d_backward_ref(g, x, **kw)),
        ("min_pool2d_backward", (g, None, x, *window), R.min_pool2d_backward_ref(g, x, **kw)),
        ("adaptive_max_pool2d_backward", (ga, None, x, 4, 3),
         R.adaptive_max_pool2d_backward_ref(ga, x, (4, 3))),
        ("avg_pool2d_backward", (g, x, *window, True, None),
         R.avg_pool2d_backward_ref(g, x, **kw)),
        ("adaptive_avg_pool2d_backward", (ga, x, 4, 3),
         R.adaptive_avg_pool2d_backward_ref(ga, x, (4, 3))),
    ]
    for name, args, ref in backward:
        dx = getattr(_C, name)(poisoned, *args)
        _check(dx, ref, dtype, name, 9)
    gl = rand(rng, R.lp_pool2d_ref(x, 2, 3, 2, True).shape, dtype)
    dx = _C.lp_pool2d_backward(poisoned, gl, x, *lp_window, 2.0)
    _check(dx, R.lp_pool2d_backward_ref(gl, x, 2, 3, 2, True), dtype, "lp backward", 9)
    gm = rand(rng, R.mixed_pool2d_ref(x, 3, 2, 1, 0.4).shape, dtype)
    dx = _C.mixed_pool2d_backward(poisoned, gm, x, *mixed_window, 0.4)
    _check(dx, R.mixed_pool2d_backward_ref(gm, x, 3, 2, 1, 0.4), dtype, "mixed backward", 9)


def test_pool_inputs_not_modified_and_noncontiguous():
    rng = np.random.default_rng(21)
    base = _distinct(rng, (2, 3, 9, 16), np.float64)
    x = base[:, :, :, ::2]                                   # not contiguous
    keep = x.copy()
    out, idx = F.max_pool2d(x, 3, 2, 1, return_indices=True)
    g = rng.standard_normal(out.shape)
    F.max_pool2d_backward(g, x, 3, 2, 1, indices=idx)
    F.avg_pool2d_backward(g, x, 3, 2, 1)
    F.lp_pool2d(x, 2, 3)
    F.mixed_pool2d_backward(g, x, 3, 2, 1)
    assert np.array_equal(x, keep)
    assert np.array_equal(out, R.max_pool2d_ref(keep, 3, 2, 1)[0])
    assert_close(F.avg_pool2d(x, 3, 2, 1), R.avg_pool2d_ref(keep, 3, 2, 1), 1e-12)


def test_pool_empty_batch():
    x = np.zeros((0, 3, 6, 6), dtype=np.float32)
    assert F.max_pool2d(x, 2).shape == (0, 3, 3, 3)
    assert F.avg_pool2d_backward(np.zeros((0, 3, 3, 3), np.float32), x, 2).shape == x.shape
    assert F.adaptive_avg_pool2d(x, 1).shape == (0, 3, 1, 1)


def test_pool_results_independent_of_threads():
    rng = np.random.default_rng(22)
    x = _distinct(rng, (4, 16, 30, 30), np.float32)
    g = rand(rng, (4, 16, 15, 15), np.float32)
    before = fastconv.get_num_threads()
    results = []
    try:
        for t in (1, 2, 3):
            fastconv.set_num_threads(t)
            results.append([F.max_pool2d(x, 3, 2, 1, return_indices=True)[1],
                            F.avg_pool2d(x, 3, 2, 1), F.avg_pool2d_backward(g, x, 3, 2, 1),
                            F.max_pool2d_backward(g, x, 3, 2, 1),
                            F.adaptive_avg_pool2d(x, 1), F.lp_pool2d_backward(g, x, 2, 2)])
    finally:
        fastconv.set_num_threads(before)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert np.array_equal(a, b)
    assert_close(results[0][2], R.avg_pool2d_backward_ref(g, x, 3, 2, 1), rtol_for(np.float32))


# ---------------------------------------------------------------------------
# rejections: each names the argument
# ---------------------------------------------------------------------------

X = np.zeros((2, 3, 8, 8))
G4 = np.zeros((2, 3, 4, 4))
ERRORS = [
    ("kernel0", lambda: F.max_pool2d(X, 0), ValueError, "kernel_size"),
    ("kernel_neg", lambda: F.avg_pool2d(X, (2, -1)), ValueError, "kernel_size"),
    ("kernel_triple", lambda: F.avg_pool2d(X, (2, 2, 2)), ValueError, "kernel_size"),
    ("kernel_float", lambda: F.max_pool2d(X, 2.0), TypeError, "kernel_size"),
    ("stride0", lambda: F.max_pool2d(X, 2, 0), ValueError, "stride"),
    ("stride0_min", lambda: F.min_pool2d(X, 2, (1, 0)), ValueError, "stride"),
    ("dilation0", lambda: F.max_pool2d(X, 2, dilation=0), ValueError, "dilation"),
    ("padding_neg", lambda: F.avg_pool2d(X, 2, padding=-1), ValueError, "padding"),
    ("padding_over_half", lambda: F.max_pool2d(X, 3, padding=2), ValueError, "padding"),
    ("padding_over_half_w", lambda: F.avg_pool2d(X, (4, 2), padding=(2, 2)), ValueError,
     "padding"),
    ("padding_mixed", lambda: F.mixed_pool2d(X, 2, padding=2), ValueError, "padding"),
    ("output_too_small", lambda: F.max_pool2d(X, 9), ValueError, "output size"),
    ("output_too_small_lp", lambda: F.lp_pool2d(X, 2, (2, 9)), ValueError, "output size"),
    ("input_2d", lambda: F.max_pool2d(np.zeros((8, 8)), 2), ValueError, "input"),
    ("input_5d", lambda: F.avg_pool2d(np.zeros((1, 2, 3, 8, 8)), 2), ValueError, "input"),
    ("input_5d_adaptive", lambda: F.adaptive_avg_pool2d(np.zeros((1, 2, 3, 8, 8)), 2),
     ValueError, "input"),
    ("input_empty_channels", lambda: F.max_pool2d(np.zeros((2, 0, 8, 8)), 2), ValueError,
     "input"),
    ("input_int", lambda: F.max_pool2d(np.zeros((2, 3, 8, 8), np.int32), 2), TypeError, "input"),
    ("input_list", lambda: F.avg_pool2d([[[[1.0]]]], 1), TypeError, "input"),
    ("indices_shape", lambda: F.max_pool2d_backward(G4, X, 2, indices=np.zeros((2, 3, 4, 3),
                                                                               np.int64)),
     ValueError, "indices"),
    ("indices_dtype", lambda: F.max_pool2d_backward(G4, X, 2, indices=np.zeros(G4.shape,
                                                                               np.int32)),
     TypeError, "indices"),
    ("indices_range", lambda: F.max_pool2d_backward(G4, X, 2, indices=np.full(G4.shape, 64)),
     ValueError, "indices"),
    ("indices_negative", lambda: F.min_pool2d_backward(G4, X, 2, indices=np.full(G4.shape, -1)),
     ValueError, "indices"),
    ("indices_adaptive", lambda: F.adaptive_max_pool2d_backward(
        G4, X, 4, indices=np.zeros((2, 3, 4), np.int64)), ValueError, "indices"),
    ("grad_output_shape", lambda: F.avg_pool2d_backward(np.zeros((2, 3, 4, 5)), X, 2),
     ValueError, "grad_output"),
    ("grad_output_shape_max", lambda: F.max_pool2d_backward(np.zeros((2, 3, 3, 3)), X, 2),
     ValueError, "grad_output"),
    ("grad_output_dtype", lambda: F.lp_pool2d_backward(G4.astype(np.float32), X, 2, 2),
     TypeError, "grad_output"),
    ("adaptive_zero", lambda: F.adaptive_avg_pool2d(X, 0), ValueError, "output_size"),
    ("adaptive_negative", lambda: F.adaptive_max_pool2d(X, (2, -1)), ValueError, "output_size"),
    ("adaptive_triple", lambda: F.adaptive_avg_pool2d(X, (1, 2, 3)), ValueError, "output_size"),
    ("adaptive_bwd_zero", lambda: F.adaptive_avg_pool2d_backward(G4, X, (4, 0)), ValueError,
     "output_size"),
    ("alpha_high", lambda: F.mixed_pool2d(X, 2, alpha=1.5), ValueError, "alpha"),
    ("alpha_negative", lambda: F.mixed_pool2d(X, 2, alpha=-0.1), ValueError, "alpha"),
    ("alpha_nan", lambda: F.mixed_pool2d_backward(G4, X, 2, alpha=float("nan")), ValueError,
     "alpha"),
    ("alpha_none_backward", lambda: F.mixed_pool2d_backward(G4, X, 2, alpha=None), TypeError,
     "alpha"),
    ("alpha_string", lambda: F.mixed_pool2d(X, 2, alpha="half"), TypeError, "alpha"),
    ("generator_type", lambda: F.mixed_pool2d(X, 2, alpha=None, generator=3), TypeError,
     "generator"),
    ("norm_zero", lambda: F.lp_pool2d(X, 0, 2), ValueError, "norm_type"),
    ("norm_negative", lambda: F.lp_pool2d(X, -1.0, 2), ValueError, "norm_type"),
    ("norm_minus_inf", lambda: F.lp_pool2d(X, float("-inf"), 2), ValueError, "norm_type"),
    ("norm_nan_backward", lambda: F.lp_pool2d_backward(G4, X, float("nan"), 2), ValueError,
     "norm_type"),
    ("norm_string", lambda: F.lp_pool2d(X, "2", 2), TypeError, "norm_type"),
    ("divisor_zero", lambda: F.avg_pool2d(X, 2, divisor_override=0), ValueError,
     "divisor_override"),
    ("divisor_zero_backward", lambda: F.avg_pool2d_backward(G4, X, 2, divisor_override=0),
     ValueError, "divisor_override"),
    # Flags are bools, as in PyTorch: these were read as bool(value), "False" as True.
    ("ceil_mode_int", lambda: F.max_pool2d(X, 2, ceil_mode=1), TypeError, "ceil_mode"),
    ("ceil_mode_str", lambda: F.lp_pool2d_backward(G4, X, 2, 2, ceil_mode="False"), TypeError,
     "ceil_mode"),
    ("count_include_pad_none", lambda: F.avg_pool2d(X, 2, count_include_pad=None), TypeError,
     "count_include_pad"),
    ("return_indices_str", lambda: F.adaptive_max_pool2d(X, 2, return_indices="no"), TypeError,
     "return_indices"),
]


@pytest.mark.parametrize("call,exc,match", [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_pool_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_pool_error_messages_show_shapes():
    with pytest.raises(ValueError, match=r"\(2, 3, 4, 4\).*\(2, 3, 4, 5\)"):
        F.avg_pool2d_backward(np.zeros((2, 3, 4, 5)), X, 2)
    with pytest.raises(ValueError, match=r"\(8, 8\)"):
        F.max_pool2d(np.zeros((8, 8)), 2)


def test_pool_kernels_refuse_geometry_they_cannot_honour():
    x = np.zeros((1, 2, 9, 9))
    with pytest.raises(ValueError, match="dilation"):
        _C.avg_pool2d_forward(empty, x, (3, 3), (1, 1), (1, 1), (2, 2), False, True, None)
    with pytest.raises(ValueError, match="padding"):
        _C.lp_pool2d_forward(empty, x, (3, 3), (2, 2), (1, 1), (1, 1), False, 2.0)
    with pytest.raises(ValueError, match="ceil_mode"):
        _C.mixed_pool2d_forward(empty, x, (2, 2), (2, 2), (0, 0), (1, 1), True, 0.5)


def test_lp_pool_with_infinite_norm_refuses_complex_input():
    """abs() turned complex input into magnitudes before the dtype check: pooled silently."""
    z = (np.arange(16).reshape(1, 1, 4, 4) * (1 + 1j)).astype(np.complex64)
    with pytest.raises(TypeError, match="lp_pool2d"):
        F.lp_pool2d(z, float("inf"), 2)
    with pytest.raises(TypeError, match="lp_pool2d_backward"):
        F.lp_pool2d_backward(np.ones((1, 1, 2, 2), np.complex64), z, float("inf"), 2)
