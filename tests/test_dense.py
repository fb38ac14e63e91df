"""fastconv.functional linear / conv_transpose2d (and their backward) vs the NumPy reference.

Expected values always come from fastconv/_opinfo/dense.py and conv.py (float64 einsum and
tap scatter / gather), never from fastconv itself.
"""

import itertools
import re

import numpy as np
import pytest

import fastconv
import fastconv.functional as F
from fastconv._loader import _C

from fastconv._opinfo.dense import linear_ref, linear_backward_ref
from fastconv._opinfo.conv import (conv_transpose2d_output_size, conv_transpose2d_ref,
                                   conv_transpose2d_backward_ref)
from _util import assert_close, rtol_for, rand

DTYPES = [np.float32, np.float64]
DTYPE_IDS = ["f32", "f64"]
MASKS = list(itertools.product([False, True], repeat=3))
MASK_IDS = ["".join("1" if v else "0" for v in m) for m in MASKS]


def _assert_shape_in(msg, shape):
    """The message shows the shape, e.g. (2, 6, 6, 5) or (5,)."""
    pat = r"\(\s*" + r"\s*,\s*".join(str(d) for d in shape) + r"\s*,?\s*\)"
    assert re.search(pat, msg), f"message should show the shape {shape}: {msg!r}"


def assert_close_nonfinite(actual, expected, rtol, what=""):
    """NaN and +-Inf exactly where the reference has them; finite values within rtol."""
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    assert a.shape == e.shape, what
    for name, test in (("NaN", np.isnan), ("+Inf", np.isposinf), ("-Inf", np.isneginf)):
        assert np.array_equal(test(a), test(e)), f"{what}: {name} pattern differs"
    assert np.isnan(e).any() or np.isinf(e).any(), f"{what}: the case must produce non-finites"
    fin = np.isfinite(e)
    assert_close(np.where(fin, a, 0.0), np.where(fin, e, 0.0), rtol, what=what)


class _threads:
    """Run a block with n fastconv threads, restoring the previous count."""

    def __init__(self, n):
        self.n = n

    def __enter__(self):
        self.before = fastconv.get_num_threads()
        fastconv.set_num_threads(self.n)

    def __exit__(self, *exc):
        fastconv.set_num_threads(self.before)


# ===========================================================================
# linear
# ===========================================================================

# (id, input shape, out_features)
LINEAR_CASES = [
    ("1d", (7,), 5),
    ("batch1", (1, 7), 4),
    ("2d_odd", (6, 13), 5),
    ("3d", (2, 3, 7), 4),
    ("4d", (2, 1, 3, 7), 4),
    ("in1", (4, 1), 3),
    ("out1", (4, 6), 1),
    ("in1_out1", (1, 1), 1),
    ("rows_split_remainder", (1000, 257), 129),
    ("cols_split_remainder", (3, 301), 601),
    ("fashion_head", (64, 1568), 10),
]
LINEAR_IDS = [c[0] for c in LINEAR_CASES]


def _linear_data(x_shape, out_features, dtype, seed, bias=True):
    rng = np.random.default_rng(seed)
    x = rand(rng, x_shape, dtype)
    w = rand(rng, (out_features, x_shape[-1]), dtype)
    b = rand(rng, (out_features,), dtype) if bias else None
    dout = rand(rng, x_shape[:-1] + (out_features,), dtype)
    return x, w, b, dout


def _rows(x_shape):
    return int(np.prod(x_shape[:-1]))


def _check_linear_backward(got, dout, x, w, dtype, outputs=(True, True, True), acc=(None, None)):
    ref = list(linear_backward_ref(dout, x, w))
    for i, a in ((1, acc[0]), (2, acc[1])):
        if a is not None:
            ref[i] = ref[i] + a
    lens = (w.shape[0], _rows(x.shape), _rows(x.shape))
    for name, want, g, r, L in zip(("grad_input", "grad_weight", "grad_bias"), outputs, got, ref,
                                   lens):
        if not want:
            assert g is None, f"{name} should be None"
            continue
        assert isinstance(g, np.ndarray) and g.dtype == dtype, name
        assert_close(g, r, rtol_for(dtype, L), what=name)


@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", LINEAR_CASES, ids=LINEAR_IDS)
def test_linear_forward(case, dtype, with_bias):
    _, x_shape, out_features = case
    x, w, b, _ = _linear_data(x_shape, out_features, dtype, 1, with_bias)
    out = F.linear(x, w, b)
    assert isinstance(out, np.ndarray) and out.dtype == dtype
    assert out.shape == x_shape[:-1] + (out_features,)
    assert_close(out, linear_ref(x, w, b), rtol_for(dtype, x_shape[-1]), what="forward")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", LINEAR_CASES, ids=LINEAR_IDS)
def test_linear_backward(case, dtype):
    _, x_shape, out_features = case
    x, w, _, dout = _linear_data(x_shape, out_features, dtype, 2, bias=False)
    got = F.linear_backward(dout, x, w)
    assert isinstance(got, tuple) and len(got) == 3
    assert got[0].shape == x.shape and got[1].shape == w.shape and got[2].shape == (out_features,)
    _check_linear_backward(got, dout, x, w, dtype)


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("case_id", ["rows_split_remainder", "cols_split_remainder", "3d"])
def test_linear_thread_counts(case_id, threads):
    """The GEMM split across threads covers every row/column once, whatever the remainder."""
    _, x_shape, out_features = LINEAR_CASES[LINEAR_IDS.index(case_id)]
    x, w, b, dout = _linear_data(x_shape, out_features, np.float64, 3)
    with _threads(threads):
        out = F.linear(x, w, b)
        got = F.linear_backward(dout, x, w)
    assert_close(out, linear_ref(x, w, b), 1e-10, what=f"forward, {threads} threads")
    _check_linear_backward(got, dout, x, w, np.float64)


