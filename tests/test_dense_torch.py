"""linear / conv_transpose2d forward and backward against PyTorch (skipped without torch).

torch computes in float64 from the same (possibly float32) values, except in the *_native
tests, where both sides compute in float32. Gradients come from torch.autograd.grad.
"""

import numpy as np
import pytest

import fastconv.functional as F

from _util import assert_close, rtol_for, rand
from test_dense import (LINEAR_CASES, LINEAR_IDS, CT_CASES, CT_IDS, CT_BY_ID, ct_data,
                        ct_lengths, _linear_data, _rows, assert_close_nonfinite)

torch = pytest.importorskip("torch")
TF = torch.nn.functional

DTYPES = [np.float32, np.float64]
DTYPE_IDS = ["f32", "f64"]


def _t(a, dtype=None):
    a = np.ascontiguousarray(a if dtype is None else a.astype(dtype))
    return torch.from_numpy(a)


def _torch_run(fn, arrays, grad_output, dtype=np.float64):
    """fn(*tensors) and the gradients of <fn(...), grad_output> w.r.t. every non-None array."""
    ts = [None if a is None else _t(a, dtype).requires_grad_(True) for a in arrays]
    out = fn(*ts)
    live = [t for t in ts if t is not None]
    grads = torch.autograd.grad(out, live, grad_outputs=_t(grad_output, dtype))
    return out.detach().numpy(), [g.numpy() for g in grads]


# ---------------------------------------------------------------------------
# linear
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", LINEAR_CASES, ids=LINEAR_IDS)
def test_linear_torch_forward_backward(case, dtype):
    _, x_shape, out_features = case
    x, w, b, dout = _linear_data(x_shape, out_features, dtype, 100)
    ref, grads = _torch_run(TF.linear, (x, w, b), dout)
    assert_close(F.linear(x, w, b), ref, rtol_for(dtype, x_shape[-1]), what="forward vs torch")
    dx, dw, db = F.linear_backward(dout, x, w)
    M = _rows(x_shape)
    assert_close(dx, grads[0], rtol_for(dtype, out_features), what="grad_input vs torch")
    assert_close(dw, grads[1], rtol_for(dtype, M), what="grad_weight vs torch")
    assert_close(db, grads[2], rtol_for(dtype, M), what="grad_bias vs torch")


def test_linear_torch_no_bias():
    x, w, _, dout = _linear_data((2, 3, 7), 4, np.float64, 104, bias=False)
    ref, (ref_dx, ref_dw) = _torch_run(TF.linear, (x, w, None), dout)
    assert_close(F.linear(x, w), ref, 1e-10)
    dx, dw, _ = F.linear_backward(dout, x, w)
    assert_close(dx, ref_dx, 1e-10)
    assert_close(dw, ref_dw, 1e-10)


@pytest.mark.parametrize("case_id", ["3d", "rows_split_remainder", "cols_split_remainder"])
def test_linear_torch_float32_native(case_id):
    _, x_shape, out_features = LINEAR_CASES[LINEAR_IDS.index(case_id)]
    x, w, b, dout = _linear_data(x_shape, out_features, np.float32, 101)
    ref, grads = _torch_run(TF.linear, (x, w, b), dout, dtype=np.float32)
    # both sides carry float32 rounding: twice the usual tolerance
    assert_close(F.linear(x, w, b), ref, 2 * rtol_for(np.float32, x_shape[-1]))
    M = _rows(x_shape)
    for got, want, L in zip(F.linear_backward(dout, x, w), grads, (out_features, M, M)):
        assert_close(got, want, 2 * rtol_for(np.float32, L))


@pytest.mark.parametrize("x_shape, w_shape", [((0, 5), (4, 5)), ((3, 0), (4, 0)),
                                              ((3, 5), (0, 5)), ((2, 0, 5), (4, 5))],
                         ids=["no_rows", "no_in_features", "no_out_features", "empty_3d"])
def test_linear_torch_empty_sizes(x_shape, w_shape):
    rng = np.random.default_rng(102)
    x, w, b = rand(rng, x_shape, np.float64), rand(rng, w_shape, np.float64), rand(
        rng, w_shape[:1], np.float64)
    dout = rand(rng, x_shape[:-1] + w_shape[:1], np.float64)
    ref, grads = _torch_run(TF.linear, (x, w, b), dout)
    assert_close(F.linear(x, w, b), ref, 0.0)
    for got, want in zip(F.linear_backward(dout, x, w), grads):
        assert_close(got, want, 1e-12)


def test_linear_torch_nan_inf():
    x, w, b, dout = _linear_data((5, 8), 6, np.float64, 103)
    x[0, 3] = np.nan
    x[2, 1] = np.inf
    x[4, 7] = -np.inf
    w[1, 1] = 0.0  # inf * 0 = nan, as in torch
    b[5] = np.inf
    ref = TF.linear(_t(x), _t(w), _t(b)).numpy()
    assert_close_nonfinite(F.linear(x, w, b), ref, 1e-10, what="forward vs torch")


# ---------------------------------------------------------------------------
# conv_transpose2d
# ---------------------------------------------------------------------------

