"""fastconv.functional losses (cross_entropy, mse_loss, multi_margin_loss) vs the NumPy reference.

Expected values always come from fastconv/_opinfo/loss.py (float64), never from fastconv.
"""


import numpy as np
import pytest

import fastconv
import fastconv.functional as F
from fastconv._loader import _C

from fastconv._opinfo.loss import (cross_entropy_ref, cross_entropy_backward_ref, mse_loss_ref,
                                   mse_loss_backward_ref, multi_margin_loss_ref,
                                   multi_margin_loss_backward_ref, loss_shape)
from _util import assert_close, rtol_for, rand, stable_seed, upstream_grad

# Every test here runs once per CPU variant of the kernels (avx512, avx2, baseline; _isa.py).
pytestmark = pytest.mark.usefixtures("cpu_isa")

DTYPES = [np.float32, np.float64]
DTYPE_IDS = ["f32", "f64"]
REDUCTIONS = ["none", "mean", "sum"]


def assert_same_nonfinite(actual, expected, what=""):
    """NaN where expected is NaN, +-Inf where it is +-Inf, finite elsewhere."""
    a, e = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert a.shape == e.shape, what
    assert np.array_equal(np.isnan(a), np.isnan(e)), f"{what}: NaN pattern {a} vs {e}"
    inf = np.isinf(e)
    assert np.array_equal(np.isinf(a), inf), f"{what}: Inf pattern {a} vs {e}"
    assert np.array_equal(a[inf], e[inf]), f"{what}: Inf signs {a} vs {e}"


def assert_loss_close(actual, expected, rtol, what=""):
    """assert_close on the finite elements; non-finite ones must match exactly."""
    assert_same_nonfinite(actual, expected, what)
    fin = np.isfinite(np.asarray(expected, np.float64))
    assert_close(np.asarray(actual)[fin], np.asarray(expected)[fin], rtol, what=what)


def _check_result(out, dtype, shape):
    assert isinstance(out, np.ndarray), type(out)
    assert out.dtype == dtype and out.shape == shape, (out.dtype, out.shape, shape)


# ---------------------------------------------------------------------------
# cross_entropy, class-index targets
# ---------------------------------------------------------------------------

CE_SHAPES = {
    "2d": (8, 5),
    "batch1": (1, 7),
    "C1": (4, 1),
    "C2": (5, 2),
    "unbatched": (6,),
    "3d": (3, 4, 7),
    "4d": (2, 3, 4, 5),
    "odd_13x11": (13, 11),
    # Whole 4-class blocks only, and the most classes a row held in one AVX-512 register.
    "C12": (9, 12),
    "C15": (5, 15),
    # Rows of fewer than 16 classes go a vector's lanes of rows at a time: whole groups of 16
    # and 8 rows and a part one, and enough rows for the threads to share them.
    "short_rows": (70, 10),
    "short_rows_parallel": (3300, 10),
    "parallel_rows": (300, 200),
    "parallel_4d": (4, 10, 33, 31),
}
# variant: (weighted, fraction of targets ignored, ignore_index)
CE_VARIANTS = {
    "plain": (False, 0.0, -100),
    "weight": (True, 0.0, -100),
    "ignore": (False, 0.3, -100),
    "weight_ignore_in_range": (True, 0.0, 1),
}


def _ce_data(shape, variant, dtype, seed):
    weighted, ignored, ignore_index = CE_VARIANTS[variant]
    rng = np.random.default_rng(seed)
    C = shape[1] if len(shape) > 1 else shape[0]
    x = (rand(rng, shape, np.float64) * 3).astype(dtype)
    t = rng.integers(0, C, loss_shape(shape))
    if ignored:
        t[rng.uniform(size=t.shape) < ignored] = ignore_index
    w = rng.uniform(0.2, 2.0, C).astype(dtype) if weighted else None
    return x, t, w, ignore_index


# (variant, label_smoothing): each variant with and without smoothing, 1.0 with weights
CE_SETTINGS = [("plain", 0.0), ("weight", 0.0), ("weight", 1.0), ("ignore", 0.1),
               ("weight_ignore_in_range", 0.0), ("weight_ignore_in_range", 0.1)]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("variant,eps", CE_SETTINGS, ids=[f"{v}-{e}" for v, e in CE_SETTINGS])