# Shapes around the CPU's small-batch forward (float32 under AVX-512: at most 64 rows, in and
# out features >= 256, >= 2^20 weights, the transposed input within 1 MiB: csrc/cpu/dense.cpp),
# 65 rows just past it; under the other variants (and in float64) they run the BLAS path.
SMALL_BATCH_CASES = [((1, 1024), 1024), ((17, 1031), 1029), ((2, 8, 300), 4001),
                     ((64, 4096), 257), ((33, 256), 4096), ((65, 1024), 1024)]


@pytest.mark.parametrize("x_shape,out_features", SMALL_BATCH_CASES,
                         ids=[f"{'x'.join(map(str, s))}-{o}" for s, o in SMALL_BATCH_CASES])
def test_linear_small_batch_forward(x_shape, out_features, cpu_isa):
    """float32 against the float64 reference, with and without bias, every output written
    (the output handed over full of NaN), and a NaN in one input row reaching that row's
    outputs only; on the small-batch kernel, the same bits for 1, 2 and 3 threads (the BLAS
    path's blocks follow the thread count)."""
    x, w, b, _ = _linear_data(x_shape, out_features, np.float32, 12)
    rtol = rtol_for(np.float32, x_shape[-1])
    outs = []
    for threads in (1, 2, 3):
        with _threads(threads):
            outs.append(F.linear(x, w, b))
    assert_close(outs[0], linear_ref(x, w, b), rtol, what="forward")
    if cpu_isa == "avx512" and _rows(x_shape) <= 64:
        for other in outs[1:]:
            assert np.array_equal(outs[0], other)
    out = np.full(x_shape[:-1] + (out_features,), np.nan, dtype=np.float32)
    _C.linear_forward(_handing(out), x, w, None)
    assert_close(out, linear_ref(x, w, None), rtol, what="forward, no bias")
    xn = x.reshape(-1, x_shape[-1]).copy()
    xn[-1, 3] = np.nan
    got = F.linear(xn, w, b)
    assert np.isnan(got[-1]).all() and np.isfinite(got[:-1]).all()


def test_long_float32_sums_stay_at_pytorchs_accuracy(cpu_isa):
    """A float32 dot product of thousands of terms in one running sum loses a bit every few
    hundred: the small-batch forward over 8192 input features came 5e-6 of the largest output
    off the float64 product, the narrow weight gradient over 100000 rows 8e-6, ten times
    PyTorch's float32 (2-5e-7: its GEMM sums in blocks of K). Summed in chunks, both stay
    within 1e-6."""
    rng = np.random.default_rng(31)
    x = rng.standard_normal((8, 8192)).astype(np.float32)
    w = (rng.standard_normal((512, 8192)) / 90).astype(np.float32)
    assert_close(F.linear(x, w), x.astype(np.float64) @ w.astype(np.float64).T, 1e-6,
                 what="small-batch forward")
    x = rng.standard_normal((100000, 32)).astype(np.float32)
    w = rng.standard_normal((14, 32)).astype(np.float32)
    dy = rng.standard_normal((100000, 14)).astype(np.float32)
    _, dw, _ = F.linear_backward(dy, x, w, output_mask=(False, True, False))
    assert_close(dw, dy.astype(np.float64).T @ x.astype(np.float64), 1e-6,
                 what="narrow weight gradient")


# Shapes around the CPU's narrow backward (float32 under AVX-512: at most 14 outputs, 16 input
# features or more: csrc/cpu/dense.cpp): a classifier's head, one output, rows in fours and not,
# input features past a whole vector and past a work item's 64, 15 outputs just past it.
NARROW_CASES = [((64, 1568), 10), ((1, 16), 1), ((5, 17), 14), ((3, 7, 100), 3),
                ((257, 1031), 10), ((9, 64), 15)]


@pytest.mark.parametrize("x_shape,out_features", NARROW_CASES,
                         ids=[f"{'x'.join(map(str, s))}-{o}" for s, o in NARROW_CASES])
def test_linear_narrow_backward(x_shape, out_features, cpu_isa):
    """float32 against the float64 reference with the weight gradient accumulated into a given
    one, grad_input handed over full of NaN and every element written, a NaN in one input row
    reaching the weight gradient only; on the narrow kernel the same bits for 1, 2 and 3
    threads."""
    x, w, _, dout = _linear_data(x_shape, out_features, np.float32, 13, bias=False)
    gw0 = rand(np.random.default_rng(14), w.shape, np.float32)
    results = []
    for threads in (1, 2, 3):
        with _threads(threads):
            buf = gw0.copy()
            results.append(F.linear_backward(dout, x, w, grad_weight=buf))
            assert results[-1][1] is buf
    _check_linear_backward(results[0], dout, x, w, np.float32, acc=(gw0, None))
    if cpu_isa == "avx512" and out_features <= 14:
        for other in results[1:]:
            for a, b in zip(results[0], other):
                assert np.array_equal(a, b)
    dinp = np.full(x_shape, np.nan, dtype=np.float32)
    _C.linear_backward(_handing(dinp), None, dout, x, w, True, False, False, None, None)
    assert_close(dinp, linear_backward_ref(dout, x, w)[0], rtol_for(np.float32, out_features),
                 what="grad_input, handed over full of NaN")
    xn = x.reshape(-1, x_shape[-1]).copy()
    xn[-1, 3] = np.nan
    dx, dw, _ = F.linear_backward(dout.reshape(-1, out_features), xn, w)
    assert np.isnan(dw[:, 3]).all() and np.isfinite(np.delete(dw, 3, axis=1)).all()
    assert np.isfinite(dx).all()