def _torch_ct(x, w, b, case, dout, dtype=np.float64):
    a = case["args"]

    def fn(xt, wt, bt):
        return TF.conv_transpose2d(xt, wt, bt, a["stride"], a["padding"], a["output_padding"],
                                   a["groups"], a["dilation"])

    return _torch_run(fn, (x, w, b), dout, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", CT_CASES, ids=CT_IDS)
def test_conv_transpose2d_torch_forward_backward(case, dtype):
    x, w, b, dout = ct_data(case, dtype, 200)
    ref, (ref_dx, ref_dw, ref_db) = _torch_ct(x, w, b, case, dout)
    l_fwd, l_dx, l_dw = ct_lengths(case)
    out = F.conv_transpose2d(x, w, b, **case["args"])
    assert out.dtype == dtype
    assert_close(out, ref, rtol_for(dtype, l_fwd), what="forward vs torch")
    dx, dw, db = F.conv_transpose2d_backward(dout, x, w, **case["args"])
    assert_close(dx, ref_dx, rtol_for(dtype, l_dx), what="grad_input vs torch")
    assert_close(dw, ref_dw, rtol_for(dtype, l_dw), what="grad_weight vs torch")
    assert_close(db, ref_db, rtol_for(dtype, l_dw), what="grad_bias vs torch")


@pytest.mark.parametrize("case_id", ["stride2_pad1_op1", "dcgan_4x4_s2_p1", "depthwise_mult2",
                                     "many_channels"])
def test_conv_transpose2d_torch_float32_native(case_id):
    case = CT_BY_ID[case_id]
    x, w, b, dout = ct_data(case, np.float32, 201)
    ref, grads = _torch_ct(x, w, b, case, dout, dtype=np.float32)
    l_fwd, l_dx, l_dw = ct_lengths(case)
    assert_close(F.conv_transpose2d(x, w, b, **case["args"]), ref,
                 2 * rtol_for(np.float32, l_fwd))
    got = F.conv_transpose2d_backward(dout, x, w, **case["args"])
    for g, want, L in zip(got, grads, (l_dx, l_dw, l_dw)):
        assert_close(g, want, 2 * rtol_for(np.float32, L))


def test_conv_transpose2d_torch_no_bias():
    case = CT_BY_ID["op_below_dilation_not_stride"]
    x, w, _, dout = ct_data(case, np.float64, 202, bias=False)
    ref, (ref_dx, ref_dw) = _torch_ct(x, w, None, case, dout)
    assert_close(F.conv_transpose2d(x, w, None, **case["args"]), ref, 1e-10)
    dx, dw, _ = F.conv_transpose2d_backward(dout, x, w, **case["args"])
    assert_close(dx, ref_dx, 1e-10)
    assert_close(dw, ref_dw, 1e-10)


def test_conv_transpose2d_torch_empty_batch():
    case = dict(CT_BY_ID["stride2_pad1_op1"], N=0)
    x, w, b, dout = ct_data(case, np.float64, 203)
    ref, grads = _torch_ct(x, w, b, case, dout)
    out = F.conv_transpose2d(x, w, b, **case["args"])
    assert out.shape == ref.shape
    for got, want in zip(F.conv_transpose2d_backward(dout, x, w, **case["args"]), grads):
        assert_close(got, want, 0.0)


@pytest.mark.parametrize("case_id", ["stride2_pad1_op1", "groups2"])
def test_conv_transpose2d_torch_nan_inf(case_id):
    case = CT_BY_ID[case_id]
    x, w, b, _ = ct_data(case, np.float64, 204)
    x[0, 1, 2, 3] = np.nan
    x[1, 0, 0, 0] = np.inf
    x[1, -1, -1, -1] = -np.inf
    a = case["args"]
    ref = TF.conv_transpose2d(_t(x), _t(w), _t(b), a["stride"], a["padding"],
                              a["output_padding"], a["groups"], a["dilation"]).numpy()
    assert_close_nonfinite(F.conv_transpose2d(x, w, b, **a), ref, 1e-10, what="forward vs torch")


@pytest.mark.parametrize("kw", [dict(output_padding=1), dict(output_padding=2, stride=2),
                                dict(output_padding=(2, 0), stride=2, dilation=2),
                                dict(padding=(0, 4)), dict(groups=3)],
                         ids=["op1_s1", "op2_s2", "op2_s2_d2", "output_below_one", "groups3"])
def test_conv_transpose2d_torch_rejects_what_fastconv_rejects(kw):
    x = np.zeros((2, 4, 5, 5))
    w = np.zeros((4, 3, 3, 3))
    with pytest.raises(RuntimeError):
        TF.conv_transpose2d(_t(x), _t(w), None, **kw)
    with pytest.raises(ValueError):
        F.conv_transpose2d(x, w, None, **kw)


def test_conv_transpose2d_torch_accepts_output_padding_below_dilation():
    x = np.ones((1, 2, 3, 3))
    w = np.ones((2, 2, 2, 2))
    kw = dict(stride=1, output_padding=1, dilation=2)
    ref = TF.conv_transpose2d(_t(x), _t(w), None, **kw).numpy()
    assert_close(F.conv_transpose2d(x, w, None, **kw), ref, 0.0)
