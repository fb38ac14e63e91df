"""fastconv.functional losses vs PyTorch, forward and torch.autograd.grad backward (skipped when
torch is not installed)."""


import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as TF  # noqa: E402

import fastconv.functional as F  # noqa: E402

from _util import assert_close, rtol_for, rand, stable_seed, upstream_grad  # noqa: E402
from fastconv._opinfo.loss import loss_shape  # noqa: E402

DTYPES = [np.float32, np.float64]
DTYPE_IDS = ["f32", "f64"]
REDUCTIONS = ["none", "mean", "sum"]


def _t(a):
    return None if a is None else torch.from_numpy(np.array(a, order="C"))  # 0-d stays 0-d


def _torch(fn, x, grad_output, *args, **kwargs):
    """torch's loss and its input gradient for grad_output."""
    xt = _t(x).requires_grad_(True)
    out = fn(xt, *args, **kwargs)
    (dx,) = torch.autograd.grad(out, xt, grad_outputs=_t(grad_output))
    return out.detach().numpy(), dx.numpy()


def _compare(got, want, rtol, what):
    """Same NaN/Inf pattern (and Inf sign) as torch; finite values within rtol."""
    a, e = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert a.shape == e.shape, f"{what}: shape {a.shape} vs torch {e.shape}"
    assert np.array_equal(np.isnan(a), np.isnan(e)), f"{what}: NaN pattern {a} vs torch {e}"
    assert np.array_equal(np.isinf(a), np.isinf(e)), f"{what}: Inf pattern {a} vs torch {e}"
    assert np.array_equal(a[np.isinf(e)], e[np.isinf(e)]), f"{what}: Inf signs"
    fin = np.isfinite(e)
    assert_close(a[fin], e[fin], rtol, what=what)


def _check_ce(x, t, w, reduction, eps, ignore_index=-100, seed=0):
    dtype = x.dtype
    C = x.shape[1] if x.ndim > 1 else x.shape[0]
    g = upstream_grad(np.random.default_rng(seed), loss_shape(x.shape), reduction, dtype)
    kw = dict(ignore_index=ignore_index, reduction=reduction, label_smoothing=eps)
    want, want_dx = _torch(TF.cross_entropy, x, g, _t(t), _t(w), **kw)
    got = F.cross_entropy(x, t, w, **kw)
    dx = F.cross_entropy_backward(g, x, t, w, **kw)
    assert got.dtype == dtype and dx.dtype == dtype
    L = C * (1 if reduction == "none" else max(1, np.asarray(t).size))
    _compare(got, want, rtol_for(dtype, L), "forward")
    _compare(dx, want_dx, rtol_for(dtype, C), "grad_input")


CE_SHAPES = [(8, 5), (1, 7), (4, 1), (5, 2), (6,), (3, 4, 7), (2, 3, 4, 5), (300, 200)]
CE_IDS = ["2d", "batch1", "C1", "C2", "unbatched", "3d", "4d", "parallel"]


# (weighted, ignore_index, label_smoothing); with weights and -100, 30% of the targets are ignored
CE_SETTINGS = [(False, -100, 0.0), (False, -100, 0.1), (True, -100, 0.0), (True, -100, 1.0),
               (True, 1, 0.1)]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted,ignore_index,eps", CE_SETTINGS,
                         ids=["plain", "plain_smooth", "weight_ignore", "weight_ignore_smooth1",
                              "weight_ignore1_smooth"])
@pytest.mark.parametrize("shape", CE_SHAPES, ids=CE_IDS)
def test_loss_torch_cross_entropy(shape, weighted, ignore_index, eps, reduction, dtype):
    rng = np.random.default_rng(stable_seed(shape, weighted, ignore_index, eps))
    C = shape[1] if len(shape) > 1 else shape[0]
    x = (rand(rng, shape, np.float64) * 3).astype(dtype)
    t = rng.integers(0, C, loss_shape(shape))
    if weighted and ignore_index == -100:
        t[rng.uniform(size=t.shape) < 0.3] = -100
    w = rng.uniform(0.2, 2.0, C).astype(dtype) if weighted else None
    _check_ce(x, t, w, reduction, eps, ignore_index, seed=1)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted,eps", [(False, 0.0), (True, 0.2), (True, 1.0)])
