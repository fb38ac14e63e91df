"""linear and conv_transpose2d on the GPU: CuPy in, CuPy out, against the float64 NumPy
reference and the CPU kernel, over the CPU tests' case tables, with output masks, accumulation
into given gradients, NaN/inf, empty sizes and bit-identical reruns. Outputs fastconv allocates
are poisoned (NaN), so an element a kernel skips fails."""

import numpy as np
import pytest

import fastconv.functional as F

from fastconv._opinfo.dense import linear_ref, linear_backward_ref
from fastconv._opinfo.conv import conv_transpose2d_ref, conv_transpose2d_backward_ref
from _cuda import covering, dev, host, requires_cuda
from _util import assert_close, rtol_for, rand, stable_seed
from test_dense import (DTYPES, DTYPE_IDS, MASKS, MASK_IDS, LINEAR_CASES, LINEAR_IDS, CT_CASES,
                        CT_IDS, CT_BY_ID, assert_close_nonfinite, ct_data, ct_lengths,
                        _linear_data, _rows)
from test_cuda_conv import NAMES, _is_gpu, _matches

pytestmark = requires_cuda

# kernel_cover: odd sizes, and a reduction split over blocks (the weight gradient's columns).
LINEAR_BY_ID = dict(zip(LINEAR_IDS, LINEAR_CASES))
COVER_LINEAR = covering(LINEAR_CASES, LINEAR_BY_ID["2d_odd"], LINEAR_BY_ID["cols_split_remainder"])
COVER_CT = covering(CT_CASES, CT_BY_ID["stride2_pad1_op1"])


# ===========================================================================
# linear
# ===========================================================================

@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", COVER_LINEAR, ids=LINEAR_IDS)
def test_linear_forward_gpu(case, dtype, poisoned):
    _, x_shape, out_features = case
    x, w, b, _ = _linear_data(x_shape, out_features, dtype, 1)
    out = F.linear(dev(x), dev(w), dev(b))
    _is_gpu(out, dtype)
    assert out.shape == x_shape[:-1] + (out_features,)
    _matches(host(out), linear_ref(x, w, b), F.linear(x, w, b), dtype, x_shape[-1], "forward")
    out = host(F.linear(dev(x), dev(w)))
    _matches(out, linear_ref(x, w), F.linear(x, w), dtype, x_shape[-1], "forward without bias")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", COVER_LINEAR, ids=LINEAR_IDS)
def test_linear_backward_gpu(case, dtype, poisoned):
    _, x_shape, out_features = case
    x, w, _, dout = _linear_data(x_shape, out_features, dtype, 2, bias=False)
    got = F.linear_backward(dev(dout), dev(x), dev(w))
    cpu = F.linear_backward(dout, x, w)
    refs = linear_backward_ref(dout, x, w)
    lens = (out_features, _rows(x_shape), _rows(x_shape))
    for g, c, r, L, name in zip(got, cpu, refs, lens, NAMES):
        _is_gpu(g, dtype)
        _matches(host(g), r, c, dtype, L, name)


@pytest.mark.parametrize("mask", MASKS, ids=MASK_IDS)
def test_linear_backward_output_mask_gpu(mask, poisoned):
    x, w, _, dout = _linear_data((2, 3, 7), 4, np.float64, 4, bias=False)
    got = F.linear_backward(dev(dout), dev(x), dev(w), output_mask=mask)
    for want, g, r, name in zip(mask, got, linear_backward_ref(dout, x, w), NAMES):
        if not want:
            assert g is None, name
        else:
            assert_close(host(g), r, 1e-10, what=name)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case_id", ["3d", "rows_split_remainder", "cols_split_remainder"])
