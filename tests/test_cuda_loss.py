"""Losses on the GPU: CuPy in, CuPy out, against the float64 NumPy reference and the CPU kernel.
Covers both row layouts of the CUDA kernels (a thread per item; a warp per item when C >= 32
and S < 32), every reduction, weights, ignore_index, label smoothing, probability targets,
NaN/Inf, bad targets, many reduction blocks and determinism. Outputs are poisoned."""

import numpy as np
import pytest

import fastconv.functional as F

from fastconv._opinfo.loss import (cross_entropy_backward_ref, cross_entropy_ref, loss_shape,
                                   mse_loss_backward_ref, mse_loss_ref,
                                   multi_margin_loss_backward_ref, multi_margin_loss_ref)
from _cuda import cover, covering, cp, dev, host, requires_cuda
from _util import rand, rtol_for, stable_seed, upstream_grad
from test_loss import (CE_SETTINGS, CE_SHAPES, DTYPE_IDS, DTYPES, MSE_SHAPES, REDUCTIONS,
                       _ce_data, _margin_data, assert_loss_close)

pytestmark = requires_cuda

# The CPU's shapes plus the GPU's layouts: a warp per item with S == 1 (C = 1000, and C = 200
# in "parallel_rows") and with S > 1, a thread per item with many classes (S >= 32).
GPU_CE_SHAPES = {**CE_SHAPES, "C1000": (6, 1000), "warp_S3": (3, 40, 3),
                 "threads_C64": (2, 64, 6, 7)}


def _classes(shape):
    return shape[1] if len(shape) > 1 else shape[0]


def _check(gpu, cpu, ref, dtype, L, what):
    """gpu is a CuPy array of ref's shape and dtype, close to the reference and the CPU result,
    with the same NaN/Inf pattern as both."""
    assert isinstance(gpu, cp.ndarray), f"{what}: {type(gpu)}"
    got = host(gpu)
    assert got.dtype == dtype and got.shape == np.shape(ref), (what, got.dtype, got.shape)
    assert_loss_close(got, ref, rtol_for(dtype, L), what=what)
    assert_loss_close(got, cpu, 2 * rtol_for(dtype, L), what=f"{what} vs CPU")


def _check_ce(x, t, w, ii, eps, dtype, reductions=REDUCTIONS):
    """cross_entropy forward and backward on the GPU for each reduction (t: indices or
    probabilities)."""
    shape = x.shape
    C = _classes(shape)
    xd, td, wd = dev(x, t, w)
    for reduction in reductions:
        kw = dict(ignore_index=ii, reduction=reduction, label_smoothing=eps)
        L = C * (1 if reduction == "none" else int(np.prod(loss_shape(shape))))
        with np.errstate(all="ignore"):
            ref = cross_entropy_ref(x, t, w, ii, reduction, eps)
        _check(F.cross_entropy(xd, td, wd, **kw), F.cross_entropy(x, t, w, **kw), ref, dtype, L,
               f"{reduction} forward")
        g = upstream_grad(np.random.default_rng(5), loss_shape(shape), reduction, dtype)
        with np.errstate(all="ignore"):
            dref = cross_entropy_backward_ref(g, x, t, w, ii, reduction, eps)
        _check(F.cross_entropy_backward(dev(g), xd, td, wd, **kw),
               F.cross_entropy_backward(g, x, t, w, **kw), dref, dtype, C,
               f"{reduction} grad_input")


# ---------------------------------------------------------------------------
# cross_entropy, class-index targets
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("variant,eps", CE_SETTINGS, ids=[f"{v}-{e}" for v, e in CE_SETTINGS])
# kernel_cover: a thread per item and a warp per item.
@pytest.mark.parametrize("shape_id", covering(list(GPU_CE_SHAPES), "3d", "warp_S3"))
def test_cross_entropy_gpu(shape_id, variant, eps, dtype, poisoned):
    shape = GPU_CE_SHAPES[shape_id]
    x, t, w, ii = _ce_data(shape, variant, dtype, stable_seed(shape_id, variant, eps))
    _check_ce(x, t, w, ii, eps, dtype)