@pytest.mark.parametrize("shape", [(6, 5), (1, 3), (7,), (2, 3, 4, 5)],
                         ids=["2d", "batch1", "unbatched", "4d"])
def test_loss_torch_cross_entropy_probabilities(shape, weighted, eps, reduction, dtype):
    rng = np.random.default_rng(stable_seed(shape, weighted, eps))
    C = shape[1] if len(shape) > 1 else shape[0]
    x = rand(rng, shape, dtype)
    y = rng.uniform(0, 1, shape)
    y = (y / y.sum(axis=1 if len(shape) > 1 else 0, keepdims=True)).astype(dtype)
    w = rng.uniform(0.2, 2.0, C).astype(dtype) if weighted else None
    _check_ce(x, y, w, reduction, eps, seed=2)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("eps", [0.0, 0.1, 1.0])
def test_loss_torch_cross_entropy_edge_cases(eps, reduction, dtype):
    rng = np.random.default_rng(3)
    w = np.array([0.5, 1.0, 2.0], dtype)
    # every target ignored: 'mean' is NaN
    _check_ce(rand(rng, (4, 3), dtype), np.full(4, -100), w, reduction, eps)
    _check_ce(rand(rng, (4, 3), dtype), np.full(4, -100), None, reduction, eps)
    # logits of +-1e4: finite and exact-ish in float32
    big = (rng.choice([-1e4, 1e4], size=(6, 5)) + rng.standard_normal((6, 5))).astype(dtype)
    _check_ce(big, rng.integers(0, 5, 6), rng.uniform(0.5, 1.5, 5).astype(dtype), reduction, eps)
    # -inf (finite loss for eps = 0 unless at the target), +inf, NaN, all -inf, NaN when ignored
    ninf, inf, nan = -np.inf, np.inf, np.nan
    x = np.array([[1.0, ninf, 2.0], [ninf, 0.5, 0.0], [1.0, nan, 0.0], [inf, 0.0, 1.0],
                  [ninf, ninf, ninf], [nan, 1.0, 2.0], [3.0, ninf, 1.0]], dtype)
    t = np.array([0, 0, 1, 2, 1, -100, 2])
    _check_ce(x, t, None, reduction, eps)
    _check_ce(x[[0, 6]], t[[0, 6]], w, reduction, eps)
    # all non-ignored targets weigh 0: 'mean' is 0/0
    _check_ce(rand(rng, (3, 4), dtype), np.array([0, 1, -100]),
              np.array([0.0, 0.0, 1.0, 1.0], dtype), reduction, eps)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_loss_torch_cross_entropy_unbatched_with_a_one_element_target(reduction, dtype):
    """torch's forward takes a target of shape (1,) for an input (C,): a 0-d loss for every
    reduction (its autograd then refuses the sizes); the gradient is the 0-d target's."""
    rng = np.random.default_rng(6)
    x, w = rand(rng, (5,), dtype), rng.uniform(0.2, 2.0, 5).astype(dtype)
    for t, weight in ((np.array([3]), None), (np.array([1]), w)):
        want = TF.cross_entropy(_t(x), _t(t), _t(weight), reduction=reduction).numpy()
        for target in (t, t.astype(np.uint8)):
            got = F.cross_entropy(x, target, weight, reduction=reduction)
            assert got.shape == () and got.dtype == dtype
            _compare(got, want, rtol_for(dtype, 5), "forward")
            assert np.array_equal(
                F.cross_entropy_backward(1.0, x, target, weight, reduction=reduction),
                F.cross_entropy_backward(1.0, x, t.reshape(()), weight, reduction=reduction))


