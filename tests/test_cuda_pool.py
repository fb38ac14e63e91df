"""Pooling on the GPU: CuPy in, CuPy out, against the float64 NumPy reference and the CPU kernel
on the shared case table (ceil_mode, padding, dilation, overlapping windows, 3-D input, batch 1),
NaN/inf and ties, large windows and a large batch. Outputs are poisoned.

One deliberate difference: an index outside its input plane makes the CPU backward raise, while
the GPU drops its gradient (raising would need a device-to-host synchronisation)."""

import numpy as np
import pytest

import fastconv.functional as F

from fastconv._opinfo import pool as R
from _cuda import cover, covering, cp, dev, host, requires_cuda
from _util import assert_close, rand, rtol_for, stable_seed
from fastconv._opinfo.pool import POOL_CASES, POOL_CASE_IDS, ids, undilated, unpadded, window_args
from test_pool import (ADAPTIVE, ADAPTIVE_IDS, AVG_MODE_IDS, AVG_MODES, DTYPE_IDS, DTYPES,
                       EXTREME, LP_NORMS, MIXED_ALPHAS, _distinct)

pytestmark = requires_cuda

# kernel_cover: padding with ceil_mode (max, min, avg), overlapping windows (lp, mixed).
POOL_BY_ID = {c["id"]: c for c in POOL_CASES}
PADDED_CEIL, OVERLAP = POOL_BY_ID["k3s2p1_8x9_ceil"], POOL_BY_ID["k3s2_overlap"]


def _on_gpu(y, dtype):
    assert isinstance(y, cp.ndarray) and y.dtype == dtype, f"{type(y)} {y.dtype}"
    return host(y)


def _match(got, want, cpu, dtype, what, length=9):
    """got (CuPy) against the float64 reference and the CPU kernel's result."""
    got = _on_gpu(got, dtype)
    assert_close(got, want, rtol_for(dtype, length), what=what)
    assert_close(got, cpu, rtol_for(dtype, length), what=f"{what} vs CPU")