@pytest.mark.parametrize("mask", MASKS, ids=MASK_IDS)
def test_linear_backward_output_mask(mask):
    x, w, _, dout = _linear_data((2, 3, 7), 4, np.float64, 4, bias=False)
    got = F.linear_backward(dout, x, w, output_mask=mask)
    assert isinstance(got, tuple) and len(got) == 3
    _check_linear_backward(got, dout, x, w, np.float64, outputs=mask)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case_id", ["3d", "rows_split_remainder", "cols_split_remainder"])
def test_linear_backward_accumulates(case_id, dtype):
    _, x_shape, out_features = LINEAR_CASES[LINEAR_IDS.index(case_id)]
    x, w, _, dout = _linear_data(x_shape, out_features, dtype, 5, bias=False)
    rng = np.random.default_rng(6)
    gw0, gb0 = rand(rng, w.shape, dtype), rand(rng, (out_features,), dtype)
    buf_w, buf_b = gw0.copy(), gb0.copy()
    got = F.linear_backward(dout, x, w, grad_weight=buf_w, grad_bias=buf_b)
    assert got[1] is buf_w and got[2] is buf_b
    _check_linear_backward(got, dout, x, w, dtype, acc=(gw0, gb0))
    got2 = F.linear_backward(dout, x, w, grad_weight=buf_w, grad_bias=buf_b)
    assert got2[1] is buf_w and got2[2] is buf_b and got2[0] is not got[0]
    _, dw, db = linear_backward_ref(dout, x, w)
    tol = rtol_for(dtype, _rows(x_shape))
    assert_close(buf_w, gw0 + 2 * dw, tol, what="grad_weight (2nd)")
    assert_close(buf_b, gb0 + 2 * db, tol, what="grad_bias (2nd)")
    assert_close(got2[0], linear_backward_ref(dout, x, w)[0], rtol_for(dtype, out_features),
                 what="grad_input is written, not accumulated")


def test_linear_backward_accumulates_weight_only():
    x, w, _, dout = _linear_data((5, 6), 3, np.float64, 7, bias=False)
    buf_w = np.ones(w.shape)
    dx, gw, gb = F.linear_backward(dout, x, w, output_mask=(False, True, False), grad_weight=buf_w)
    assert dx is None and gb is None and gw is buf_w
    assert_close(gw, 1.0 + linear_backward_ref(dout, x, w)[1], 1e-10)


def _handing(out):
    """An allocator for the linear binding that hands it `out` (stale memory to overwrite)."""
    return lambda like, shape: out


@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case_id", ["2d_odd", "rows_split_remainder", "cols_split_remainder"])
def test_linear_outputs_fully_written(case_id, dtype, with_bias):
    """Outputs handed to the kernel full of NaN come back with every element written."""
    _, x_shape, out_features = LINEAR_CASES[LINEAR_IDS.index(case_id)]
    x, w, b, dout = _linear_data(x_shape, out_features, dtype, 8, with_bias)
    out = np.full(x_shape[:-1] + (out_features,), np.nan, dtype=dtype)
    _C.linear_forward(_handing(out), x, w, b)
    assert_close(out, linear_ref(x, w, b), rtol_for(dtype, x_shape[-1]), what="forward")
    dinp = np.full(x_shape, np.nan, dtype=dtype)
    _C.linear_backward(_handing(dinp), None, dout, x, w, True, False, False, None, None)
    assert_close(dinp, linear_backward_ref(dout, x, w)[0], rtol_for(dtype, out_features),
                 what="grad_input")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_linear_empty_sizes(dtype):
    """Zero rows, zero in_features and zero out_features behave as in PyTorch."""
    rng = np.random.default_rng(9)
    # no rows: empty output, parameter gradients unchanged (+= 0)
    x, w, b = rand(rng, (0, 5), dtype), rand(rng, (4, 5), dtype), rand(rng, (4,), dtype)
    assert F.linear(x, w, b).shape == (0, 4)
    gw0 = rand(rng, (4, 5), dtype)
    dx, gw, gb = F.linear_backward(np.zeros((0, 4), dtype), x, w, grad_weight=gw0.copy())
    assert dx.shape == (0, 5)
    assert_close(gw, gw0, 0.0)
    assert_close(gb, np.zeros(4), 0.0)
    # no in_features: the output is the bias (zeros without), even over stale memory
    x, w = rand(rng, (3, 0), dtype), rand(rng, (4, 0), dtype)
    out = np.full((3, 4), np.nan, dtype=dtype)
    _C.linear_forward(_handing(out), x, w, b)
    assert_close(out, np.broadcast_to(b, (3, 4)), 0.0)
    _C.linear_forward(_handing(out), x, w, None)
    assert_close(out, np.zeros((3, 4)), 0.0)
    dout = rand(rng, (3, 4), dtype)
    dx, gw, gb = F.linear_backward(dout, x, w)
    assert dx.shape == (3, 0) and gw.shape == (4, 0)
    assert_close(gb, dout.astype(np.float64).sum(axis=0), rtol_for(dtype))
    # no out_features: empty output, zero input gradient
    x, w = rand(rng, (3, 5), dtype), rand(rng, (0, 5), dtype)
    assert F.linear(x, w).shape == (3, 0)
    dinp = np.full((3, 5), np.nan, dtype=dtype)
    _C.linear_backward(_handing(dinp), None, np.zeros((3, 0), dtype), x, w, True, False, False,
                       None, None)
    assert_close(dinp, np.zeros((3, 5)), 0.0)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_linear_nan_inf_propagate(dtype):
    x, w, b, dout = _linear_data((6, 9), 5, dtype, 10)
    x[1, 2] = np.nan
    x[3, 0] = np.inf
    x[4, 8] = -np.inf
    b[2] = np.nan
    with np.errstate(invalid="ignore"):
        ref = linear_ref(x, w, b)
    assert_close_nonfinite(F.linear(x, w, b), ref, rtol_for(dtype, 9), what="forward")
    dout[2, 1] = np.inf
    dout[5, 3] = np.nan
    x2 = rand(np.random.default_rng(11), x.shape, dtype)
    got = F.linear_backward(dout, x2, w)
    with np.errstate(invalid="ignore"):
        refs = linear_backward_ref(dout, x2, w)
    for g, r, name in zip(got, refs, ("dx", "dw", "db")):
        assert_close_nonfinite(g, r, rtol_for(dtype, 6), what=name)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_linear_noncontiguous_and_not_modified(dtype):
    x, w, b, dout = _linear_data((4, 3, 7), 5, dtype, 12)
    copies = [a.copy() for a in (x, w, b, dout)]
    xv = np.asfortranarray(x)
    wv = np.ascontiguousarray(w.T).T
    bv = np.repeat(b, 2)[::2]
    gv = np.ascontiguousarray(dout[::-1])[::-1]
    for a, v in ((x, xv), (w, wv), (b, bv), (dout, gv)):
        assert np.array_equal(a, v) and not v.flags.c_contiguous
    assert_close(F.linear(xv, wv, bv), linear_ref(x, w, b), rtol_for(dtype, 7))
    _check_linear_backward(F.linear_backward(gv, xv, wv), dout, x, w, dtype)
    F.linear(x, w, b)
    F.linear_backward(dout, x, w)
    for a, c in zip((x, w, b, dout), copies):
        assert np.array_equal(a, c), "an input was modified"