@pytest.mark.parametrize("shape", [(3, 5, 300, 400), (10000, 40), (512, 1000)],
                         ids=["threads_many_blocks", "warps_many_blocks", "C1000_batch512"])
def test_cross_entropy_gpu_large(shape, poisoned):
    """More reduction blocks than the final block has threads, in both layouts."""
    x, t, w, ii = _ce_data(shape, "weight_ignore_in_range", np.float32, stable_seed(shape))
    _check_ce(x, t, w, ii, 0.1, np.float32)


def test_cross_entropy_gpu_default_arguments(poisoned):
    x, t, _, _ = _ce_data((6, 4), "plain", np.float64, 1)
    xd, td = dev(x, t)
    _check(F.cross_entropy(xd, td), F.cross_entropy(x, t), cross_entropy_ref(x, t), np.float64,
           24, "forward")
    _check(F.cross_entropy_backward(1.0, xd, td), F.cross_entropy_backward(1.0, x, t),
           cross_entropy_backward_ref(1.0, x, t), np.float64, 4, "grad_input from a float")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("C", [3, 40], ids=["threads", "warps"])
def test_cross_entropy_gpu_all_targets_ignored(C, dtype, poisoned):
    rng = np.random.default_rng(3)
    x = rand(rng, (4, C), dtype)
    t = np.full(4, -100)
    w = rng.uniform(0.5, 2.0, C).astype(dtype)
    for reduction in REDUCTIONS:
        for eps in (0.0, 0.2):
            out = host(F.cross_entropy(dev(x), dev(t), dev(w), reduction=reduction,
                                       label_smoothing=eps))
            if reduction == "mean":
                assert np.isnan(out)  # 0 / 0, as torch
            else:
                assert np.all(out == 0)
            g = upstream_grad(rng, (4,), reduction, dtype)
            dx = F.cross_entropy_backward(dev(g), dev(x), dev(t), dev(w), reduction=reduction,
                                          label_smoothing=eps)
            assert np.all(host(dx) == 0)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("C", [3, 40], ids=["threads", "warps"])