# ---------------------------------------------------------------------------
# max / min
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("op", ["max", "min"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", covering(POOL_CASES, PADDED_CEIL), ids=POOL_CASE_IDS)
def test_pool_extreme_gpu(case, dtype, op, poisoned):
    fwd, bwd, fwd_ref, bwd_ref = EXTREME[op]
    rng = np.random.default_rng(stable_seed(case["id"], op))
    x = _distinct(rng, case["shape"], dtype)
    kw = window_args(case)
    ref_out, ref_idx = fwd_ref(x, **kw)
    out, idx = fwd(dev(x), **kw, return_indices=True)
    assert np.array_equal(_on_gpu(out, dtype), ref_out.astype(dtype))
    assert np.array_equal(_on_gpu(idx, np.int64), ref_idx)
    assert np.array_equal(host(fwd(dev(x), **kw)), host(out))
    g = rand(rng, ref_out.shape, dtype)
    want, cpu = bwd_ref(g, x, **kw), bwd(g, x, **kw)
    _match(bwd(dev(g), dev(x), **kw), want, cpu, dtype, f"{op} backward (recomputed argmax)")
    _match(bwd(dev(g), dev(x), **kw, indices=idx), want, cpu, dtype, f"{op} backward (indices)")


@pytest.mark.parametrize("op", ["max", "min"])
def test_pool_extreme_ties_first_wins_gpu(op, poisoned):
    fwd, bwd, fwd_ref, bwd_ref = EXTREME[op]
    rng = np.random.default_rng(11)
    x = rng.integers(0, 3, (2, 3, 9, 10)).astype(np.float64)
    for kw in (dict(kernel_size=3, stride=2, padding=1), dict(kernel_size=(2, 3), ceil_mode=True),
               dict(kernel_size=3, stride=1, dilation=2)):
        out, idx = fwd(dev(x), **kw, return_indices=True)
        ref_out, ref_idx = fwd_ref(x, **kw)
        assert np.array_equal(host(out), ref_out) and np.array_equal(host(idx), ref_idx), kw
        g = rng.standard_normal(ref_out.shape)
        assert_close(host(bwd(dev(g), dev(x), **kw)), bwd_ref(g, x, **kw), 1e-12)


@pytest.mark.parametrize("op", ["max", "min"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_pool_extreme_nan_and_inf_gpu(op, dtype, poisoned):
    """A NaN wins, the last one in scan order; exact equality with the CPU, NaNs included."""
    fwd, bwd, fwd_ref, bwd_ref = EXTREME[op]
    rng = np.random.default_rng(12)
    x = _distinct(rng, (2, 2, 7, 8), dtype)
    x[0, 0, 1, 1] = np.nan
    x[0, 0, 1, 2] = np.nan
    x[0, 1, 4, 4] = np.inf
    x[1, 0, 2, 5] = -np.inf
    x[1, 1, 5, 6] = np.nan
    for kw in (dict(kernel_size=3, stride=2, padding=1), dict(kernel_size=2, ceil_mode=True),
               dict(kernel_size=3, stride=1, dilation=2)):
        out, idx = fwd(dev(x), **kw, return_indices=True)
        cpu_out, cpu_idx = fwd(x, **kw, return_indices=True)
        ref_out, ref_idx = fwd_ref(x, **kw)
        np.testing.assert_array_equal(host(out), cpu_out)
        np.testing.assert_array_equal(host(out), ref_out.astype(dtype))
        np.testing.assert_array_equal(host(idx), cpu_idx)
        np.testing.assert_array_equal(host(idx), ref_idx)
        assert np.isnan(host(out)).sum() > 0
        g = rand(rng, cpu_out.shape, dtype)
        want = bwd_ref(g, x, **kw)
        np.testing.assert_allclose(host(bwd(dev(g), dev(x), **kw)), want, rtol=1e-6)
        np.testing.assert_allclose(host(bwd(dev(g), dev(x), **kw, indices=idx)), want, rtol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_pool_max_padding_never_wins_gpu(dtype, poisoned):
    x = -(np.arange(1, 1 + 2 * 3 * 5 * 6).reshape(2, 3, 5, 6).astype(dtype))
    out, idx = F.max_pool2d(dev(x), 3, 1, 1, return_indices=True)
    ref_out, ref_idx = R.max_pool2d_ref(x, 3, 1, 1)
    assert np.array_equal(host(out), ref_out.astype(dtype)) and np.array_equal(host(idx), ref_idx)
    out = F.max_pool2d(dev(np.full((1, 1, 3, 3), -np.inf, dtype)), 2, 1, 1)
    assert (host(out) == -np.inf).all()


def test_pool_max_empty_dilated_windows_gpu(poisoned):
    """Windows holding no pixel (dilation skips them all): -inf and the window start as index,
    and the gradient goes where the CPU (and torch's CPU kernel) sends it when that start lies
    inside the plane, with and without indices."""
    x = np.arange(8, dtype=np.float64).reshape(1, 1, 8, 1) / 7 - 3
    args = ((2, 3), (2, 3), (1, 1), (2, 2), True)
    y, idx = F.max_pool2d(x, *args, return_indices=True)
    yd, idxd = F.max_pool2d(dev(x), *args, return_indices=True)
    np.testing.assert_array_equal(host(yd), y)
    np.testing.assert_array_equal(host(idxd), idx)
    g = np.arange(1, y.size + 1, dtype=np.float64).reshape(y.shape)
    want = F.max_pool2d_backward(g, x, *args)
    assert want.any()
    np.testing.assert_array_equal(host(F.max_pool2d_backward(dev(g), dev(x), *args)), want)
    np.testing.assert_array_equal(
        host(F.max_pool2d_backward(dev(g), dev(x), *args, indices=idxd)), want)


def test_pool_max_backward_caller_indices_gpu(poisoned):
    """Indices the forward would not produce: inside the plane they receive their gradient as on
    the CPU (also outside their window); outside it the CPU raises and the GPU drops them."""
    rng = np.random.default_rng(23)
    x = rand(rng, (2, 3, 9, 8), np.float64)
    kw = dict(kernel_size=3, stride=2, padding=1)
    g = rng.standard_normal((2, 3, 5, 4))
    anywhere = rng.integers(0, 9 * 8, g.shape)
    want = F.max_pool2d_backward(g, x, **kw, indices=anywhere)
    assert_close(host(F.max_pool2d_backward(dev(g), dev(x), **kw, indices=dev(anywhere))), want,
                 1e-12)
    bad = anywhere.copy()
    bad[0, 1, 2, 3], bad[1, 2, 0, 0] = 9 * 8, -1
    with pytest.raises(ValueError, match="indices must lie in"):
        F.max_pool2d_backward(g, x, **kw, indices=bad)
    dropped = g.copy()
    dropped[0, 1, 2, 3] = dropped[1, 2, 0, 0] = 0
    want = F.max_pool2d_backward(dropped, x, **kw, indices=anywhere)
    assert_close(host(F.max_pool2d_backward(dev(g), dev(x), **kw, indices=dev(bad))), want, 1e-12)


# ---------------------------------------------------------------------------
# avg / lp
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("count_include_pad,divisor_override", AVG_MODES, ids=AVG_MODE_IDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", covering(undilated(), PADDED_CEIL), ids=ids(undilated()))
def test_pool_avg_gpu(case, dtype, count_include_pad, divisor_override, poisoned):
    rng = np.random.default_rng(stable_seed(case["id"], "avg"))
    x = rand(rng, case["shape"], dtype)
    kw = dict(window_args(case, dilation=False), count_include_pad=count_include_pad,
              divisor_override=divisor_override)
    _match(F.avg_pool2d(dev(x), **kw), R.avg_pool2d_ref(x, **kw), F.avg_pool2d(x, **kw), dtype,
           "avg_pool2d")
    g = rand(rng, host(F.avg_pool2d(dev(x), **kw)).shape, dtype)
    _match(F.avg_pool2d_backward(dev(g), dev(x), **kw), R.avg_pool2d_backward_ref(g, x, **kw),
           F.avg_pool2d_backward(g, x, **kw), dtype, "avg_pool2d_backward")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_pool_avg_nan_inf_propagate_gpu(dtype, poisoned):
    x = rand(np.random.default_rng(13), (1, 2, 6, 6), dtype)
    x[0, 0, 0, 0] = np.nan
    x[0, 1, 3, 3] = np.inf
    x[0, 1, 0, 5] = -np.inf
    out = host(F.avg_pool2d(dev(x), 3, 2, 1))
    np.testing.assert_allclose(out, F.avg_pool2d(x, 3, 2, 1), rtol=1e-6)
    assert np.isnan(out[0, 0, 0, 0]) and out[0, 1, 1, 1] == np.inf and out[0, 1, 0, 2] == -np.inf


@pytest.mark.parametrize("norm_type,positive", LP_NORMS, ids=[str(n) for n, _ in LP_NORMS])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", covering(unpadded(), OVERLAP), ids=ids(unpadded()))
def test_pool_lp_gpu(case, dtype, norm_type, positive, poisoned):
    rng = np.random.default_rng(stable_seed(case["id"], "lp"))
    x = rand(rng, case["shape"], dtype)
    if positive:
        x = (np.abs(x) + 0.25).astype(dtype)
    kw = window_args(case, dilation=False)
    del kw["padding"]
    ref = R.lp_pool2d_ref(x, norm_type, **kw)
    _match(F.lp_pool2d(dev(x), norm_type, **kw), ref, F.lp_pool2d(x, norm_type, **kw), dtype,
           "lp_pool2d")
    g = rand(rng, ref.shape, dtype)
    _match(F.lp_pool2d_backward(dev(g), dev(x), norm_type, **kw),
           R.lp_pool2d_backward_ref(g, x, norm_type, **kw),
           F.lp_pool2d_backward(g, x, norm_type, **kw), dtype, "lp_pool2d_backward")


def test_pool_lp_negative_windows_and_zero_windows_gpu(poisoned):
    rng = np.random.default_rng(14)
    x = rng.standard_normal((2, 2, 6, 6))
    x[0, 0, :3, :3] = 0.0
    out = host(F.lp_pool2d(dev(x), 3, 3))
    cpu = F.lp_pool2d(x, 3, 3)
    assert np.isnan(cpu).any()
    np.testing.assert_allclose(out, cpu, rtol=1e-12)
    g = rng.standard_normal(out.shape)
    dx = host(F.lp_pool2d_backward(dev(g), dev(x), 3, 3))
    np.testing.assert_allclose(dx, F.lp_pool2d_backward(g, x, 3, 3), rtol=1e-10, atol=1e-14)
    assert (dx[0, 0, :3, :3] == 0).all()


def test_pool_lp_inf_is_max_of_abs_gpu(poisoned):
    rng = np.random.default_rng(15)
    x = _distinct(rng, (2, 3, 7, 7), np.float64)
    ref, _ = R.max_pool2d_ref(np.abs(x), 2, 2, 0, 1, True)
    assert np.array_equal(host(F.lp_pool2d(dev(x), float("inf"), 2, ceil_mode=True)), ref)
    g = rng.standard_normal(ref.shape)
    want = R.max_pool2d_backward_ref(g, np.abs(x), 2, 2, 0, 1, True) * np.sign(x)
    assert_close(host(F.lp_pool2d_backward(dev(g), dev(x), float("inf"), 2, ceil_mode=True)),
                 want, 1e-14)


# ---------------------------------------------------------------------------
# adaptive
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("shape,output_size",
                         covering(ADAPTIVE, ((2, 2, 10, 5), (3, 7)), spread=True),
                         ids=ADAPTIVE_IDS)
def test_pool_adaptive_gpu(shape, output_size, dtype, poisoned):
    rng = np.random.default_rng(stable_seed(shape, output_size))
    x = rand(rng, shape, dtype)
    n = shape[-1] * shape[-2]
    ref = R.adaptive_avg_pool2d_ref(x, output_size)
    _match(F.adaptive_avg_pool2d(dev(x), output_size), ref, F.adaptive_avg_pool2d(x, output_size),
           dtype, "adaptive_avg_pool2d", n)
    g = rand(rng, ref.shape, dtype)
    _match(F.adaptive_avg_pool2d_backward(dev(g), dev(x), output_size),
           R.adaptive_avg_pool2d_backward_ref(g, x, output_size),
           F.adaptive_avg_pool2d_backward(g, x, output_size), dtype, "adaptive avg backward", n)
    xd = _distinct(rng, shape, dtype)
    ref_out, ref_idx = R.adaptive_max_pool2d_ref(xd, output_size)
    out, idx = F.adaptive_max_pool2d(dev(xd), output_size, return_indices=True)
    assert np.array_equal(_on_gpu(out, dtype), ref_out.astype(dtype))
    assert np.array_equal(host(idx), ref_idx)
    want, cpu = (R.adaptive_max_pool2d_backward_ref(g, xd, output_size),
                 F.adaptive_max_pool2d_backward(g, xd, output_size))
    _match(F.adaptive_max_pool2d_backward(dev(g), dev(xd), output_size), want, cpu, dtype,
           "adaptive max backward", n)
    _match(F.adaptive_max_pool2d_backward(dev(g), dev(xd), output_size, indices=idx), want, cpu,
           dtype, "adaptive max backward (indices)", n)


# Windows of 64 pixels or more are summed by a warp per output rather than a thread.
LARGE_WINDOWS = [((4, 6, 7, 7), 1), ((2, 3, 40, 33), 1), ((1, 2, 64, 48), (3, 2)),
                 ((2, 5, 17, 19), (2, 1))]
LARGE_WINDOW_IDS = [f"{'x'.join(map(str, s))}->{o}" for s, o in LARGE_WINDOWS]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("shape,output_size",
                         covering(LARGE_WINDOWS, ((2, 5, 17, 19), (2, 1)), spread=True),
                         ids=LARGE_WINDOW_IDS)
def test_pool_large_windows_gpu(shape, output_size, dtype, poisoned):
    rng = np.random.default_rng(stable_seed(shape, output_size, "large"))
    x = rand(rng, shape, dtype)
    n = shape[-1] * shape[-2]
    _match(F.adaptive_avg_pool2d(dev(x), output_size), R.adaptive_avg_pool2d_ref(x, output_size),
           F.adaptive_avg_pool2d(x, output_size), dtype, "adaptive_avg_pool2d", n)
    kw = dict(kernel_size=(shape[-2] // 2 + 1, shape[-1] // 2), stride=(3, 2), padding=(2, 1),
              ceil_mode=True)
    _match(F.avg_pool2d(dev(x), **kw), R.avg_pool2d_ref(x, **kw), F.avg_pool2d(x, **kw), dtype,
           "avg_pool2d", n)
    xp = (np.abs(x) + 0.25).astype(dtype)
    kw = dict(kernel_size=(shape[-2] // 2 + 1, shape[-1] // 2), stride=2)
    ref = R.lp_pool2d_ref(xp, 2, **kw)
    _match(F.lp_pool2d(dev(xp), 2, **kw), ref, F.lp_pool2d(xp, 2, **kw), dtype, "lp_pool2d", n)
    g = rand(rng, ref.shape, dtype)
    _match(F.lp_pool2d_backward(dev(g), dev(xp), 2, **kw), R.lp_pool2d_backward_ref(g, xp, 2, **kw),
           F.lp_pool2d_backward(g, xp, 2, **kw), dtype, "lp_pool2d_backward", n)
    xd = _distinct(rng, shape, dtype)
    ref_out, ref_idx = R.adaptive_max_pool2d_ref(xd, output_size)
    out, idx = F.adaptive_max_pool2d(dev(xd), output_size, return_indices=True)
    assert np.array_equal(host(out), ref_out.astype(dtype)) and np.array_equal(host(idx), ref_idx)


# ---------------------------------------------------------------------------
# mixed
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case,alpha", covering(MIXED_ALPHAS, (OVERLAP, 0.3), spread=True),
                         ids=[f"{c['id']}-alpha{a}" for c, a in MIXED_ALPHAS])
def test_pool_mixed_gpu(case, dtype, alpha, poisoned):
    rng = np.random.default_rng(stable_seed(case["id"], "mixed"))
    x = _distinct(rng, case["shape"], dtype)
    kw = window_args(case, dilation=False, ceil=False)
    ref = R.mixed_pool2d_ref(x, **kw, alpha=alpha)
    _match(F.mixed_pool2d(dev(x), **kw, alpha=alpha), ref, F.mixed_pool2d(x, **kw, alpha=alpha),
           dtype, "mixed_pool2d")
    g = rand(rng, ref.shape, dtype)
    _match(F.mixed_pool2d_backward(dev(g), dev(x), **kw, alpha=alpha),
           R.mixed_pool2d_backward_ref(g, x, **kw, alpha=alpha),
           F.mixed_pool2d_backward(g, x, **kw, alpha=alpha), dtype, "mixed_pool2d_backward")


def test_pool_mixed_random_alpha_gpu(poisoned):
    x = _distinct(np.random.default_rng(18), (2, 3, 8, 8), np.float64)
    out, alpha = F.mixed_pool2d(dev(x), 2, alpha=None, generator=np.random.default_rng(5))
    assert alpha == np.random.default_rng(5).random()
    assert_close(_on_gpu(out, np.float64), R.mixed_pool2d_ref(x, 2, alpha=alpha), 1e-12)


# ---------------------------------------------------------------------------
# large batch, determinism, empty batch, devices
# ---------------------------------------------------------------------------

def _large_batch_results(x, g, gi):
    out, idx = F.max_pool2d(x, 3, 2, 1, return_indices=True)
    return [out, idx,
            F.max_pool2d_backward(g, x, 3, 2, 1),
            F.max_pool2d_backward(g, x, 3, 2, 1, indices=idx),
            F.avg_pool2d(x, 3, 2, 1),
            F.avg_pool2d_backward(g, x, 3, 2, 1),
            F.lp_pool2d_backward(g, x, 1, 2, ceil_mode=True),
            F.mixed_pool2d_backward(g, x, 3, 2, 1),
            F.adaptive_avg_pool2d(x, 1),
            F.adaptive_avg_pool2d_backward(gi, x, 1)]


def test_pool_large_batch_matches_cpu_and_is_deterministic(poisoned):
    rng = np.random.default_rng(22)
    x = _distinct(rng, (64, 16, 30, 30), np.float32)
    g = rand(rng, (64, 16, 15, 15), np.float32)
    gi = rand(rng, (64, 16, 1, 1), np.float32)
    cpu = _large_batch_results(x, g, gi)
    first = [host(a) for a in _large_batch_results(dev(x), dev(g), dev(gi))]
    again = [host(a) for a in _large_batch_results(dev(x), dev(g), dev(gi))]
    for i, (a, b, c) in enumerate(zip(first, again, cpu)):
        assert np.array_equal(a, b), f"result {i} differs between two identical calls"
        if a.dtype == np.int64:
            assert np.array_equal(a, c), f"indices {i}"
        else:
            assert_close(a, c, rtol_for(np.float32, 900), what=f"result {i} vs CPU")


def test_pool_empty_batch_gpu():
    x = dev(np.zeros((0, 3, 6, 6), dtype=np.float32))
    assert F.max_pool2d(x, 2).shape == (0, 3, 3, 3)
    g = dev(np.zeros((0, 3, 3, 3), np.float32))
    assert F.max_pool2d_backward(g, x, 2).shape == x.shape
    assert F.avg_pool2d_backward(g, x, 2).shape == x.shape
    assert F.lp_pool2d_backward(g, x, 2, 2).shape == x.shape
    assert F.mixed_pool2d_backward(g, x, 2).shape == x.shape
    assert F.adaptive_avg_pool2d(x, 1).shape == (0, 3, 1, 1)


def test_pool_devices_do_not_mix():
    x = np.zeros((2, 3, 8, 8), np.float32)
    g = np.zeros((2, 3, 4, 4), np.float32)
    with pytest.raises(ValueError, match="grad_output is on the CPU"):
        F.avg_pool2d_backward(g, dev(x), 2)
    with pytest.raises(ValueError, match="grad_output is on the GPU"):
        F.max_pool2d_backward(dev(g), x, 2)
    _, idx = F.max_pool2d(x, 2, return_indices=True)
    with pytest.raises(ValueError, match="indices is on the CPU"):
        F.max_pool2d_backward(dev(g), dev(x), 2, indices=idx)
    with pytest.raises(ValueError, match="indices is on the GPU"):
        F.adaptive_max_pool2d_backward(g, x, 4, indices=dev(idx))