@pytest.mark.parametrize("shape_id", list(CE_SHAPES))
def test_cross_entropy_forward_backward(shape_id, variant, eps, reduction, dtype):
    shape = CE_SHAPES[shape_id]
    x, t, w, ii = _ce_data(shape, variant, dtype, stable_seed(shape_id, variant, eps))
    C = shape[1] if len(shape) > 1 else shape[0]
    L = C * (1 if reduction == "none" else t.size)
    out = F.cross_entropy(x, t, w, ignore_index=ii, reduction=reduction, label_smoothing=eps)
    _check_result(out, dtype, loss_shape(shape) if reduction == "none" else ())
    ref = cross_entropy_ref(x, t, w, ii, reduction, eps)
    assert_loss_close(out, ref, rtol_for(dtype, L), what="forward")
    g = upstream_grad(np.random.default_rng(5), loss_shape(shape), reduction, dtype)
    dx = F.cross_entropy_backward(g, x, t, w, ignore_index=ii, reduction=reduction,
                                  label_smoothing=eps)
    _check_result(dx, dtype, shape)
    assert_loss_close(dx, cross_entropy_backward_ref(g, x, t, w, ii, reduction, eps),
                 rtol_for(dtype, C), what="grad_input")


def test_cross_entropy_default_arguments():
    x, t, _, _ = _ce_data((6, 4), "plain", np.float64, 1)
    assert_close(F.cross_entropy(x, t), cross_entropy_ref(x, t), 1e-12)
    assert_close(F.cross_entropy_backward(1.0, x, t), cross_entropy_backward_ref(1.0, x, t), 1e-12)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_all_targets_ignored(reduction, dtype):
    rng = np.random.default_rng(3)
    x = rand(rng, (4, 3), dtype)
    t = np.full(4, -100)
    w = np.array([0.5, 1.0, 2.0], dtype)
    for eps in (0.0, 0.2):
        out = F.cross_entropy(x, t, w, reduction=reduction, label_smoothing=eps)
        if reduction == "mean":
            assert np.isnan(out)  # 0 / 0, as torch
        else:
            assert np.all(out == 0)
        g = upstream_grad(rng, (4,), reduction, dtype)
        dx = F.cross_entropy_backward(g, x, t, w, reduction=reduction, label_smoothing=eps)
        assert np.all(dx == 0)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("eps", [0.0, 0.1, 1.0])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_huge_logits_stable(reduction, eps, dtype):
    """Logits of +-1e4 (exp would overflow float32 and float64): exact-ish, finite loss."""
    rng = np.random.default_rng(4)
    x = (rng.choice([-1e4, 1e4], size=(6, 5)) + rng.standard_normal((6, 5))).astype(dtype)
    t = rng.integers(0, 5, 6)
    w = rng.uniform(0.5, 1.5, 5).astype(dtype)
    out = F.cross_entropy(x, t, w, reduction=reduction, label_smoothing=eps)
    ref = cross_entropy_ref(x, t, w, reduction=reduction, label_smoothing=eps)
    assert np.all(np.isfinite(ref))
    assert_close(out, ref, rtol_for(dtype, 30), what="forward")
    g = upstream_grad(rng, (6,), reduction, dtype)
    dx = F.cross_entropy_backward(g, x, t, w, reduction=reduction, label_smoothing=eps)
    assert_close(dx, cross_entropy_backward_ref(g, x, t, w, reduction=reduction,
                                                label_smoothing=eps), rtol_for(dtype, 5))


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("C", [2, 5, 10, 15])
def test_cross_entropy_maximum_in_every_class(C, dtype):
    """Rows of -1e4 with +1e4 in one class, that class cycling through every position over 3C
    rows: a maximum missed anywhere would overflow exp(x - max) to inf."""
    rng = np.random.default_rng(C)
    N = 3 * C
    x = np.full((N, C), -1e4) + rng.standard_normal((N, C))
    x[np.arange(N), np.arange(N) % C] += 2e4
    x = x.astype(dtype)
    t = rng.integers(0, C, N)
    out = F.cross_entropy(x, t, reduction="none")
    ref = cross_entropy_ref(x, t, reduction="none")
    assert_close(out, ref, rtol_for(dtype, C), what="forward")
    g = rand(rng, (N,), dtype)
    dx = F.cross_entropy_backward(g, x, t, reduction="none")
    assert_close(dx, cross_entropy_backward_ref(g, x, t, reduction="none"), rtol_for(dtype, C),
                 what="grad_input")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_cross_entropy_nonfinite_logits(eps, dtype):
    """-inf in a non-target class: finite without smoothing, +inf with it (as torch); -inf at
    the target: +inf; a NaN, a +inf or an all -inf row: NaN; ignored rows stay 0."""
    ninf, inf, nan = -np.inf, np.inf, np.nan
    x = np.array([[1.0, ninf, 2.0], [ninf, 0.5, 0.0], [1.0, nan, 0.0], [inf, 0.0, 1.0],
                  [ninf, ninf, ninf], [nan, 1.0, 2.0], [3.0, ninf, 1.0]], dtype)
    t = np.array([0, 0, 1, 2, 1, -100, 2])
    out = F.cross_entropy(x, t, reduction="none", label_smoothing=eps)
    ref = cross_entropy_ref(x, t, reduction="none", label_smoothing=eps)
    assert np.isfinite(ref[0]) == (eps == 0) and ref[1] == inf and np.isnan(ref[2:5]).all()
    assert ref[5] == 0
    assert_loss_close(out, ref, rtol_for(dtype, 3), what="forward")
    g = rand(np.random.default_rng(6), (7,), dtype)
    dx = F.cross_entropy_backward(g, x, t, reduction="none", label_smoothing=eps)
    dref = cross_entropy_backward_ref(g, x, t, reduction="none", label_smoothing=eps)
    assert np.isfinite(dref[0]).all() and np.isnan(dref[5]).all()
    assert_loss_close(dx, dref, rtol_for(dtype, 3), what="grad_input")
    for reduction in ("mean", "sum"):
        assert np.isnan(F.cross_entropy(x, t, reduction=reduction, label_smoothing=eps))
        fin = np.array([0, 6])
        assert_close(F.cross_entropy(x[fin], t[fin], reduction=reduction),
                     cross_entropy_ref(x[fin], t[fin], reduction=reduction), rtol_for(dtype, 6))


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_cross_entropy_zero_weight_sum_mean(dtype):
    """Every non-ignored target has weight 0: 'mean' is 0/0 = NaN and so is its gradient."""
    x = rand(np.random.default_rng(7), (3, 4), dtype)
    t = np.array([0, 1, -100])
    w = np.array([0.0, 0.0, 1.0, 1.0], dtype)
    assert np.isnan(F.cross_entropy(x, t, w))
    dx = F.cross_entropy_backward(1.0, x, t, w)
    assert_same_nonfinite(dx, cross_entropy_backward_ref(1.0, x, t, w), "grad_input")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_cross_entropy_uint8_targets(dtype):
    x, t, w, _ = _ce_data((5, 4), "weight", dtype, 8)
    out = F.cross_entropy(x, t.astype(np.uint8), w)
    assert_close(out, cross_entropy_ref(x, t, w), rtol_for(dtype, 20))