def _lin(x=None, w=None, b=None):
    rng = np.random.default_rng(13)
    return F.linear(rng.standard_normal((3, 5)) if x is None else x,
                    rng.standard_normal((4, 5)) if w is None else w, b)


def test_linear_errors_in_features():
    with pytest.raises(ValueError, match="in_features") as ei:
        _lin(x=np.zeros((3, 6)))
    _assert_shape_in(str(ei.value), (3, 6))
    _assert_shape_in(str(ei.value), (4, 5))
    with pytest.raises(ValueError, match="in_features"):
        F.linear_backward(np.zeros((3, 4)), np.zeros((3, 6)), np.zeros((4, 5)))


@pytest.mark.parametrize("shape", [(5,), (4, 5, 1), (1, 4, 5)])
def test_linear_errors_weight_not_2d(shape):
    with pytest.raises(ValueError, match="weight") as ei:
        _lin(w=np.zeros(shape))
    _assert_shape_in(str(ei.value), shape)
    with pytest.raises(ValueError, match="weight"):
        F.linear_backward(np.zeros((3, 4)), np.zeros((3, 5)), np.zeros(shape))


@pytest.mark.parametrize("shape", [(3,), (5,), (4, 1), (1, 4), ()])
def test_linear_errors_bias_shape(shape):
    with pytest.raises(ValueError, match="bias") as ei:
        _lin(b=np.zeros(shape))
    _assert_shape_in(str(ei.value), (4,))


def test_linear_errors_input():
    with pytest.raises(ValueError, match="input"):
        _lin(x=np.zeros(()))
    with pytest.raises(TypeError, match="input"):
        _lin(x=[[1.0] * 5])
    with pytest.raises(TypeError, match="input"):
        _lin(x=np.zeros((3, 5), dtype=np.int64))
    with pytest.raises(TypeError, match="weight"):
        _lin(w=np.zeros((4, 5), dtype=np.float32))
    with pytest.raises(TypeError, match="bias"):
        _lin(b=np.zeros(4, dtype=np.float32))


def test_linear_errors_backward_arguments(no_allocation):
    x, w, dout = np.zeros((2, 3, 5)), np.zeros((4, 5)), np.zeros((2, 3, 4))
    with pytest.raises(ValueError, match="grad_output") as ei:
        F.linear_backward(np.zeros((2, 3, 5)), x, w)
    _assert_shape_in(str(ei.value), (2, 3, 4))
    with pytest.raises(ValueError, match="grad_output"):
        F.linear_backward(np.zeros((6, 4)), x, w)
    with pytest.raises(TypeError, match="grad_output"):
        F.linear_backward(dout.astype(np.float32), x, w)
    with pytest.raises(ValueError, match="grad_weight"):
        F.linear_backward(dout, x, w, grad_weight=np.zeros((5, 4)))
    with pytest.raises(TypeError, match="grad_weight"):
        F.linear_backward(dout, x, w, grad_weight=np.zeros((4, 5), dtype=np.float32))
    with pytest.raises(ValueError, match="grad_bias"):
        F.linear_backward(dout, x, w, grad_bias=np.zeros(5))
    with pytest.raises(ValueError, match="grad_bias"):
        F.linear_backward(dout, x, w, grad_bias=np.zeros(4)[::-1].copy()[::-1][:3])
    with pytest.raises(ValueError, match="grad_weight"):
        F.linear_backward(dout, x, w, grad_weight=np.zeros((4, 5)).T.copy().T[:, :4])
    with pytest.raises(TypeError, match="output_mask"):
        F.linear_backward(dout, x, w, output_mask=(True, True))
    with pytest.raises(TypeError, match="output_mask"):
        F.linear_backward(dout, x, w, output_mask=(1, 1, 1))