def test_linear_backward_accumulates_gpu(case_id, dtype, poisoned):
    _, x_shape, out_features = LINEAR_CASES[LINEAR_IDS.index(case_id)]
    x, w, _, dout = _linear_data(x_shape, out_features, dtype, 5, bias=False)
    rng = np.random.default_rng(6)
    gw0, gb0 = rand(rng, w.shape, dtype), rand(rng, (out_features,), dtype)
    buf_w, buf_b = dev(gw0), dev(gb0)
    dx_r, dw_r, db_r = linear_backward_ref(dout, x, w)
    tol = rtol_for(dtype, _rows(x_shape))
    for k in (1, 2):
        dx, gw, gb = F.linear_backward(dev(dout), dev(x), dev(w), grad_weight=buf_w,
                                       grad_bias=buf_b)
        assert gw is buf_w and gb is buf_b
        assert_close(host(gw), gw0 + k * dw_r, tol, what=f"grad_weight (call {k})")
        assert_close(host(gb), gb0 + k * db_r, tol, what=f"grad_bias (call {k})")
        assert_close(host(dx), dx_r, rtol_for(dtype, out_features), what=f"grad_input (call {k})")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_linear_nan_inf_propagate_gpu(dtype, poisoned):
    x, w, b, dout = _linear_data((6, 9), 5, dtype, 10)
    x[1, 2], x[3, 0], x[4, 8], b[2] = np.nan, np.inf, -np.inf, np.nan
    with np.errstate(invalid="ignore"):
        ref = linear_ref(x, w, b)
    assert_close_nonfinite(host(F.linear(dev(x), dev(w), dev(b))), ref, rtol_for(dtype, 9),
                           what="forward")
    dout[2, 1], dout[5, 3] = np.inf, np.nan
    x2 = rand(np.random.default_rng(11), x.shape, dtype)
    got = F.linear_backward(dev(dout), dev(x2), dev(w))
    with np.errstate(invalid="ignore"):
        refs = linear_backward_ref(dout, x2, w)
    for g, r, name in zip(got, refs, NAMES):
        assert_close_nonfinite(host(g), r, rtol_for(dtype, 6), what=name)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_linear_empty_sizes_gpu(dtype, poisoned):
    """No rows, no in_features, no out_features: as on the CPU."""
    rng = np.random.default_rng(9)
    x, w, b = rand(rng, (0, 5), dtype), rand(rng, (4, 5), dtype), rand(rng, (4,), dtype)
    assert F.linear(dev(x), dev(w), dev(b)).shape == (0, 4)
    gw0 = rand(rng, (4, 5), dtype)
    dx, gw, gb = F.linear_backward(dev(np.zeros((0, 4), dtype)), dev(x), dev(w),
                                   grad_weight=dev(gw0))
    assert dx.shape == (0, 5)
    assert np.array_equal(host(gw), gw0) and not host(gb).any()
    # no in_features: the output is the bias (zeros without)
    x, w = rand(rng, (3, 0), dtype), rand(rng, (4, 0), dtype)
    assert np.array_equal(host(F.linear(dev(x), dev(w), dev(b))), np.broadcast_to(b, (3, 4)))
    assert not host(F.linear(dev(x), dev(w))).any()
    dout = rand(rng, (3, 4), dtype)
    dx, gw, gb = F.linear_backward(dev(dout), dev(x), dev(w))
    assert dx.shape == (3, 0) and gw.shape == (4, 0)
    assert_close(host(gb), dout.astype(np.float64).sum(axis=0), rtol_for(dtype))
    # no out_features: an empty output and a zero input gradient
    x, w = rand(rng, (3, 5), dtype), rand(rng, (0, 5), dtype)
    assert F.linear(dev(x), dev(w)).shape == (3, 0)
    dx = F.linear_backward(dev(np.zeros((3, 0), dtype)), dev(x), dev(w),
                           output_mask=(True, False, False))[0]
    assert np.array_equal(host(dx), np.zeros((3, 5)))


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_linear_deterministic_gpu(dtype):
    """Reruns give identical bits; 4096 rows split the weight gradient's reduction and 1568
    features the forward's."""
    x, w, b, dout = _linear_data((4096, 1568), 10, dtype, 12)
    xd, wd, bd, gd = dev(x, w, b, dout)
    first = [host(F.linear(xd, wd, bd))] + list(host(F.linear_backward(gd, xd, wd)))
    again = [host(F.linear(xd, wd, bd))] + list(host(F.linear_backward(gd, xd, wd)))
    for a, b_, name in zip(first, again, ("out",) + NAMES):
        assert np.array_equal(a, b_), f"{name} differs between identical calls"
    _matches(first[0], linear_ref(x, w, b), F.linear(x, w, b), dtype, 1568, "forward")
    for g, r, c, L, name in zip(first[1:], linear_backward_ref(dout, x, w),
                                F.linear_backward(dout, x, w), (10, 4096, 4096), NAMES):
        _matches(g, r, c, dtype, L, name)


