"""fastconv.functional pooling ops vs PyTorch (skipped when torch is not installed).

Forward values, argmax indices and input gradients (torch.autograd.grad) on the shared shape
table and the edge cases: ceil_mode, padding, dilation, overlapping windows, count_include_pad,
divisor_override, non-dividing adaptive sizes, NaN/Inf and ties.
"""

import zlib

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as TF  # noqa: E402

import fastconv.functional as F  # noqa: E402

from fastconv._opinfo.pool import (POOL_CASES, POOL_CASE_IDS, ids, undilated,  # noqa: E402
                                   unpadded, window_args)
from _util import assert_close, rtol_for, rand  # noqa: E402

DTYPES = [np.float32, np.float64]
DTYPE_IDS = ["f32", "f64"]


def _t(a):
    return torch.from_numpy(np.ascontiguousarray(a))


def _seed(key):
    return zlib.crc32(repr(key).encode())


def _distinct(rng, shape, dtype):
    n = int(np.prod(shape))
    return ((rng.permutation(n) - n // 2) / 64.0).reshape(shape).astype(dtype)


def _torch(fn, x, g=None, **kw):
    """fn(x) in float64 on the same values, and (when g is given) d<fn(x), g>/dx.
    fn may return a tuple (out, indices); the rest of the tuple is returned as numpy."""
    xt = _t(np.asarray(x, dtype=np.float64)).requires_grad_(True)
    res = fn(xt, **kw)
    out, rest = (res[0], res[1:]) if isinstance(res, tuple) else (res, ())
    grad = None
    if g is not None:
        grad = torch.autograd.grad(out, xt, _t(np.asarray(g, dtype=np.float64)))[0].numpy()
    return (out.detach().numpy(), *[r.numpy() for r in rest], grad)


def _tmin(x, **kw):
    if kw.get("return_indices"):
        out, idx = TF.max_pool2d(-x, **kw)
        return -out, idx
    return -TF.max_pool2d(-x, **kw)


def _tmixed(x, alpha, **kw):
    return alpha * TF.max_pool2d(x, **kw) + (1 - alpha) * TF.avg_pool2d(x, **kw)


EXTREME = {"max": (F.max_pool2d, F.max_pool2d_backward, TF.max_pool2d),
           "min": (F.min_pool2d, F.min_pool2d_backward, _tmin)}


@pytest.mark.parametrize("op", ["max", "min"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", POOL_CASES, ids=POOL_CASE_IDS)
def test_pool_torch_extreme(case, dtype, op):
    fwd, bwd, tfn = EXTREME[op]
    rng = np.random.default_rng(_seed((case["id"], op)))
    x = _distinct(rng, case["shape"], dtype)
    kw = window_args(case)
    out, idx = fwd(x, **kw, return_indices=True)
    g = rand(rng, out.shape, dtype)
    t_out, t_idx, t_grad = _torch(tfn, x, g, **kw, return_indices=True)
    assert out.shape == t_out.shape and np.array_equal(out, t_out.astype(dtype))
    assert np.array_equal(idx, t_idx)
    assert_close(bwd(g, x, **kw), t_grad, rtol_for(dtype, 9), what="grad_input")
    assert_close(bwd(g, x, **kw, indices=idx), t_grad, rtol_for(dtype, 9), what="grad (indices)")


@pytest.mark.parametrize("op", ["max", "min"])
@pytest.mark.parametrize("kw", [dict(kernel_size=3, stride=2, padding=1),
                                dict(kernel_size=(2, 3), ceil_mode=True),
                                dict(kernel_size=3, stride=1, padding=1, dilation=2)],
                         ids=["k3s2p1", "2x3_ceil", "dilated"])
def test_pool_torch_extreme_ties_nan_inf(op, kw):
    fwd, bwd, tfn = EXTREME[op]
    rng = np.random.default_rng(_seed((op, repr(kw))))
    x = rng.integers(-2, 3, (2, 3, 9, 10)).astype(np.float64)      # many ties
    x[0, 0, 1, 1] = x[0, 0, 1, 2] = x[0, 0, 2, 1] = np.nan         # several NaNs in a window
    x[0, 1, 4, 4] = np.inf
    x[1, 0, 2, 5] = -np.inf
    x[1, 2] = -np.inf                                              # a plane of -inf
    x[1, 1] = -5.0 - np.arange(90).reshape(9, 10)                  # all negative: padding loses
    out, idx = fwd(x, **kw, return_indices=True)
    g = rng.standard_normal(out.shape)
    t_out, t_idx, t_grad = _torch(tfn, x, g, **kw, return_indices=True)
    np.testing.assert_array_equal(out, t_out)
    np.testing.assert_array_equal(idx, t_idx)
    assert np.isnan(out).any()
    np.testing.assert_allclose(bwd(g, x, **kw), t_grad, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(bwd(g, x, **kw, indices=idx), t_grad, rtol=1e-12, atol=1e-12)


AVG_MODES = [(True, None), (False, None), (True, 3)]


@pytest.mark.parametrize("count_include_pad,divisor_override", AVG_MODES,
                         ids=["incl_pad", "excl_pad", "divisor3"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", undilated(), ids=ids(undilated()))
def test_pool_torch_avg(case, dtype, count_include_pad, divisor_override):
    rng = np.random.default_rng(_seed((case["id"], "avg")))
    x = rand(rng, case["shape"], dtype)
    kw = dict(window_args(case, dilation=False), count_include_pad=count_include_pad,
              divisor_override=divisor_override)
    out = F.avg_pool2d(x, **kw)
    g = rand(rng, out.shape, dtype)
    t_out, t_grad = _torch(TF.avg_pool2d, x, g, **kw)
    assert out.dtype == dtype
    assert_close(out, t_out, rtol_for(dtype, 9), what="avg_pool2d")
    assert_close(F.avg_pool2d_backward(g, x, **kw), t_grad, rtol_for(dtype, 9), what="grad")


def test_pool_torch_avg_nan_inf():
    x = rand(np.random.default_rng(3), (2, 2, 7, 7), np.float64)
    x[0, 0, 0, 0] = np.nan
    x[0, 1, 3, 3] = np.inf
    x[1, 0, 6, 6] = -np.inf
    x[1, 1, 2, 2], x[1, 1, 2, 3] = np.inf, -np.inf
    for kw in (dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
               dict(kernel_size=2, count_include_pad=False)):
        t_out, = _torch(TF.avg_pool2d, x, **kw)[:1]
        np.testing.assert_allclose(F.avg_pool2d(x, **kw), t_out, rtol=1e-12)
        assert np.isnan(t_out).any() and np.isinf(t_out).any()


LP_NORMS = [(1, False), (2, False), (3, True), (1.5, True)]


@pytest.mark.parametrize("norm_type,positive", LP_NORMS, ids=[str(n) for n, _ in LP_NORMS])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", unpadded(), ids=ids(unpadded()))
def test_pool_torch_lp(case, dtype, norm_type, positive):
    rng = np.random.default_rng(_seed((case["id"], "lp", norm_type)))
    x = rand(rng, case["shape"], dtype)
    if positive:
        x = (np.abs(x) + 0.25).astype(dtype)
    kw = window_args(case, dilation=False)
    del kw["padding"]
    out = F.lp_pool2d(x, norm_type, **kw)
    g = rand(rng, out.shape, dtype)
    t_out, t_grad = _torch(TF.lp_pool2d, x, g, norm_type=norm_type, **kw)
    assert_close(out, t_out, rtol_for(dtype, 9), what="lp_pool2d")
    assert_close(F.lp_pool2d_backward(g, x, norm_type, **kw), t_grad, rtol_for(dtype, 9),
                 what="grad")


@pytest.mark.parametrize("norm_type", [3, 2.5, float("inf")])
def test_pool_torch_lp_negative_and_zero_inputs(norm_type):
    """Negative power sums give NaN (as torch); all-zero windows give zero gradient."""
    rng = np.random.default_rng(_seed(("lp-neg", norm_type)))
    x = rng.standard_normal((2, 2, 7, 7))
    x[0, 0, :3, :3] = 0.0
    kw = dict(kernel_size=3, stride=2, ceil_mode=True)
    out = F.lp_pool2d(x, norm_type, **kw)
    g = rng.standard_normal(out.shape)
    t_out, t_grad = _torch(TF.lp_pool2d, x, g, norm_type=norm_type, **kw)
    np.testing.assert_allclose(out, t_out, rtol=1e-12)
    np.testing.assert_allclose(F.lp_pool2d_backward(g, x, norm_type, **kw), t_grad,
                               rtol=1e-10, atol=1e-14)
    if norm_type != float("inf"):
        assert np.isnan(t_out).any()


ADAPTIVE = [
    ((2, 3, 10, 10), 3), ((2, 3, 5, 5), 7), ((2, 2, 10, 5), (3, 7)), ((1, 4, 7, 9), (1, 1)),
    ((2, 3, 8, 6), (None, 4)), ((2, 3, 8, 6), (5, None)), ((3, 9, 7), (4, 3)),
    ((2, 3, 8, 8), 4), ((1, 2, 6, 6), (6, 6)), ((2, 2, 13, 11), (5, 4)),
]
ADAPTIVE_IDS = [f"{'x'.join(map(str, s))}->{o}" for s, o in ADAPTIVE]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("shape,output_size", ADAPTIVE, ids=ADAPTIVE_IDS)
def test_pool_torch_adaptive(shape, output_size, dtype):
    rng = np.random.default_rng(_seed((shape, output_size)))
    n = shape[-1] * shape[-2]
    x = rand(rng, shape, dtype)
    out = F.adaptive_avg_pool2d(x, output_size)
    g = rand(rng, out.shape, dtype)
    t_out, t_grad = _torch(TF.adaptive_avg_pool2d, x, g, output_size=output_size)
    assert_close(out, t_out, rtol_for(dtype, n), what="adaptive_avg_pool2d")
    assert_close(F.adaptive_avg_pool2d_backward(g, x, output_size), t_grad, rtol_for(dtype, n),
                 what="adaptive_avg grad")
    xd = _distinct(rng, shape, dtype)
    xd.reshape(-1)[::7] = xd.reshape(-1)[3]                      # a few ties
    out, idx = F.adaptive_max_pool2d(xd, output_size, return_indices=True)
    t_out, t_idx, t_grad = _torch(TF.adaptive_max_pool2d, xd, g, output_size=output_size,
                                  return_indices=True)
    assert np.array_equal(out, t_out.astype(dtype)) and np.array_equal(idx, t_idx)
    assert_close(F.adaptive_max_pool2d_backward(g, xd, output_size), t_grad, rtol_for(dtype, n))
    assert_close(F.adaptive_max_pool2d_backward(g, xd, output_size, indices=idx), t_grad,
                 rtol_for(dtype, n))


def test_pool_torch_adaptive_max_nan():
    x = np.random.default_rng(4).standard_normal((1, 2, 10, 5))
    x[0, 0, 3, 1] = x[0, 1, 0, 0] = x[0, 1, 2, 4] = np.nan
    out, idx = F.adaptive_max_pool2d(x, (3, 2), return_indices=True)
    g = np.random.default_rng(5).standard_normal(out.shape)
    t_out, t_idx, t_grad = _torch(TF.adaptive_max_pool2d, x, g, output_size=(3, 2),
                                  return_indices=True)
    np.testing.assert_array_equal(out, t_out)
    np.testing.assert_array_equal(idx, t_idx)
    np.testing.assert_allclose(F.adaptive_max_pool2d_backward(g, x, (3, 2)), t_grad, rtol=1e-12)


MIXED = [c for c in undilated() if not c["ceil_mode"]]


MIXED_ALPHAS = [(c, 0.35) for c in MIXED] + [(MIXED[0], 0.0), (MIXED[0], 1.0)]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case,alpha", MIXED_ALPHAS,
                         ids=[f"{c['id']}-alpha{a}" for c, a in MIXED_ALPHAS])
def test_pool_torch_mixed(case, dtype, alpha):
    rng = np.random.default_rng(_seed((case["id"], "mixed")))
    x = _distinct(rng, case["shape"], dtype)
    kw = window_args(case, dilation=False, ceil=False)
    out = F.mixed_pool2d(x, **kw, alpha=alpha)
    g = rand(rng, out.shape, dtype)
    t_out, t_grad = _torch(lambda t, **k: _tmixed(t, alpha, **k), x, g, **kw)
    assert_close(out, t_out, rtol_for(dtype, 9), what="mixed_pool2d")
    assert_close(F.mixed_pool2d_backward(g, x, **kw, alpha=alpha), t_grad, rtol_for(dtype, 9),
                 what="mixed grad")


def test_pool_torch_float32_native():
    """Against torch computing natively in float32 (both sides round)."""
    rng = np.random.default_rng(6)
    x = rand(rng, (4, 8, 15, 14), np.float32)
    kw = dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)
    xt = _t(x).requires_grad_(True)
    g = rand(rng, (4, 8, 8, 8), np.float32)
    for ours, bwd, theirs in ((F.max_pool2d, F.max_pool2d_backward, TF.max_pool2d),
                              (F.avg_pool2d, F.avg_pool2d_backward, TF.avg_pool2d)):
        t_out = theirs(xt, **kw)
        t_grad = torch.autograd.grad(t_out, xt, _t(g))[0].numpy()
        assert_close(ours(x, **kw), t_out.detach().numpy(), 2 * rtol_for(np.float32))
        assert_close(bwd(g, x, **kw), t_grad, 2 * rtol_for(np.float32))
    t_out = TF.adaptive_avg_pool2d(xt, 1)
    assert_close(F.adaptive_avg_pool2d(x, 1), t_out.detach().numpy(), 2 * rtol_for(np.float32))


def test_max_pool2d_empty_dilated_windows_follow_torch_inside_the_plane():
    """Dilation and padding can leave a window with no pixel: its output is -inf and torch's
    index is the window start. Where that index lies inside the plane, torch sends the window's
    gradient there, and so must both of our backward paths (with and without indices)."""
    x = np.arange(8, dtype=np.float64).reshape(1, 1, 8, 1) / 7 - 3
    args = ((2, 3), (2, 3), (1, 1), (2, 2), True)
    y, idx = F.max_pool2d(x, *args, return_indices=True)
    yt, it = torch.nn.functional.max_pool2d(torch.tensor(x), *args, return_indices=True)
    np.testing.assert_array_equal(y, yt.numpy())
    np.testing.assert_array_equal(idx, it.numpy())
    g = np.arange(1, y.size + 1, dtype=np.float64).reshape(y.shape)
    xt = torch.tensor(x, requires_grad=True)
    torch.nn.functional.max_pool2d(xt, *args).backward(torch.tensor(g))
    np.testing.assert_array_equal(F.max_pool2d_backward(g, x, *args), xt.grad.numpy())
    np.testing.assert_array_equal(F.max_pool2d_backward(g, x, *args, indices=idx), xt.grad.numpy())


@pytest.mark.parametrize("op", ["max_pool2d", "avg_pool2d"])
def test_pool_one_element_sequences_mean_both_sides_as_torch(op):
    """torch's max and avg pooling take kernel_size, stride, padding (and dilation) as a
    sequence of one int."""
    x = rand(np.random.default_rng(22), (2, 3, 9, 8), np.float64)
    kw = dict(stride=(2,), padding=[1]) | ({"dilation": (2,)} if op == "max_pool2d" else {})
    want = getattr(TF, op)(_t(x), (3,), **kw).numpy()
    assert_close(getattr(F, op)(x, (3,), **kw), want, 1e-12)
    assert getattr(F, op)(x, [3]).shape == getattr(TF, op)(_t(x), [3]).shape