def test_loss_torch_cross_entropy_uint8_targets_and_legacy_args():
    rng = np.random.default_rng(4)
    x = rand(rng, (5, 4), np.float64)
    t = rng.integers(0, 4, 5).astype(np.uint8)
    want = TF.cross_entropy(_t(x), _t(t))
    assert_close(F.cross_entropy(x, t), want.numpy(), 1e-12)
    for size_average, reduce in [(None, False), (False, None), (True, True), (False, True)]:
        with pytest.warns(UserWarning, match="deprecated"):
            want = TF.cross_entropy(_t(x), _t(t).long(), size_average=size_average, reduce=reduce)
        with pytest.warns(UserWarning, match="deprecated"):
            got = F.cross_entropy(x, t, size_average=size_average, reduce=reduce)
        assert_close(got, want.numpy(), 1e-12)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(), (7,), (3, 4, 5), (16, 3, 33, 31), (0, 3)],
                         ids=["0d", "1d", "3d", "parallel", "empty"])
def test_loss_torch_mse(shape, reduction, dtype):
    rng = np.random.default_rng(stable_seed(shape))
    x, y = rand(rng, shape, dtype), rand(rng, shape, dtype)
    g = upstream_grad(rng, shape, reduction, dtype)
    want, want_dx = _torch(TF.mse_loss, x, g, _t(y), reduction=reduction)
    L = 1 if reduction == "none" else max(1, x.size)
    _compare(F.mse_loss(x, y, reduction=reduction), want, rtol_for(dtype, L), "forward")
    _compare(F.mse_loss_backward(g, x, y, reduction=reduction), want_dx, rtol_for(dtype), "grad")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(), (7,), (3, 4, 5), (0, 3)], ids=["0d", "1d", "3d", "empty"])
def test_loss_torch_mse_weighted(shape, reduction, dtype):
    """torch 2.13's weight: products summed, "mean" divided by the summed weights (negative
    weights included; NaN for an empty input)."""
    rng = np.random.default_rng(stable_seed(shape) + 1)
    x, y, w = (rand(rng, shape, dtype) for _ in range(3))
    g = upstream_grad(rng, shape, reduction, dtype)
    want, want_dx = _torch(TF.mse_loss, x, g, _t(y), reduction=reduction, weight=_t(w))
    L = 1 if reduction == "none" else max(1, x.size)
    got = F.mse_loss(x, y, reduction=reduction, weight=w)
    assert got.dtype == dtype and isinstance(got, np.ndarray)
    _compare(got, want, rtol_for(dtype, L), "forward")
    got_dx = F.mse_loss_backward(g, x, y, reduction=reduction, weight=w)
    assert got_dx.dtype == dtype
    _compare(got_dx, want_dx, rtol_for(dtype, L), "grad")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_loss_torch_mse_nonfinite(reduction, dtype):
    x = np.array([np.nan, np.inf, 1.0, -np.inf, np.inf, 2.0], dtype)
    y = np.array([0.0, 0.0, np.inf, 1.0, np.inf, 1.0], dtype)
    g = upstream_grad(np.random.default_rng(5), x.shape, reduction, dtype)
    want, want_dx = _torch(TF.mse_loss, x, g, _t(y), reduction=reduction)
    _compare(F.mse_loss(x, y, reduction=reduction), want, rtol_for(dtype, 6), "forward")
    _compare(F.mse_loss_backward(g, x, y, reduction=reduction), want_dx, rtol_for(dtype), "grad")


def _margin_data(N, C, margin, dtype, seed):
    """Hinge arguments kept >= 1e-3 from the kink, where the gradient jumps."""
    rng = np.random.default_rng(seed)
    x = rand(rng, (N, C), dtype)
    t = rng.integers(0, C, N)
    rows = np.arange(N)
    while True:
        z = margin - x[rows, t][:, None].astype(np.float64) + x
        z[rows, t] = 1.0
        near = np.abs(z) <= 1e-3
        if not near.any():
            return x, t
        x[near] += dtype(0.01)