def test_linear_errors_readonly_grad_buffer(no_allocation):
    x, w, dout = np.zeros((3, 5)), np.zeros((4, 5)), np.zeros((3, 4))
    buf = np.zeros((4, 5))
    buf.setflags(write=False)
    with pytest.raises(ValueError, match="grad_weight"):
        F.linear_backward(dout, x, w, grad_weight=buf)


# ===========================================================================
# conv_transpose2d
# ===========================================================================

def _ct(id, N, Cin, H, W, Cout, R, S, stride=1, padding=0, output_padding=0, groups=1,
        dilation=1):
    return dict(id=id, N=N, Cin=Cin, H=H, W=W, Cout=Cout, R=R, S=S,
                args=dict(stride=stride, padding=padding, output_padding=output_padding,
                          groups=groups, dilation=dilation))


CT_CASES = [
    _ct("stride1", 2, 3, 5, 6, 4, 3, 3),
    _ct("stride1_pad1", 2, 3, 6, 5, 4, 3, 3, padding=1),
    _ct("stride2_pad1_op1", 2, 3, 5, 5, 4, 3, 3, stride=2, padding=1, output_padding=1),
    _ct("stride3_op2", 2, 2, 4, 5, 3, 3, 3, stride=3, output_padding=2),
    _ct("stride_gt_kernel_gaps", 2, 2, 4, 4, 3, 2, 2, stride=3, output_padding=2),
    _ct("nonsquare_stride_2_3", 2, 3, 5, 7, 2, 3, 5, stride=(2, 3), padding=(1, 2),
        output_padding=(1, 0)),
    _ct("dilation2_pad2", 2, 3, 5, 6, 4, 3, 3, padding=2, dilation=2),
    _ct("op_below_dilation_not_stride", 2, 3, 5, 6, 4, 3, 2, output_padding=(1, 2),
        dilation=(2, 3)),
    _ct("1x1", 2, 5, 7, 6, 3, 1, 1),
    _ct("1x1_op_dilation", 2, 4, 5, 6, 3, 1, 1, output_padding=1, dilation=2),
    _ct("1x1_stride2", 2, 4, 5, 6, 3, 1, 1, stride=2, output_padding=1),
    _ct("groups2", 2, 4, 6, 5, 6, 3, 3, stride=2, padding=1, output_padding=1, groups=2),
    _ct("groups3_stride3", 2, 6, 4, 5, 3, 2, 3, stride=3, padding=1, output_padding=2, groups=3),
    _ct("depthwise", 2, 5, 6, 6, 5, 3, 3, padding=1, groups=5),
    _ct("depthwise_mult2", 2, 4, 5, 6, 8, 3, 3, stride=2, padding=1, output_padding=1, groups=4),
    _ct("batch1", 1, 3, 6, 7, 2, 4, 4, stride=2, padding=1),
    _ct("dcgan_4x4_s2_p1", 2, 8, 7, 7, 4, 4, 4, stride=2, padding=1),
    _ct("padding_crops_to_1x1", 2, 2, 3, 3, 3, 5, 5, padding=3),
    _ct("padding_larger_than_half_kernel", 1, 2, 4, 4, 2, 3, 3, stride=2, padding=2,
        output_padding=1),
    _ct("many_channels", 2, 32, 6, 6, 24, 3, 3, stride=2, padding=1, output_padding=1),
    _ct("combo", 3, 6, 5, 4, 4, 3, 2, stride=(2, 1), padding=(1, 0), output_padding=(1, 0),
        groups=2, dilation=(1, 2)),
]
CT_IDS = [c["id"] for c in CT_CASES]
CT_BY_ID = {c["id"]: c for c in CT_CASES}


def ct_out_hw(case):
    return conv_transpose2d_output_size(case["H"], case["W"], (case["R"], case["S"]),
                                        *(case["args"][k] for k in
                                          ("stride", "padding", "output_padding", "dilation")))