def test_cross_entropy_gpu_zero_weight_sum_mean(C, dtype, poisoned):
    x = rand(np.random.default_rng(7), (3, C), dtype)
    t = np.array([0, 1, -100])
    w = np.ones(C, dtype)
    w[:2] = 0
    _check_ce(x, t, w, -100, 0.0, dtype, reductions=["mean"])


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("eps", [0.0, 0.1, 1.0])
def test_cross_entropy_gpu_huge_logits_stable(eps, dtype, poisoned):
    rng = np.random.default_rng(4)
    for C in (5, 40):
        x = (rng.choice([-1e4, 1e4], size=(6, C)) + rng.standard_normal((6, C))).astype(dtype)
        _check_ce(x, rng.integers(0, C, 6), rng.uniform(0.5, 1.5, C).astype(dtype), -100, eps,
                  dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("eps", [0.0, 0.1])
@pytest.mark.parametrize("extra", [0, 37], ids=["threads", "warps"])
def test_cross_entropy_gpu_nonfinite_logits(extra, eps, dtype, poisoned):
    """The CPU test's rows (-inf in and out of the target, NaN, +inf, all -inf, an ignored NaN
    row), widened with finite classes for the warp layout."""
    ninf, inf, nan = -np.inf, np.inf, np.nan
    x = np.array([[1.0, ninf, 2.0], [ninf, 0.5, 0.0], [1.0, nan, 0.0], [inf, 0.0, 1.0],
                  [ninf, ninf, ninf], [nan, 1.0, 2.0], [3.0, ninf, 1.0]])
    x = np.concatenate([x, np.random.default_rng(6).standard_normal((7, extra))], axis=1)
    t = np.array([0, 0, 1, 2, 1, -100, 2])
    _check_ce(x.astype(dtype), t, None, -100, eps, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_cross_entropy_gpu_uint8_targets(dtype, poisoned):
    x, t, w, _ = _ce_data((5, 4), "weight", dtype, 8)
    out = F.cross_entropy(dev(x), dev(t.astype(np.uint8)), dev(w))
    _check(out, F.cross_entropy(x, t, w), cross_entropy_ref(x, t, w), dtype, 20, "forward")


# ---------------------------------------------------------------------------
# cross_entropy, class-probability targets
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("weighted,eps", [(False, 0.0), (True, 0.1), (True, 1.0)])
@pytest.mark.parametrize("shape", [(6, 5), (1, 3), (4, 1), (7,), cover((2, 3, 4, 5)), (300, 120),
                                   cover((2, 40, 3)), (5, 1000), (2, 64, 6, 7)],
                         ids=["2d", "batch1", "C1", "unbatched", "4d", "warps", "warp_S3",
                              "C1000", "threads_C64"])
def test_cross_entropy_gpu_probabilities(shape, weighted, eps, dtype, poisoned):
    rng = np.random.default_rng(stable_seed(shape, weighted, eps))
    C = _classes(shape)
    x = rand(rng, shape, dtype)
    y = rng.uniform(0, 1, shape)
    y = (y / y.sum(axis=1 if len(shape) > 1 else 0, keepdims=True)).astype(dtype)
    w = rng.uniform(0.2, 2.0, C).astype(dtype) if weighted else None
    _check_ce(x, y, w, -100, eps, dtype)


# ---------------------------------------------------------------------------
# mse_loss
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("shape", covering(MSE_SHAPES, (3, 4, 5)) + [(1_000_003,)],
                         ids=["0d", "1d", "3d", "1x1", "parallel_4d", "many_blocks"])
def test_mse_loss_gpu(shape, dtype, poisoned):
    rng = np.random.default_rng(stable_seed(shape))
    x, y = rand(rng, shape, dtype), rand(rng, shape, dtype)
    xd, yd = dev(x, y)
    for reduction in REDUCTIONS:
        L = 1 if reduction == "none" else x.size
        _check(F.mse_loss(xd, yd, reduction=reduction), F.mse_loss(x, y, reduction=reduction),
               mse_loss_ref(x, y, reduction), dtype, L, f"{reduction} forward")
        g = upstream_grad(rng, shape, reduction, dtype)
        _check(F.mse_loss_backward(dev(g), xd, yd, reduction=reduction),
               F.mse_loss_backward(g, x, y, reduction=reduction),
               mse_loss_backward_ref(g, x, y, reduction), dtype, 1, f"{reduction} grad_input")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_mse_loss_gpu_weighted(dtype, poisoned):
    """The weight stays on the device: the squared errors times weight, reduced there."""
    rng = np.random.default_rng(43)
    x, y = rand(rng, (3, 4, 5), dtype), rand(rng, (3, 4, 5), dtype)
    w = rng.uniform(0.0, 2.0, x.shape).astype(dtype)
    xd, yd, wd = dev(x, y, w)
    for reduction in REDUCTIONS:
        L = 1 if reduction == "none" else x.size
        _check(F.mse_loss(xd, yd, reduction=reduction, weight=wd),
               F.mse_loss(x, y, reduction=reduction, weight=w),
               mse_loss_ref(x, y, reduction, w), dtype, L, f"{reduction} forward")
        g = upstream_grad(rng, x.shape, reduction, dtype)
        _check(F.mse_loss_backward(dev(g), xd, yd, reduction=reduction, weight=wd),
               F.mse_loss_backward(g, x, y, reduction=reduction, weight=w),
               mse_loss_backward_ref(g, x, y, reduction, w), dtype, L, f"{reduction} grad_input")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_mse_loss_gpu_nonfinite_and_empty(dtype, poisoned):
    x = np.array([np.nan, np.inf, 1.0, -np.inf, np.inf], dtype)
    y = np.array([0.0, 0.0, np.inf, 1.0, np.inf], dtype)
    xd, yd = dev(x, y)
    for reduction in REDUCTIONS:
        _check(F.mse_loss(xd, yd, reduction=reduction), F.mse_loss(x, y, reduction=reduction),
               mse_loss_ref(x, y, reduction), dtype, 5, reduction)
    assert host(F.mse_loss(xd[1:2], yd[1:2], reduction="sum")) == np.inf
    g = np.ones(5, dtype)
    _check(F.mse_loss_backward(dev(g), xd, yd, reduction="none"),
           F.mse_loss_backward(g, x, y, reduction="none"), mse_loss_backward_ref(g, x, y, "none"),
           dtype, 1, "grad_input")
    e = cp.zeros((0, 3), dtype)
    assert np.isnan(host(F.mse_loss(e, e))) and host(F.mse_loss(e, e, reduction="sum")) == 0
    assert F.mse_loss(e, e, reduction="none").shape == (0, 3)
    assert F.mse_loss_backward(1.0, e, e).shape == (0, 3)


# ---------------------------------------------------------------------------
# multi_margin_loss
# ---------------------------------------------------------------------------

MARGIN_SETTINGS = [(1, 1.0, False), (2, 1.0, True), (1, 0.5, True), (2, 0.5, False), (1, 3.0, True)]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("p,margin,weighted", MARGIN_SETTINGS)
@pytest.mark.parametrize("N,C", [(6, 5), (1, 4), (5, 1), cover(13, 11), cover(7, 32), (400, 100),
                                 (9000, 3)])
def test_multi_margin_loss_gpu(N, C, p, margin, weighted, dtype, poisoned):
    x, t = _margin_data(N, C, margin, dtype, stable_seed(N, C, p, margin))
    w = np.random.default_rng(9).uniform(0.2, 2.0, C).astype(dtype) if weighted else None
    xd, td, wd = dev(x, t, w)
    for reduction in REDUCTIONS:
        L = C * (1 if reduction == "none" else N)
        _check(F.multi_margin_loss(xd, td, p, margin, wd, reduction=reduction),
               F.multi_margin_loss(x, t, p, margin, w, reduction=reduction),
               multi_margin_loss_ref(x, t, p, margin, w, reduction), dtype, L,
               f"{reduction} forward")
        g = upstream_grad(np.random.default_rng(10), (N,), reduction, dtype)
        _check(F.multi_margin_loss_backward(dev(g), xd, td, p, margin, wd, reduction=reduction),
               F.multi_margin_loss_backward(g, x, t, p, margin, w, reduction=reduction),
               multi_margin_loss_backward_ref(g, x, t, p, margin, w, reduction), dtype, C,
               f"{reduction} grad_input")


@pytest.mark.parametrize("target_shape", [(), (1,)])
def test_multi_margin_loss_gpu_unbatched(target_shape, poisoned):
    x, t = _margin_data(1, 6, 1.0, np.float64, 11)
    x, t = x[0], t.reshape(target_shape)
    for reduction in REDUCTIONS:
        out = F.multi_margin_loss(dev(x), dev(t), reduction=reduction)
        _check(out, F.multi_margin_loss(x, t, reduction=reduction),
               multi_margin_loss_ref(x, t, reduction=reduction), np.float64, 6, reduction)
        g = np.asarray(0.7) if reduction != "none" else np.full(target_shape, 0.7)
        _check(F.multi_margin_loss_backward(dev(g), dev(x), dev(t), reduction=reduction),
               F.multi_margin_loss_backward(g, x, t, reduction=reduction),
               multi_margin_loss_backward_ref(g, x, t, reduction=reduction), np.float64, 6,
               f"{reduction} grad_input")


def test_multi_margin_loss_gpu_kink_has_zero_gradient():
    x = dev(np.array([[1.0, 0.0, -1.0]]))
    t = dev(np.array([0]))
    assert np.array_equal(host(F.multi_margin_loss_backward(1.0, x, t, reduction="sum")),
                          np.zeros((1, 3)))
    assert host(F.multi_margin_loss(x, t)) == 0


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("extra", [0, 37], ids=["threads", "warps"])
def test_multi_margin_loss_gpu_nonfinite(extra, dtype, poisoned):
    """A NaN hinge term is skipped, +inf terms give +inf (as torch), in both layouts."""
    x = np.array([[1.0, np.nan, 2.0], [0.0, np.inf, 1.0], [-np.inf, 0.0, 1.0],
                  [np.inf, 0.0, 1.0]])
    x = np.concatenate([x, np.random.default_rng(6).standard_normal((4, extra))], axis=1)
    x = x.astype(dtype)
    t = np.zeros(4, np.int64)
    g = np.ones(4, dtype)
    C = x.shape[1]
    _check(F.multi_margin_loss(dev(x), dev(t), reduction="none"),
           F.multi_margin_loss(x, t, reduction="none"),
           multi_margin_loss_ref(x, t, reduction="none"), dtype, C, "forward")
    _check(F.multi_margin_loss_backward(dev(g), dev(x), dev(t), reduction="none"),
           F.multi_margin_loss_backward(g, x, t, reduction="none"),
           multi_margin_loss_backward_ref(g, x, t, reduction="none"), dtype, C, "grad_input")


# ---------------------------------------------------------------------------
# target validation, devices, streams, determinism
# ---------------------------------------------------------------------------

X = np.zeros((3, 4))


def _target_4d():
    t = np.zeros((2, 4, 5), np.int64)
    t[1, 2, 3], t[1, 3, 0] = 5, 7
    return t


@pytest.mark.parametrize("call,match", [
    (lambda: F.cross_entropy(dev(X), dev(np.array([0, 4, 1]))), r"target value 4 at index \(1,\)"),
    (lambda: F.cross_entropy(dev(X), dev(np.array([0, -1, 1]))),
     r"target value -1 at index \(1,\).*ignore_index \(-100\)"),
    (lambda: F.cross_entropy(dev(X), dev(np.array([0, 7, -5]))), r"target value 7 at index \(1,\)"),
    (lambda: F.cross_entropy_backward(1.0, dev(X), dev(np.array([0, 9, 1]))), "target value 9"),
    (lambda: F.cross_entropy(dev(np.zeros((2, 3, 4, 5))), dev(_target_4d())),
     r"target value 5 at index \(1, 2, 3\)"),
    (lambda: F.multi_margin_loss(dev(X), dev(np.array([0, 1, 4]))),
     r"target value 4 at index \(2,\)"),
    (lambda: F.multi_margin_loss_backward(1.0, dev(X), dev(np.array([-3, 1, 0]))),
     r"target value -3 at index \(0,\)"),
])
def test_bad_target_is_a_value_error_on_the_gpu(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_bad_target_far_into_a_large_gpu_target():
    """The smallest bad index is reported whatever the order the threads ran in."""
    t = np.zeros(1_200_001, np.int64)
    t[[1_199_999, 900_000, 1_200_000]] = [12, 11, 13]
    with pytest.raises(ValueError, match=r"target value 11 at index \(900000,\)"):
        F.cross_entropy(dev(np.zeros((t.size, 2), np.float32)), dev(t))


@pytest.mark.parametrize("call,match", [
    (lambda x, t, w: F.cross_entropy(dev(x), t), "target is on the CPU"),
    (lambda x, t, w: F.cross_entropy(x, dev(t)), "target is on the GPU"),
    (lambda x, t, w: F.cross_entropy(dev(x), dev(t), w), "weight is on the CPU"),
    (lambda x, t, w: F.cross_entropy_backward(np.ones((), x.dtype), dev(x), dev(t)),
     "grad_output is on the CPU"),
    (lambda x, t, w: F.cross_entropy(dev(x), np.abs(x)), "target is on the CPU"),
    (lambda x, t, w: F.mse_loss(dev(x), x), "target is on the CPU"),
    (lambda x, t, w: F.multi_margin_loss(dev(x), t), "target is on the CPU"),
    (lambda x, t, w: F.multi_margin_loss(dev(x), dev(t), weight=w), "weight is on the CPU"),
])
def test_loss_devices_do_not_mix(call, match):
    x = np.ones((3, 4), np.float32)
    with pytest.raises(ValueError, match=match):
        call(x, np.array([0, 1, 3]), np.ones(4, np.float32))


def test_loss_runs_on_the_current_stream():
    x, t, w, ii = _ce_data((64, 40), "weight_ignore_in_range", np.float32, 19)
    stream = cp.cuda.Stream(non_blocking=True)
    with stream:
        xd, td, wd = dev(x, t, w)
        out = F.cross_entropy(xd, td, wd, ignore_index=ii)
        dx = F.cross_entropy_backward(1.0, xd, td, wd, ignore_index=ii)
    stream.synchronize()
    _check(out, F.cross_entropy(x, t, w, ignore_index=ii), cross_entropy_ref(x, t, w, ii),
           np.float32, x.size, "forward")
    _check(dx, F.cross_entropy_backward(1.0, x, t, w, ignore_index=ii),
           cross_entropy_backward_ref(1.0, x, t, w, ii), np.float32, 40, "grad_input")


def test_loss_gpu_is_deterministic_and_leaves_inputs_alone():
    """Bitwise the same results on a second call (fixed reduction blocks, no float atomics)."""
    rng = np.random.default_rng(20)
    x, t, w, _ = _ce_data((3, 5, 200, 300), "weight_ignore_in_range", np.float32, 21)
    xr, tr, wr, _ = _ce_data((20000, 40), "weight", np.float32, 22)
    y = np.abs(rand(rng, x.shape, np.float32))
    a, b = rand(rng, (1_000_003,), np.float32), rand(rng, (1_000_003,), np.float32)
    xm, tm = _margin_data(5000, 40, 1.0, np.float32, 23)
    args = [dev(v) for v in (x, t, w, xr, tr, wr, y, a, b, xm, tm)]
    copies = [v.copy() for v in args]
    x, t, w, xr, tr, wr, y, a, b, xm, tm = args

    def run():
        return [host(v) for v in (
            F.cross_entropy(x, t, w, ignore_index=1, label_smoothing=0.1),
            F.cross_entropy_backward(0.5, x, t, w, ignore_index=1, label_smoothing=0.1),
            F.cross_entropy(xr, tr, wr, reduction="sum"),
            F.cross_entropy_backward(0.5, xr, tr, wr),
            F.cross_entropy(x, y, w), F.mse_loss(a, b), F.mse_loss(a, b, reduction="sum"),
            F.multi_margin_loss(xm, tm, p=2, reduction="sum"))]

    first, second = run(), run()
    for i, (u, v) in enumerate(zip(first, second)):
        assert np.array_equal(u, v, equal_nan=True), f"result {i} differs between two calls"
    for i, (v, c) in enumerate(zip(args, copies)):
        assert bool(cp.array_equal(v, c)), f"input {i} was modified"


@pytest.mark.parametrize("name", ["CrossEntropyLoss", "MultiMarginLoss"])
def test_loss_modules_take_class_weights_on_the_gpu(name):
    """A CuPy weight stays on the device: NumPy cannot read one implicitly (np.asarray of a
    CuPy array is a TypeError), so the module must not try."""
    from fastconv import nn

    rng = np.random.default_rng(44)
    w = rng.uniform(0.5, 2.0, 5).astype(np.float32)
    x, t = rand(rng, (6, 5), np.float32), rng.integers(0, 5, 6)
    on_gpu = getattr(nn, name)(weight=dev(w))
    assert isinstance(on_gpu.weight, cp.ndarray)
    on_cpu = getattr(nn, name)(weight=w)
    got = on_gpu(dev(x), dev(t))
    assert abs(got - on_cpu(x, t)) <= 1e-6 * max(1.0, abs(got))
    assert_loss_close(host(on_gpu.backward()), on_cpu.backward(), 1e-6, what=name)