def _check_margin(x, t, p, margin, w, reduction, seed=0):
    dtype = x.dtype
    g = upstream_grad(np.random.default_rng(seed), np.shape(t), reduction, dtype)
    kw = dict(p=p, margin=margin, reduction=reduction)
    want, want_dx = _torch(TF.multi_margin_loss, x, g, _t(t), weight=_t(w), **kw)
    got = F.multi_margin_loss(x, t, weight=w, **kw)
    dx = F.multi_margin_loss_backward(g, x, t, weight=w, **kw)
    C = x.shape[-1]
    L = C * (1 if reduction == "none" else max(1, np.size(t)))
    _compare(got, want, rtol_for(dtype, L), "forward")
    _compare(dx, want_dx, rtol_for(dtype, C), "grad_input")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("p,margin,weighted", [(1, 1.0, False), (2, 1.0, True), (1, 0.5, True),
                                               (2, 0.5, False), (2, 3.0, True)])
@pytest.mark.parametrize("N,C", [(6, 5), (1, 4), (5, 1), (4, 2), (400, 100)])
def test_loss_torch_multi_margin(N, C, p, margin, weighted, reduction, dtype):
    x, t = _margin_data(N, C, margin, dtype, stable_seed(N, C, p, margin))
    w = np.random.default_rng(6).uniform(0.2, 2.0, C).astype(dtype) if weighted else None
    _check_margin(x, t, p, margin, w, reduction, seed=7)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_loss_torch_multi_margin_edge_cases(reduction):
    x, t = _margin_data(1, 6, 1.0, np.float64, 8)
    _check_margin(x[0], t.reshape(()), 1, 1.0, None, reduction)   # unbatched, 0-d target
    _check_margin(x[0], t.reshape(1), 2, 1.0, None, reduction)    # unbatched, (1,) target
    _check_margin(np.array([[1.0, 0.0, -1.0]]), np.array([0]), 1, 1.0, None, reduction)  # kink
    for dtype in DTYPES:
        x = np.array([[1.0, np.nan, 2.0], [0.0, np.inf, 1.0], [-np.inf, 0.0, 1.0],
                      [np.inf, 0.0, 1.0]], dtype)
        _check_margin(x, np.zeros(4, np.int64), 1, 1.0, None, reduction)


def test_loss_torch_multi_margin_takes_a_float_power():
    """torch takes p=2.0; ours refused any float (and nn.MultiMarginLoss built with one)."""
    x, t = _margin_data(5, 4, 1.0, np.float64, 9)
    _check_margin(x, t, 2.0, 1.0, None, "mean")
    _check_margin(x, t, 1.0, 1.0, None, "sum")


@pytest.mark.parametrize("ignore_index", [0, 2, 7])
def test_loss_torch_cross_entropy_probabilities_refuse_a_class_to_ignore(ignore_index):
    """torch refuses ignore_index >= 0 with probability targets; ours ignored it silently."""
    x, y = np.zeros((2, 3)), np.full((2, 3), 1 / 3)
    with pytest.raises(RuntimeError, match="ignore_index is not supported"):
        TF.cross_entropy(_t(x), _t(y), ignore_index=ignore_index)
    for call in (lambda: F.cross_entropy(x, y, ignore_index=ignore_index),
                 lambda: F.cross_entropy_backward(1.0, x, y, ignore_index=ignore_index)):
        with pytest.raises(ValueError, match=f"ignore_index must be negative with "
                                             f"class-probability targets .*, got {ignore_index}"):
            call()
    x = np.random.default_rng(10).standard_normal((2, 3))
    _check_ce(x, y, None, "mean", 0.0, ignore_index=-1)  # a negative one ignores nothing


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_loss_torch_cross_entropy_empty(reduction):
    """No items: 'mean' is NaN, 'sum' 0, 'none' empty, the gradient empty."""
    _check_ce(np.zeros((0, 4)), np.zeros(0, np.int64), None, reduction, 0.0)
    _check_ce(np.zeros((2, 3, 0)), np.zeros((2, 0), np.int64), None, reduction, 0.1)