def ct_data(case, dtype, seed, bias=True):
    rng = np.random.default_rng(seed)
    N, Cin, H, W, Cout, R, S = (case[k] for k in ("N", "Cin", "H", "W", "Cout", "R", "S"))
    g = case["args"]["groups"]
    x = rand(rng, (N, Cin, H, W), dtype)
    w = rand(rng, (Cin, Cout // g, R, S), dtype)
    b = rand(rng, (Cout,), dtype) if bias else None
    dout = rand(rng, (N, Cout) + ct_out_hw(case), dtype)
    return x, w, b, dout


def ct_lengths(case):
    """Summed terms per element of (output, grad_input, grad_weight and grad_bias)."""
    g = case["args"]["groups"]
    Ho, Wo = ct_out_hw(case)
    return ((case["Cin"] // g) * case["R"] * case["S"], (case["Cout"] // g) * case["R"] * case["S"],
            case["N"] * max(case["H"] * case["W"], Ho * Wo))


def _check_ct_backward(case, dtype, got, x, w, dout, outputs=(True, True, True), acc=(None, None)):
    ref = list(conv_transpose2d_backward_ref(dout, x, w, **case["args"]))
    for i, a in ((1, acc[0]), (2, acc[1])):
        if a is not None:
            ref[i] = ref[i] + a
    _, l_dx, l_dw = ct_lengths(case)
    errors = []
    for name, want, g, r, L in zip(("grad_input", "grad_weight", "grad_bias"), outputs, got, ref,
                                   (l_dx, l_dw, l_dw)):
        if not want:
            if g is not None:
                errors.append(f"{name} should be None")
            continue
        try:
            assert isinstance(g, np.ndarray) and g.dtype == dtype, f"{name}: {type(g)}"
            assert_close(g, r, rtol_for(dtype, L), what=name)
        except AssertionError as e:
            errors.append(str(e))
    if errors:
        raise AssertionError(f"case {case['id']} {np.dtype(dtype)}:\n" + "\n".join(errors))


@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", CT_CASES, ids=CT_IDS)
def test_conv_transpose2d_forward(case, dtype, with_bias):
    x, w, b, _ = ct_data(case, dtype, 20, with_bias)
    out = F.conv_transpose2d(x, w, b, **case["args"])
    assert isinstance(out, np.ndarray) and out.dtype == dtype
    assert out.shape == (case["N"], case["Cout"]) + ct_out_hw(case)
    assert_close(out, conv_transpose2d_ref(x, w, b, **case["args"]),
                 rtol_for(dtype, ct_lengths(case)[0]), what=f"forward {case['id']}")


def test_conv_transpose2d_positional_arguments_in_torch_order():
    """stride, padding, output_padding, groups, dilation: groups comes before dilation."""
    case = CT_BY_ID["combo"]
    x, w, b, _ = ct_data(case, np.float64, 21)
    a = case["args"]
    out = F.conv_transpose2d(x, w, b, a["stride"], a["padding"], a["output_padding"],
                             a["groups"], a["dilation"])
    assert_close(out, conv_transpose2d_ref(x, w, b, **a), 1e-10)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", CT_CASES, ids=CT_IDS)
def test_conv_transpose2d_backward(case, dtype):
    x, w, _, dout = ct_data(case, dtype, 22, bias=False)
    got = F.conv_transpose2d_backward(dout, x, w, **case["args"])
    assert isinstance(got, tuple) and len(got) == 3
    assert got[0].shape == x.shape and got[1].shape == w.shape and got[2].shape == (case["Cout"],)
    _check_ct_backward(case, dtype, got, x, w, dout)


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("case_id", ["combo", "batch1", "1x1_op_dilation"])
def test_conv_transpose2d_thread_counts(case_id, threads):
    case = CT_BY_ID[case_id]
    x, w, b, dout = ct_data(case, np.float64, 23)
    with _threads(threads):
        out = F.conv_transpose2d(x, w, b, **case["args"])
        got = F.conv_transpose2d_backward(dout, x, w, **case["args"])
    assert_close(out, conv_transpose2d_ref(x, w, b, **case["args"]), 1e-10)
    _check_ct_backward(case, np.float64, got, x, w, dout)


@pytest.mark.parametrize("mask", MASKS, ids=MASK_IDS)
def test_conv_transpose2d_backward_output_mask(mask):
    case = CT_BY_ID["combo"]
    x, w, _, dout = ct_data(case, np.float64, 24, bias=False)
    got = F.conv_transpose2d_backward(dout, x, w, output_mask=mask, **case["args"])
    assert isinstance(got, tuple) and len(got) == 3
    _check_ct_backward(case, np.float64, got, x, w, dout, outputs=mask)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case_id", ["combo", "depthwise_mult2", "1x1", "stride3_op2"])
def test_conv_transpose2d_backward_accumulates(case_id, dtype):
    case = CT_BY_ID[case_id]
    x, w, _, dout = ct_data(case, dtype, 25, bias=False)
    rng = np.random.default_rng(26)
    gw0, gb0 = rand(rng, w.shape, dtype), rand(rng, (case["Cout"],), dtype)
    buf_w, buf_b = gw0.copy(), gb0.copy()
    got = F.conv_transpose2d_backward(dout, x, w, **case["args"], grad_weight=buf_w,
                                      grad_bias=buf_b)
    assert got[1] is buf_w and got[2] is buf_b
    _check_ct_backward(case, dtype, got, x, w, dout, acc=(gw0, gb0))
    got2 = F.conv_transpose2d_backward(dout, x, w, **case["args"], grad_weight=buf_w,
                                       grad_bias=buf_b)
    assert got2[0] is not got[0] and got2[1] is buf_w and got2[2] is buf_b
    dx, dw, db = conv_transpose2d_backward_ref(dout, x, w, **case["args"])
    assert_close(got2[0], dx, rtol_for(dtype, ct_lengths(case)[1]),
                 what="grad_input is written, not accumulated")
    tol = rtol_for(dtype, ct_lengths(case)[2])
    assert_close(buf_w, gw0 + 2 * dw, tol, what="grad_weight (2nd)")
    assert_close(buf_b, gb0 + 2 * db, tol, what="grad_bias (2nd)")


@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case_id", ["stride_gt_kernel_gaps", "op_below_dilation_not_stride",
                                     "1x1_op_dilation", "1x1_stride2", "groups3_stride3"])
def test_conv_transpose2d_outputs_fully_written(poisoned, case_id, dtype, with_bias):
    """Outputs handed to the kernel full of NaN (poisoned) come back with every element written:
    pixels no input reaches (stride gaps, output_padding rows) are exactly the bias (or 0)."""
    case = CT_BY_ID[case_id]
    x, w, b, dout = ct_data(case, dtype, 27, with_bias)
    out = F.conv_transpose2d(x, w, b, **case["args"])
    ref = conv_transpose2d_ref(x, w, b, **case["args"])
    assert_close(out, ref, rtol_for(dtype, ct_lengths(case)[0]), what="forward")
    unreached = conv_transpose2d_ref(np.ones(x.shape), np.ones(w.shape), None,
                                     **case["args"]) == 0
    assert unreached.any(), "the case should leave some output pixels unreached"
    expect = np.zeros(ref.shape) if b is None else np.broadcast_to(b.reshape(1, -1, 1, 1),
                                                                   ref.shape)
    assert np.array_equal(out[unreached], expect[unreached])
    dinp, _, _ = F.conv_transpose2d_backward(dout, x, w, **case["args"],
                                             output_mask=(True, False, False))
    assert_close(dinp, conv_transpose2d_backward_ref(dout, x, w, **case["args"])[0],
                 rtol_for(dtype, ct_lengths(case)[1]), what="grad_input")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case_id", ["stride2_pad1_op1", "groups2", "1x1"])
def test_conv_transpose2d_nan_inf_propagate(case_id, dtype):
    case = CT_BY_ID[case_id]
    x, w, b, dout = ct_data(case, dtype, 28)
    x[0, 1, 2, 3] = np.nan
    x[1, 0, 0, 0] = np.inf
    x[1, -1, -1, -1] = -np.inf
    fwd, l_dx, _ = ct_lengths(case)
    with np.errstate(invalid="ignore"):
        ref = conv_transpose2d_ref(x, w, b, **case["args"])
    assert_close_nonfinite(F.conv_transpose2d(x, w, b, **case["args"]), ref,
                           rtol_for(dtype, fwd), what="forward")
    dout[0, 0, 1, 1] = np.nan
    dout[1, -1, -1, -2] = np.inf
    dx, _, _ = F.conv_transpose2d_backward(dout, x, w, output_mask=(True, False, False),
                                           **case["args"])
    with np.errstate(invalid="ignore"):
        ref = conv_transpose2d_backward_ref(dout, x, w, **case["args"])[0]
    assert_close_nonfinite(dx, ref, rtol_for(dtype, l_dx), what="grad_input")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_conv_transpose2d_noncontiguous_and_not_modified(dtype):
    case = CT_BY_ID["combo"]
    x, w, b, dout = ct_data(case, dtype, 29)
    copies = [a.copy() for a in (x, w, b, dout)]
    xv = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    wv = np.asfortranarray(w)
    bv = np.repeat(b, 2)[::2]
    gv = np.ascontiguousarray(dout[:, :, ::-1])[:, :, ::-1]
    for a, v in ((x, xv), (w, wv), (b, bv), (dout, gv)):
        assert np.array_equal(a, v) and not v.flags.c_contiguous
    fwd = ct_lengths(case)[0]
    assert_close(F.conv_transpose2d(xv, wv, bv, **case["args"]),
                 conv_transpose2d_ref(x, w, b, **case["args"]), rtol_for(dtype, fwd))
    _check_ct_backward(case, dtype, F.conv_transpose2d_backward(gv, xv, wv, **case["args"]),
                       x, w, dout)
    for a, c in zip((x, w, b, dout), copies):
        assert np.array_equal(a, c), "an input was modified"


def test_conv_transpose2d_is_adjoint_of_conv2d():
    """fastconv's conv_transpose2d against fastconv's conv2d: <ct(x), y> == <x, conv2d(y)>."""
    case = CT_BY_ID["combo"]
    x, w, _, y = ct_data(case, np.float64, 30, bias=False)
    a = case["args"]
    ct = F.conv_transpose2d(x, w, None, **a)
    conv = F.conv2d(y, w, None, stride=a["stride"], padding=a["padding"], dilation=a["dilation"],
                    groups=a["groups"])
    lhs = float(np.sum(ct * y))
    assert abs(lhs - float(np.sum(x * conv))) <= 1e-12 * float(np.sum(np.abs(ct * y)))


# ---------------------------------------------------------------------------
# conv_transpose2d errors
# ---------------------------------------------------------------------------

def _ct_x(shape=(2, 4, 5, 5), dtype=np.float64):
    return np.random.default_rng(40).standard_normal(shape).astype(dtype)


def _ct_w(shape=(4, 3, 3, 3), dtype=np.float64):
    return np.random.default_rng(41).standard_normal(shape).astype(dtype)


def _ct_fwd(x=None, w=None, b=None, **kw):
    return F.conv_transpose2d(_ct_x() if x is None else x, _ct_w() if w is None else w, b, **kw)


def _ct_bwd(g=None, x=None, w=None, **kw):
    return F.conv_transpose2d_backward(np.zeros((2, 3, 7, 7)) if g is None else g,
                                       _ct_x() if x is None else x, _ct_w() if w is None else w,
                                       **kw)


CT_OPS = {"forward": _ct_fwd, "backward": _ct_bwd}


def test_conv_transpose2d_errors_valid_baseline():
    assert _ct_fwd().shape == (2, 3, 7, 7)
    dx, dw, db = _ct_bwd()
    assert dx.shape == (2, 4, 5, 5) and dw.shape == (4, 3, 3, 3) and db.shape == (3,)


@pytest.mark.parametrize("op", ["forward", "backward"])
@pytest.mark.parametrize("kw", [dict(output_padding=1), dict(output_padding=2, stride=2),
                                dict(output_padding=(0, 2), stride=2, dilation=(1, 2)),
                                dict(output_padding=(2, 0), stride=2, dilation=2)],
                         ids=["op1_s1", "op2_s2", "op_w2_s2_d2", "op_h2_s2_d2"])
def test_conv_transpose2d_errors_output_padding_too_large(op, kw):
    with pytest.raises(ValueError, match="output_padding"):
        CT_OPS[op](**kw)


@pytest.mark.parametrize("op", ["forward", "backward"])
@pytest.mark.parametrize("output_padding", [-1, (0, -1)])
def test_conv_transpose2d_errors_negative_output_padding(op, output_padding):
    with pytest.raises(ValueError, match="output_padding"):
        CT_OPS[op](output_padding=output_padding, stride=2)


@pytest.mark.parametrize("op", ["forward", "backward"])
def test_conv_transpose2d_errors_channel_mismatch(op):
    with pytest.raises(ValueError, match="weight") as ei:
        CT_OPS[op](w=_ct_w((3, 3, 3, 3)))
    _assert_shape_in(str(ei.value), (3, 3, 3, 3))
    _assert_shape_in(str(ei.value), (2, 4, 5, 5))


@pytest.mark.parametrize("op", ["forward", "backward"])
@pytest.mark.parametrize("groups", [3, 0, -2])
def test_conv_transpose2d_errors_groups(op, groups):
    with pytest.raises(ValueError, match="groups"):
        CT_OPS[op](groups=groups)


def test_conv_transpose2d_errors_groups_type():
    with pytest.raises(TypeError, match="groups"):
        _ct_fwd(groups=1.5)


@pytest.mark.parametrize("op", ["forward", "backward"])
def test_conv_transpose2d_errors_output_below_one(op):
    # H_out = (1 - 1)*1 - 2*1 + (1 - 1) + 0 + 1 = -1
    with pytest.raises(ValueError, match="output size"):
        CT_OPS[op](x=_ct_x((2, 4, 1, 1)), w=_ct_w((4, 3, 1, 1)), padding=1)
    with pytest.raises(ValueError, match="output size"):
        CT_OPS[op](padding=(0, 4))


@pytest.mark.parametrize("op", ["forward", "backward"])
@pytest.mark.parametrize("name, value", [("stride", 0), ("stride", (1, -1)), ("dilation", 0),
                                         ("dilation", (-1, 1)), ("padding", -1),
                                         ("padding", (0, -2))])
def test_conv_transpose2d_errors_nonpositive_geometry(op, name, value):
    with pytest.raises(ValueError, match=name):
        CT_OPS[op](**{name: value})


@pytest.mark.parametrize("name", ["stride", "padding", "output_padding", "dilation"])
def test_conv_transpose2d_errors_geometry_types(name):
    with pytest.raises(TypeError, match=name):
        _ct_fwd(**{name: "same"})
    with pytest.raises(ValueError, match=name):
        _ct_fwd(**{name: (1, 1, 1)})


@pytest.mark.parametrize("op", ["forward", "backward"])
@pytest.mark.parametrize("shape", [(4, 5, 5), (1, 2, 4, 5, 5)])
def test_conv_transpose2d_errors_input_ndim(op, shape):
    with pytest.raises(ValueError, match="input") as ei:
        CT_OPS[op](x=_ct_x(shape))
    _assert_shape_in(str(ei.value), shape)


@pytest.mark.parametrize("op", ["forward", "backward"])
@pytest.mark.parametrize("shape", [(4, 3, 3), (4, 27)])
def test_conv_transpose2d_errors_weight_ndim(op, shape):
    with pytest.raises(ValueError, match="weight") as ei:
        CT_OPS[op](w=_ct_w(shape))
    _assert_shape_in(str(ei.value), shape)


@pytest.mark.parametrize("shape", [(4,), (2,), (3, 1), ()])
def test_conv_transpose2d_errors_bias_shape(shape):
    with pytest.raises(ValueError, match="bias") as ei:
        _ct_fwd(b=np.zeros(shape))
    _assert_shape_in(str(ei.value), (3,))


def test_conv_transpose2d_errors_types():
    with pytest.raises(TypeError, match="weight"):
        _ct_fwd(w=_ct_w(dtype=np.float32))
    with pytest.raises(TypeError, match="input"):
        _ct_fwd(x=_ct_x(dtype=np.int64))
    with pytest.raises(TypeError, match="input"):
        _ct_fwd(x=_ct_x().tolist())
    with pytest.raises(TypeError, match="bias"):
        _ct_fwd(b=np.zeros(3, dtype=np.float32))
    with pytest.raises(TypeError, match="grad_output"):
        _ct_bwd(g=np.zeros((2, 3, 7, 7), dtype=np.float32))


def test_conv_transpose2d_errors_backward_arguments():
    with pytest.raises(ValueError, match="grad_output") as ei:
        _ct_bwd(g=np.zeros((2, 3, 7, 8)))
    _assert_shape_in(str(ei.value), (2, 3, 7, 8))
    _assert_shape_in(str(ei.value), (2, 3, 7, 7))
    with pytest.raises(ValueError, match="grad_output"):
        _ct_bwd(g=np.zeros((2, 3, 8, 8)), output_padding=1, stride=2)
    with pytest.raises(ValueError, match="grad_weight"):
        _ct_bwd(grad_weight=np.zeros((3, 4, 3, 3)))
    with pytest.raises(TypeError, match="grad_weight"):
        _ct_bwd(grad_weight=np.zeros((4, 3, 3, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="grad_bias"):
        _ct_bwd(grad_bias=np.zeros(4))
    with pytest.raises(TypeError, match="output_mask"):
        _ct_bwd(output_mask=(True, False))