# ---------------------------------------------------------------------------
# cross_entropy, class-probability targets
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted,eps", [(False, 0.0), (True, 0.1), (True, 1.0)])
@pytest.mark.parametrize("shape", [(6, 5), (1, 3), (4, 1), (7,), (2, 3, 4, 5), (300, 120)],
                         ids=["2d", "batch1", "C1", "unbatched", "4d", "parallel"])
def test_cross_entropy_probabilities(shape, weighted, eps, reduction, dtype):
    rng = np.random.default_rng(stable_seed(shape, weighted, eps))
    C = shape[1] if len(shape) > 1 else shape[0]
    x = rand(rng, shape, dtype)
    y = rng.uniform(0, 1, shape)
    y = (y / y.sum(axis=1 if len(shape) > 1 else 0, keepdims=True)).astype(dtype)
    w = rng.uniform(0.2, 2.0, C).astype(dtype) if weighted else None
    out = F.cross_entropy(x, y, w, reduction=reduction, label_smoothing=eps)
    _check_result(out, dtype, loss_shape(shape) if reduction == "none" else ())
    L = C * (1 if reduction == "none" else y.size // C)
    assert_close(out, cross_entropy_ref(x, y, w, reduction=reduction, label_smoothing=eps),
                 rtol_for(dtype, L), what="forward")
    g = upstream_grad(rng, loss_shape(shape), reduction, dtype)
    dx = F.cross_entropy_backward(g, x, y, w, reduction=reduction, label_smoothing=eps)
    _check_result(dx, dtype, shape)
    assert_close(dx, cross_entropy_backward_ref(g, x, y, w, reduction=reduction,
                                                label_smoothing=eps), rtol_for(dtype, C))


# ---------------------------------------------------------------------------
# mse_loss
# ---------------------------------------------------------------------------

MSE_SHAPES = [(), (7,), (3, 4, 5), (1, 1), (16, 3, 33, 31)]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", MSE_SHAPES, ids=["0d", "1d", "3d", "1x1", "parallel_4d"])
def test_mse_loss(shape, reduction, dtype):
    rng = np.random.default_rng(stable_seed(shape))
    x, y = rand(rng, shape, dtype), rand(rng, shape, dtype)
    out = F.mse_loss(x, y, reduction=reduction)
    _check_result(out, dtype, shape if reduction == "none" else ())
    L = 1 if reduction == "none" else x.size
    assert_close(out, mse_loss_ref(x, y, reduction), rtol_for(dtype, L), what="forward")
    g = upstream_grad(rng, shape, reduction, dtype)
    dx = F.mse_loss_backward(g, x, y, reduction=reduction)
    _check_result(dx, dtype, shape)
    assert_close(dx, mse_loss_backward_ref(g, x, y, reduction), rtol_for(dtype), what="grad_input")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_mse_loss_weighted(reduction, dtype):
    rng = np.random.default_rng(41)
    shape = (3, 5, 7)
    x, y = rand(rng, shape, dtype), rand(rng, shape, dtype)
    w = rng.uniform(0.0, 2.0, shape).astype(dtype)
    out = F.mse_loss(x, y, reduction=reduction, weight=w)
    _check_result(out, dtype, shape if reduction == "none" else ())
    L = 1 if reduction == "none" else x.size
    assert_close(out, mse_loss_ref(x, y, reduction, w), rtol_for(dtype, L), what="forward")
    g = upstream_grad(rng, shape, reduction, dtype)
    dx = F.mse_loss_backward(g, x, y, reduction=reduction, weight=w)
    _check_result(dx, dtype, shape)
    assert_close(dx, mse_loss_backward_ref(g, x, y, reduction, w), rtol_for(dtype, L),
                 what="grad_input")
    ones = np.ones(shape, dtype)
    assert_close(F.mse_loss(x, y, reduction=reduction, weight=ones),
                 F.mse_loss(x, y, reduction=reduction), rtol_for(dtype, L))
    if reduction == "mean":  # all weights 0: 0 / 0, NaN (as torch), without a warning
        zeros = np.zeros(shape, dtype)
        assert np.isnan(F.mse_loss(x, y, weight=zeros))
        assert np.isnan(F.mse_loss_backward(1.0, x, y, weight=zeros)).all()


def test_mse_loss_weighted_reference_matches_finite_differences():
    rng = np.random.default_rng(42)
    x, y, w = rng.standard_normal((3, 4)), rng.standard_normal((3, 4)), rng.uniform(0, 2, (3, 4))
    h, num = 1e-6, np.zeros_like(x)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = h
        num[i] = (mse_loss_ref(x + e, y, "mean", w) - mse_loss_ref(x - e, y, "mean", w)) / (2 * h)
    assert_close(mse_loss_backward_ref(1.0, x, y, "mean", w), num, 1e-7)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_mse_loss_nonfinite_and_empty(dtype):
    x = np.array([np.nan, np.inf, 1.0, -np.inf, np.inf], dtype)
    y = np.array([0.0, 0.0, np.inf, 1.0, np.inf], dtype)
    assert_same_nonfinite(F.mse_loss(x, y, reduction="none"), mse_loss_ref(x, y, "none"))
    assert np.isnan(F.mse_loss(x, y)) and np.isnan(F.mse_loss(x[1:], y[1:], reduction="sum"))
    assert F.mse_loss(x[1:2], y[1:2], reduction="sum") == np.inf
    g = np.ones(5, dtype)
    assert_same_nonfinite(F.mse_loss_backward(g, x, y, reduction="none"),
                          mse_loss_backward_ref(g, x, y, "none"))
    e = np.zeros((0, 3), dtype)
    assert np.isnan(F.mse_loss(e, e)) and F.mse_loss(e, e, reduction="sum") == 0
    assert F.mse_loss(e, e, reduction="none").shape == (0, 3)


# ---------------------------------------------------------------------------
# multi_margin_loss
# ---------------------------------------------------------------------------

def _margin_data(N, C, margin, dtype, seed):
    """Rows whose hinge arguments all stay >= 1e-3 from the kink (float32 rounding included):
    entries too close to it are moved by 0.01."""
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


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("p,margin,weighted", [(1, 1.0, False), (2, 1.0, True), (1, 0.5, True),
                                               (2, 0.5, False), (1, 3.0, True)])
@pytest.mark.parametrize("N,C", [(6, 5), (1, 4), (5, 1), (4, 2), (13, 11), (400, 100)])
def test_multi_margin_loss(N, C, p, margin, weighted, reduction, dtype):
    x, t = _margin_data(N, C, margin, dtype, stable_seed(N, C, p, margin))
    w = np.random.default_rng(9).uniform(0.2, 2.0, C).astype(dtype) if weighted else None
    out = F.multi_margin_loss(x, t, p, margin, w, reduction=reduction)
    _check_result(out, dtype, (N,) if reduction == "none" else ())
    L = C * (1 if reduction == "none" else N)
    assert_close(out, multi_margin_loss_ref(x, t, p, margin, w, reduction), rtol_for(dtype, L),
                 what="forward")
    g = upstream_grad(np.random.default_rng(10), (N,), reduction, dtype)
    dx = F.multi_margin_loss_backward(g, x, t, p, margin, w, reduction=reduction)
    _check_result(dx, dtype, (N, C))
    assert_close(dx, multi_margin_loss_backward_ref(g, x, t, p, margin, w, reduction),
                 rtol_for(dtype, C), what="grad_input")


@pytest.mark.parametrize("target_shape", [(), (1,)])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_multi_margin_loss_unbatched(target_shape, reduction):
    x, t = _margin_data(1, 6, 1.0, np.float64, 11)
    x, t = x[0], t.reshape(target_shape)
    out = F.multi_margin_loss(x, t, reduction=reduction)
    _check_result(out, np.float64, target_shape if reduction == "none" else ())
    assert_close(out, multi_margin_loss_ref(x, t, reduction=reduction), 1e-12)
    g = np.asarray(0.7) if reduction != "none" else np.full(target_shape, 0.7)
    dx = F.multi_margin_loss_backward(g, x, t, reduction=reduction)
    assert_close(dx, multi_margin_loss_backward_ref(g, x, t, reduction=reduction), 1e-12)


def test_multi_margin_loss_kink_has_zero_gradient():
    """margin - x_y + x_i == 0 exactly: no loss and, as torch, no gradient from that term."""
    x = np.array([[1.0, 0.0, -1.0]])
    dx = F.multi_margin_loss_backward(1.0, x, np.array([0]), reduction="sum")
    assert_close(dx, np.zeros((1, 3)), 0.0)
    assert F.multi_margin_loss(x, np.array([0])) == 0


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_multi_margin_loss_nonfinite(dtype):
    """torch's hinge tests z > 0, so a NaN term is skipped; +inf terms give +inf."""
    x = np.array([[1.0, np.nan, 2.0], [0.0, np.inf, 1.0], [-np.inf, 0.0, 1.0],
                  [np.inf, 0.0, 1.0]], dtype)
    t = np.array([0, 0, 0, 0])
    out = F.multi_margin_loss(x, t, reduction="none")
    ref = multi_margin_loss_ref(x, t, reduction="none")
    assert np.isfinite(ref[0]) and ref[1] == np.inf and ref[2] == np.inf and ref[3] == 0
    assert_loss_close(out, ref, rtol_for(dtype, 3))
    g = np.ones(4, dtype)
    assert_loss_close(F.multi_margin_loss_backward(g, x, t, reduction="none"),
                      multi_margin_loss_backward_ref(g, x, t, reduction="none"), rtol_for(dtype, 3))


# ---------------------------------------------------------------------------
# every element written, inputs untouched, determinism, legacy arguments
# ---------------------------------------------------------------------------

def _handing(out):
    """An allocator for a loss binding that hands it `out` (NaN-poisoned, to be overwritten)."""
    return lambda like, shape: out


def _calls(dtype):
    """(name, kernel, outputs, inputs) for each binding: outputs[0] is the NaN-poisoned array
    the binding's allocator hands it, the rest (grad_output) are inputs of a backward."""
    rng = np.random.default_rng(12)
    x4 = rand(rng, (2, 3, 4, 5), dtype)
    t4 = rng.integers(0, 3, (2, 4, 5))
    t4[0, 0, :2] = -100
    w3 = rng.uniform(0.5, 1.5, 3).astype(dtype)
    y4 = rng.uniform(0, 1, x4.shape).astype(dtype)
    xm, tm = _margin_data(5, 4, 1.0, dtype, 13)
    g4 = rand(rng, (2, 4, 5), dtype)
    g5 = rand(rng, (5,), dtype)
    poison = lambda shape: np.full(shape, np.nan, dtype)  # noqa: E731
    return [
        ("ce_none", _C.cross_entropy_forward, [poison((2, 4, 5))], [x4, t4, w3, -100, 0.1, "none"],
         cross_entropy_ref(x4, t4, w3, -100, "none", 0.1)),
        ("ce_mean", _C.cross_entropy_forward, [poison(())], [x4, t4, w3, -100, 0.1, "mean"],
         cross_entropy_ref(x4, t4, w3, -100, "mean", 0.1)),
        ("ce_bwd", _C.cross_entropy_backward, [poison(x4.shape), g4], [x4, t4, w3, -100, 0.1, "none"],
         cross_entropy_backward_ref(g4, x4, t4, w3, -100, "none", 0.1)),
        ("ce_prob_bwd", _C.cross_entropy_backward, [poison(x4.shape), g4], [x4, y4, w3, -100, 0.0, "none"],
         cross_entropy_backward_ref(g4, x4, y4, w3, -100, "none", 0.0)),
        ("mse_none", _C.mse_loss_forward, [poison(x4.shape)], [x4, y4, "none"],
         mse_loss_ref(x4, y4, "none")),
        ("mse_bwd", _C.mse_loss_backward, [poison(x4.shape), np.asarray(0.5, dtype)], [x4, y4, "mean"],
         mse_loss_backward_ref(0.5, x4, y4, "mean")),
        ("mm_none", _C.multi_margin_loss_forward, [poison((5,))], [xm, tm, 2, 1.0, None, "none"],
         multi_margin_loss_ref(xm, tm, 2, 1.0, None, "none")),
        ("mm_bwd", _C.multi_margin_loss_backward, [poison(xm.shape), g5], [xm, tm, 1, 1.0, None, "none"],
         multi_margin_loss_backward_ref(g5, xm, tm, 1, 1.0, None, "none")),
    ]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_loss_outputs_fully_written(dtype):
    for name, kernel, outs, ins, ref in _calls(dtype):
        assert kernel(_handing(outs[0]), *outs[1:], *ins) is outs[0]
        assert_close(outs[0], ref, rtol_for(dtype, 60), what=name)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_loss_inputs_not_modified(dtype):
    for name, kernel, outs, ins, _ in _calls(dtype):
        arrays = [a for a in outs[1:] + ins if isinstance(a, np.ndarray)]
        copies = [a.copy() for a in arrays]
        kernel(_handing(outs[0]), *outs[1:], *ins)
        for a, c in zip(arrays, copies):
            assert np.array_equal(a, c, equal_nan=True), f"{name}: an input was modified"


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_loss_reductions_independent_of_threads(dtype):
    rng = np.random.default_rng(14)
    x, t, w, _ = _ce_data((2000, 50), "weight_ignore_in_range", dtype, 15)
    xs, ts, ws, _ = _ce_data((5000, 10), "weight_ignore_in_range", dtype, 17)
    a = rand(rng, (64, 3, 40, 40), dtype)
    b = rand(rng, a.shape, dtype)
    xm, tm = _margin_data(1000, 40, 1.0, dtype, 16)
    before = fastconv.get_num_threads()
    results = []
    try:
        for n in (1, 2, 3):
            fastconv.set_num_threads(n)
            results.append([F.cross_entropy(x, t, w, ignore_index=1, label_smoothing=0.1),
                            F.cross_entropy(xs, ts, ws, ignore_index=1, label_smoothing=0.1),
                            F.mse_loss(a, b), F.multi_margin_loss(xm, tm, reduction="sum")])
    finally:
        fastconv.set_num_threads(before)
    for r in results[1:]:
        for got, first in zip(r, results[0]):
            assert got == first  # bitwise: the blocks are summed in a fixed order


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_loss_noncontiguous_inputs(dtype):
    rng = np.random.default_rng(17)
    x = np.asfortranarray(rand(rng, (9, 6), dtype))
    t = rng.integers(0, 6, 18)[::2]
    w = (rand(rng, (12,), dtype) ** 2)[::2]
    assert not (x.flags.c_contiguous or t.flags.c_contiguous or w.flags.c_contiguous)
    assert_close(F.cross_entropy(x, t, w), cross_entropy_ref(x, t, w), rtol_for(dtype, 54))
    assert_close(F.cross_entropy_backward(1.0, x, t, w),
                 cross_entropy_backward_ref(1.0, x, t, w), rtol_for(dtype, 6))
    y = rand(rng, (6, 9), dtype).T
    assert_close(F.mse_loss(x, y), mse_loss_ref(x, y), rtol_for(dtype, 54))
    assert_close(F.multi_margin_loss(x, t, weight=w), multi_margin_loss_ref(x, t, weight=w),
                 rtol_for(dtype, 54))


@pytest.mark.parametrize("size_average,reduce,expected", [
    (None, False, "none"), (False, None, "sum"), (True, True, "mean"), (False, False, "none"),
    (None, True, "mean")])
def test_loss_legacy_size_average_reduce(size_average, reduce, expected):
    x, t, _, _ = _ce_data((5, 4), "plain", np.float64, 18)
    y = x + 1.0
    with pytest.warns(UserWarning, match=f"reduction='{expected}'"):
        out = F.cross_entropy(x, t, size_average=size_average, reduce=reduce)
    assert_close(out, cross_entropy_ref(x, t, reduction=expected), 1e-12)
    with pytest.warns(UserWarning, match="deprecated"):
        out = F.mse_loss(x, y, size_average, reduce)
    assert_close(out, mse_loss_ref(x, y, expected), 1e-12)
    with pytest.warns(UserWarning, match="deprecated"):
        out = F.multi_margin_loss(x, t, size_average=size_average, reduce=reduce)
    assert_close(out, multi_margin_loss_ref(x, t, reduction=expected), 1e-12)


# ---------------------------------------------------------------------------
# rejections: each names the argument
# ---------------------------------------------------------------------------

X = np.zeros((3, 4))
T = np.array([0, 1, 3])


@pytest.mark.parametrize("call,exc,match", [
    (lambda: F.cross_entropy(X, np.array([0, 4, 1])), ValueError, r"target value 4 at index \(1,\)"),
    (lambda: F.cross_entropy(X, np.array([0, -1, 1])), ValueError, "target value -1.*ignore_index"),
    (lambda: F.cross_entropy(X, np.array([0, 1])), ValueError, r"target .*\(3,\).*got \(2,\)"),
    (lambda: F.cross_entropy(X, T.astype(np.int32)), TypeError, "target must be .*int64.*int32"),
    (lambda: F.cross_entropy(X, np.zeros((3, 5))), ValueError, r"target .*\(3, 4\).*\(3, 5\)"),
    (lambda: F.cross_entropy(X, np.zeros((3, 4), np.float32)), TypeError, "target has dtype float32"),
    (lambda: F.cross_entropy(X, T, np.ones(3)), ValueError, r"weight must have shape \(4,\)"),
    (lambda: F.cross_entropy(X, T, np.ones(4, np.float32)), TypeError, "weight"),
    (lambda: F.cross_entropy(X, T, label_smoothing=1.5), ValueError, "label_smoothing"),
    (lambda: F.cross_entropy(X, T, label_smoothing=-0.1), ValueError, "label_smoothing"),
    (lambda: F.cross_entropy(X, T, label_smoothing=float("nan")), ValueError, "label_smoothing"),
    (lambda: F.cross_entropy(X, T, reduction="avg"), ValueError, "reduction"),
    (lambda: F.cross_entropy(np.zeros(()), np.array(0)), ValueError, "input"),
    (lambda: F.cross_entropy(np.zeros((3, 0)), T), ValueError, "input"),
    (lambda: F.cross_entropy(X.astype(np.int64), T), TypeError, "input"),
    (lambda: F.cross_entropy(X.tolist(), T), TypeError, "input"),
    (lambda: F.cross_entropy(X, T, ignore_index=1.5), TypeError, "ignore_index"),
    (lambda: F.cross_entropy_backward(np.zeros(3), X, T), ValueError, r"grad_output .*\(\)"),
    (lambda: F.cross_entropy_backward(np.zeros(2), X, T, reduction="none"), ValueError,
     r"grad_output .*\(3,\).*\(2,\)"),
    (lambda: F.cross_entropy_backward(np.ones((), np.float32), X, T), TypeError,
     "grad_output"),
    (lambda: F.cross_entropy_backward(1.0, X, np.array([0, 9, 1])), ValueError, "target value 9"),
    (lambda: F.mse_loss(X, np.zeros(4)), ValueError, r"target .*\(3, 4\).*\(4,\)"),
    (lambda: F.mse_loss(X, np.zeros((3, 4), np.float32)), TypeError, "target"),
    (lambda: F.mse_loss(X, X, reduction="elementwise_mean"), ValueError, "reduction"),
    (lambda: F.mse_loss(X, X, weight=np.ones(4)), ValueError, r"weight .*\(3, 4\).*\(4,\)"),
    (lambda: F.mse_loss(X, X, weight=np.ones((3, 4), np.float32)), TypeError, "weight"),
    (lambda: F.mse_loss(X, X, weight=[1.0] * 12), TypeError, "weight"),
    (lambda: F.mse_loss(X, X, reduction="avg", weight=X), ValueError, "reduction"),
    (lambda: F.mse_loss_backward(1.0, X, X, weight=X[:2]), ValueError, "weight"),
    (lambda: F.mse_loss_backward(np.zeros((3, 3)), X, X, reduction="none"), ValueError, "grad_output"),
    (lambda: F.multi_margin_loss(X, T, p=3), ValueError, "p must be 1 or 2, got 3"),
    (lambda: F.multi_margin_loss(X, T, p=1.5), ValueError, "p must be 1 or 2, got 1.5"),
    (lambda: F.multi_margin_loss(X, T, p="1"), TypeError, "p must be an int"),
    (lambda: F.multi_margin_loss(X, np.array([0, 1, 4])), ValueError, r"target value 4 at index \(2,\)"),
    (lambda: F.multi_margin_loss(X, np.array([0, 1])), ValueError, r"target .*\(3,\).*\(2,\)"),
    (lambda: F.multi_margin_loss(X, np.zeros((3, 1), np.int64)), ValueError, "target"),
    (lambda: F.multi_margin_loss(X, T.astype(np.int32)), TypeError, "target"),
    (lambda: F.multi_margin_loss(X, T, weight=np.ones(5)), ValueError, r"weight .*\(4,\).*\(5,\)"),
    (lambda: F.multi_margin_loss(np.zeros((2, 3, 4)), T), ValueError, "input"),
    (lambda: F.multi_margin_loss(X, T, margin="1"), TypeError, "margin"),
    (lambda: F.multi_margin_loss(X, T, reduction="max"), ValueError, "reduction"),
    (lambda: F.multi_margin_loss_backward(np.zeros(2), X, T, reduction="none"), ValueError,
     "grad_output"),
    # pybind11 refused these with a TypeError naming no argument:
    (lambda: F.multi_margin_loss(X, T, p=2**40), ValueError, "p must be 1 or 2, got 1099511627776"),
    (lambda: F.multi_margin_loss_backward(1.0, X, T, p=2**31), ValueError, "p must be 1 or 2"),
    (lambda: F.cross_entropy(X, T, reduction=None), TypeError, "reduction"),
    (lambda: F.cross_entropy_backward(1.0, X, T, reduction=0), TypeError, "reduction"),
    (lambda: F.mse_loss(X, X, reduction=None), TypeError, "reduction"),
    (lambda: F.mse_loss_backward(1.0, X, X, reduction=b"sum"), TypeError, "reduction"),
    (lambda: F.multi_margin_loss_backward(1.0, X, T, reduction=None), TypeError, "reduction"),
])
def test_loss_errors(call, exc, match, no_allocation):
    with pytest.raises(exc, match=match):
        call()