def test_linear_devices_do_not_mix():
    x, w = np.ones((3, 5), np.float32), np.ones((4, 5), np.float32)
    with pytest.raises(ValueError, match="weight is on the CPU"):
        F.linear(dev(x), w)
    with pytest.raises(ValueError, match="bias is on the CPU"):
        F.linear(dev(x), dev(w), np.ones(4, np.float32))
    with pytest.raises(ValueError, match="grad_bias is on the CPU"):
        F.linear_backward(dev(np.ones((3, 4), np.float32)), dev(x), dev(w),
                          grad_bias=np.zeros(4, np.float32))


# ===========================================================================
# conv_transpose2d
# ===========================================================================

@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", COVER_CT, ids=CT_IDS)
def test_conv_transpose2d_forward_gpu(case, dtype, poisoned):
    x, w, b, _ = ct_data(case, dtype, 20)
    a = case["args"]
    out = F.conv_transpose2d(dev(x), dev(w), dev(b), **a)
    _is_gpu(out, dtype)
    _matches(host(out), conv_transpose2d_ref(x, w, b, **a), F.conv_transpose2d(x, w, b, **a),
             dtype, ct_lengths(case)[0], f"forward {case['id']}")
    out = host(F.conv_transpose2d(dev(x), dev(w), None, **a))
    _matches(out, conv_transpose2d_ref(x, w, None, **a), F.conv_transpose2d(x, w, None, **a),
             dtype, ct_lengths(case)[0], f"forward without bias {case['id']}")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", COVER_CT, ids=CT_IDS)
def test_conv_transpose2d_backward_gpu(case, dtype, poisoned):
    x, w, _, dout = ct_data(case, dtype, 22, bias=False)
    a = case["args"]
    got = F.conv_transpose2d_backward(dev(dout), dev(x), dev(w), **a)
    cpu = F.conv_transpose2d_backward(dout, x, w, **a)
    refs = conv_transpose2d_backward_ref(dout, x, w, **a)
    _, l_dx, l_dw = ct_lengths(case)
    for g, c, r, L, name in zip(got, cpu, refs, (l_dx, l_dw, l_dw), NAMES):
        _is_gpu(g, dtype)
        _matches(host(g), r, c, dtype, L, f"{name} {case['id']}")


@pytest.mark.parametrize("mask", MASKS, ids=MASK_IDS)
def test_conv_transpose2d_backward_output_mask_gpu(mask, poisoned):
    case = CT_BY_ID["combo"]
    x, w, _, dout = ct_data(case, np.float64, 24, bias=False)
    got = F.conv_transpose2d_backward(dev(dout), dev(x), dev(w), output_mask=mask, **case["args"])
    refs = conv_transpose2d_backward_ref(dout, x, w, **case["args"])
    for want, g, r, name in zip(mask, got, refs, NAMES):
        if not want:
            assert g is None, name
        else:
            assert_close(host(g), r, 1e-10, what=name)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case_id", ["combo", "depthwise_mult2", "1x1", "stride3_op2"])
def test_conv_transpose2d_backward_accumulates_gpu(case_id, dtype, poisoned):
    case = CT_BY_ID[case_id]
    a = case["args"]
    x, w, _, dout = ct_data(case, dtype, 25, bias=False)
    rng = np.random.default_rng(26)
    gw0, gb0 = rand(rng, w.shape, dtype), rand(rng, (case["Cout"],), dtype)
    buf_w, buf_b = dev(gw0), dev(gb0)
    dx_r, dw_r, db_r = conv_transpose2d_backward_ref(dout, x, w, **a)
    _, l_dx, l_dw = ct_lengths(case)
    tol = rtol_for(dtype, l_dw)
    for k in (1, 2):
        dx, gw, gb = F.conv_transpose2d_backward(dev(dout), dev(x), dev(w), **a,
                                                 grad_weight=buf_w, grad_bias=buf_b)
        assert gw is buf_w and gb is buf_b
        assert_close(host(gw), gw0 + k * dw_r, tol, what=f"grad_weight (call {k})")
        assert_close(host(gb), gb0 + k * db_r, tol, what=f"grad_bias (call {k})")
        assert_close(host(dx), dx_r, rtol_for(dtype, l_dx), what=f"grad_input (call {k})")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case_id", ["stride_gt_kernel_gaps", "op_below_dilation_not_stride",
                                     "1x1_op_dilation", "groups3_stride3"])
def test_conv_transpose2d_unreached_pixels_are_bias_gpu(case_id, dtype, poisoned):
    """Pixels no input reaches (stride gaps, output_padding rows) are exactly the bias."""
    case = CT_BY_ID[case_id]
    a = case["args"]
    x, w, b, _ = ct_data(case, dtype, 27)
    out = host(F.conv_transpose2d(dev(x), dev(w), dev(b), **a))
    unreached = conv_transpose2d_ref(np.ones(x.shape), np.ones(w.shape), None, **a) == 0
    assert unreached.any()
    assert np.array_equal(out[unreached],
                          np.broadcast_to(b.reshape(1, -1, 1, 1), out.shape)[unreached])
    assert_close(out, conv_transpose2d_ref(x, w, b, **a), rtol_for(dtype, ct_lengths(case)[0]))


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case_id", ["stride2_pad1_op1", "groups2", "1x1"])
def test_conv_transpose2d_nan_inf_propagate_gpu(case_id, dtype, poisoned):
    case = CT_BY_ID[case_id]
    a = case["args"]
    x, w, b, dout = ct_data(case, dtype, 28)
    x[0, 1, 2, 3], x[1, 0, 0, 0], x[1, -1, -1, -1] = np.nan, np.inf, -np.inf
    fwd, l_dx, _ = ct_lengths(case)
    with np.errstate(invalid="ignore"):
        ref = conv_transpose2d_ref(x, w, b, **a)
    assert_close_nonfinite(host(F.conv_transpose2d(dev(x), dev(w), dev(b), **a)), ref,
                           rtol_for(dtype, fwd), what="forward")
    dout[0, 0, 1, 1], dout[1, -1, -1, -2] = np.nan, np.inf
    dx = F.conv_transpose2d_backward(dev(dout), dev(x), dev(w), output_mask=(True, False, False),
                                     **a)[0]
    with np.errstate(invalid="ignore"):
        ref = conv_transpose2d_backward_ref(dout, x, w, **a)[0]
    assert_close_nonfinite(host(dx), ref, rtol_for(dtype, l_dx), what="grad_input")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_conv_transpose2d_split_and_deterministic_gpu(dtype, poisoned):
    """Many input channels on few pixels split the forward's reduction (with the bias added
    after the split sum); reruns give identical bits."""
    args = dict(stride=2, padding=1, output_padding=1)
    rng = np.random.default_rng(stable_seed("ct_split", dtype))
    x, w = rand(rng, (2, 128, 3, 4), dtype), rand(rng, (128, 16, 3, 3), dtype)
    b = rand(rng, (16,), dtype)
    ref = conv_transpose2d_ref(x, w, b, **args)
    dout = rand(rng, ref.shape, dtype)
    xd, wd, bd, gd = dev(x, w, b, dout)
    first = [host(F.conv_transpose2d(xd, wd, bd, **args))]
    first += host(F.conv_transpose2d_backward(gd, xd, wd, **args))
    again = [host(F.conv_transpose2d(xd, wd, bd, **args))]
    again += host(F.conv_transpose2d_backward(gd, xd, wd, **args))
    for a, b_, name in zip(first, again, ("out",) + NAMES):
        assert np.array_equal(a, b_), f"{name} differs between identical calls"
    _matches(first[0], ref, F.conv_transpose2d(x, w, b, **args), dtype, 128 * 9, "forward")
    refs = conv_transpose2d_backward_ref(dout, x, w, **args)
    cpu = F.conv_transpose2d_backward(dout, x, w, **args)
    l_dw = 2 * ref.shape[2] * ref.shape[3]
    for g, r, c, L, name in zip(first[1:], refs, cpu, (16 * 9, l_dw, l_dw), NAMES):
        _matches(g, r, c, dtype, L, name)


def test_conv_transpose2d_devices_do_not_mix():
    x, w = np.ones((1, 4, 5, 5), np.float32), np.ones((4, 3, 3, 3), np.float32)
    with pytest.raises(ValueError, match="weight is on the CPU"):
        F.conv_transpose2d(dev(x), w)
    with pytest.raises(ValueError, match="grad_output is on the CPU"):
        F.conv_transpose2d_backward(np.ones((1, 3, 7, 7), np.float32), dev(x), dev(w))
