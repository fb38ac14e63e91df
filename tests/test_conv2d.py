"""fastconv.functional conv2d / conv2d_backward / unfold / fold vs the NumPy reference.

Expected values always come from fastconv/_opinfo/conv.py (float64 direct tap sums),
never from fastconv itself.
"""

import itertools
import zlib

import numpy as np
import pytest

import fastconv.functional as F

from fastconv._opinfo.conv import (conv2d_ref, conv2d_backward_ref, unfold_ref, fold_ref, pair,
                                   conv_output_size)
from _util import (assert_close, rtol_for, rand, CASES, CASE_IDS, CASES_BY_ID,
                   conv_args, make_data, out_hw, reduction_lengths)

DTYPES = [np.float32, np.float64]
DTYPE_IDS = ["f32", "f64"]


def _seed(case, extra=0):
    return zlib.crc32(case["id"].encode()) + extra


def _check_backward(case, dtype, got, x, w, dout, outputs=(True, True, True)):
    """Compare (dx, dw, db) against the reference; report every failing output."""
    ref = conv2d_backward_ref(dout, x, w, **conv_args(case))
    _, l_dx, l_dw = reduction_lengths(case)
    names = ("grad_input", "grad_weight", "grad_bias")
    lens = (l_dx, l_dw, l_dw)
    errors = []
    for name, want, g, r, L in zip(names, outputs, got, ref, lens):
        if not want:
            continue
        try:
            assert isinstance(g, np.ndarray), f"{name}: not an ndarray but {type(g)}"
            assert g.dtype == dtype, f"{name}: dtype {g.dtype} != {np.dtype(dtype)}"
            assert_close(g, r, rtol_for(dtype, L), what=name)
        except AssertionError as e:  # collect, so one report shows all outputs
            errors.append(str(e))
    if errors:
        raise AssertionError(f"case {case['id']} {np.dtype(dtype)}:\n" + "\n".join(errors))


# ---------------------------------------------------------------------------
# forward / backward over the shape table
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_conv2d_forward(case, dtype, with_bias):
    x, w, b, _ = make_data(case, dtype, _seed(case), bias=with_bias)
    out = F.conv2d(x, w, b, **conv_args(case))
    assert isinstance(out, np.ndarray)
    assert out.dtype == dtype
    N, K = case["N"], case["K"]
    assert out.shape == (N, K) + tuple(out_hw(case))
    ref = conv2d_ref(x, w, b, **conv_args(case))
    assert_close(out, ref, rtol_for(dtype, reduction_lengths(case)[0]),
                 what=f"forward {case['id']}")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_conv2d_backward(case, dtype):
    x, w, _, dout = make_data(case, dtype, _seed(case, 1), bias=False)
    got = F.conv2d_backward(dout, x, w, **conv_args(case))
    assert isinstance(got, tuple) and len(got) == 3
    assert got[0].shape == x.shape and got[1].shape == w.shape and got[2].shape == (case["K"],)
    _check_backward(case, dtype, got, x, w, dout)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_conv2d_inputs_not_modified(dtype):
    case = CASES_BY_ID["combo_groups_stride_dil"]
    x, w, b, dout = make_data(case, dtype, 5)
    copies = [a.copy() for a in (x, w, b, dout)]
    F.conv2d(x, w, b, **conv_args(case))
    F.conv2d_backward(dout, x, w, **conv_args(case))
    for a, c, name in zip((x, w, b, dout), copies, ("x", "w", "b", "grad_output")):
        assert np.array_equal(a, c), f"{name} was modified"


def test_conv2d_same_with_explicit_unit_stride_pair():
    case = CASES_BY_ID["same_even_kernel"]
    x, w, b, _ = make_data(case, np.float64, 8)
    out = F.conv2d(x, w, b, stride=(1, 1), padding="same", dilation=(1, 1), groups=1)
    assert out.shape[2:] == x.shape[2:]
    assert_close(out, conv2d_ref(x, w, b, 1, "same", 1, 1), 1e-10)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_conv2d_padding_only_outputs_equal_bias(dtype):
    """Outputs whose window lies entirely in padding must be exactly the bias."""
    rng = np.random.default_rng(21)
    x = rand(rng, (2, 3, 4, 5), dtype)
    w = rand(rng, (4, 3, 2, 2), dtype)
    b = rand(rng, (4,), dtype)
    # pad 3 with a 2x2 kernel: output rows/cols 0 and the last ones see only zeros
    out = F.conv2d(x, w, b, stride=1, padding=3)
    assert out.shape == (2, 4, 4 + 6 - 1, 5 + 6 - 1)
    bb = np.broadcast_to(b.reshape(1, 4, 1), (2, 4, out.shape[3]))
    for p in (0, 1, out.shape[2] - 2, out.shape[2] - 1):
        assert np.array_equal(out[:, :, p, :], bb), p
    assert_close(out, conv2d_ref(x, w, b, 1, 3, 1, 1), rtol_for(dtype, 12))


# ---------------------------------------------------------------------------
# output_mask, accumulation contract, fresh grad_input
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("mask", list(itertools.product([False, True], repeat=3)),
                         ids=lambda m: "".join("1" if v else "0" for v in m))
def test_conv2d_backward_output_mask(mask):
    case = CASES_BY_ID["combo_groups_stride_dil"]
    dtype = np.float64
    x, w, _, dout = make_data(case, dtype, 31, bias=False)
    got = F.conv2d_backward(dout, x, w, output_mask=mask, **conv_args(case))
    assert isinstance(got, tuple) and len(got) == 3
    for want, g, name in zip(mask, got, ("grad_input", "grad_weight", "grad_bias")):
        if not want:
            assert g is None, f"{name} should be None for output_mask={mask}"
    _check_backward(case, dtype, got, x, w, dout, outputs=mask)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case_id", ["combo_groups_stride_dil", "depthwise_mult2",
                                     "same_even_kernel", "1x1_fast_path"])
def test_conv2d_backward_accumulates(case_id, dtype):
    case = CASES_BY_ID[case_id]
    x, w, _, dout = make_data(case, dtype, 41, bias=False)
    rng = np.random.default_rng(42)
    gw0 = rand(rng, w.shape, dtype)
    gb0 = rand(rng, (case["K"],), dtype)
    buf_w = gw0.copy()
    buf_b = gb0.copy()
    dx_ref, dw_ref, db_ref = conv2d_backward_ref(dout, x, w, **conv_args(case))
    _, l_dx, l_dw = reduction_lengths(case)
    tol = rtol_for(dtype, l_dw)

    dx, gw, gb = F.conv2d_backward(dout, x, w, **conv_args(case),
                                   grad_weight=buf_w, grad_bias=buf_b)
    assert gw is buf_w, "grad_weight must be the passed array"
    assert gb is buf_b, "grad_bias must be the passed array"
    assert_close(gw, gw0 + dw_ref, tol, what="accumulated grad_weight (1st)")
    assert_close(gb, gb0 + db_ref, tol, what="accumulated grad_bias (1st)")
    assert_close(dx, dx_ref, rtol_for(dtype, l_dx), what="grad_input (1st)")

    # second call accumulates again; grad_input is fresh (not accumulated)
    dx2, gw2, gb2 = F.conv2d_backward(dout, x, w, **conv_args(case),
                                      grad_weight=buf_w, grad_bias=buf_b)
    assert gw2 is buf_w and gb2 is buf_b
    assert_close(gw2, gw0 + 2 * dw_ref, tol, what="accumulated grad_weight (2nd)")
    assert_close(gb2, gb0 + 2 * db_ref, tol, what="accumulated grad_bias (2nd)")
    assert_close(dx2, dx_ref, rtol_for(dtype, l_dx), what="grad_input (2nd)")
    assert dx2 is not dx


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_conv2d_backward_accumulates_single_buffer(dtype):
    case = CASES_BY_ID["groups3_stride2"]
    x, w, _, dout = make_data(case, dtype, 43, bias=False)
    rng = np.random.default_rng(44)
    gw0 = rand(rng, w.shape, dtype)
    gb0 = rand(rng, (case["K"],), dtype)
    dx_ref, dw_ref, db_ref = conv2d_backward_ref(dout, x, w, **conv_args(case))
    tol = rtol_for(dtype, reduction_lengths(case)[2])

    # only grad_weight given, grad_weight only requested
    buf_w = gw0.copy()
    dx, gw, gb = F.conv2d_backward(dout, x, w, **conv_args(case),
                                   output_mask=(False, True, False), grad_weight=buf_w)
    assert dx is None and gb is None and gw is buf_w
    assert_close(gw, gw0 + dw_ref, tol, what="grad_weight")

    # only grad_bias given; grad_weight computed fresh
    buf_b = gb0.copy()
    dx, gw, gb = F.conv2d_backward(dout, x, w, **conv_args(case), grad_bias=buf_b)
    assert gb is buf_b
    assert_close(gb, gb0 + db_ref, tol, what="grad_bias")
    assert_close(gw, dw_ref, tol, what="fresh grad_weight")


def _pollute_heap(nbytes, dtype):
    """Allocate and free NaN-filled blocks so fresh allocations are likely dirty."""
    for _ in range(4):
        junk = np.full(nbytes // np.dtype(dtype).itemsize + 16, np.nan, dtype=dtype)
        del junk


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("geom", [
    # (N, C, H, W, K, R, S, stride, padding, dilation, groups)
    (2, 3, 11, 10, 4, 2, 2, 3, 0, 1, 1),      # stride > kernel: untouched rows/cols
    (2, 4, 9, 8, 4, 1, 1, 2, 0, 1, 1),        # 1x1 stride 2
    (2, 4, 10, 9, 6, 2, 2, (3, 2), 0, 1, 2),  # groups, gaps
    (1, 2, 9, 9, 2, 3, 3, 1, 0, 1, 1),        # R>1 valid: last rows read only by few taps
    # strided layers sum into phase-split rows (im2col.h's col2im_phased)
    (1, 3, 35, 39, 8, 11, 11, 4, 2, 1, 1),    # AlexNet's conv1 geometry, small
    (2, 3, 17, 20, 5, 3, 3, 3, (1, 2), 2, 1),  # dilation: taps in every phase
    (1, 2, 19, 23, 3, 4, 6, 5, (0, 3), 1, 1),  # a stride without its own interleave
    (1, 64, 12, 258, 3, 3, 3, 2, 1, 1, 1),    # columns in several blocks of output rows
], ids=["stride3_k2", "1x1_stride2", "groups_gaps", "valid3x3", "stride4_k11", "stride3_dil2",
        "stride5", "row_blocks"])
def test_conv2d_backward_grad_input_fully_written(geom, dtype):
    N, C, H, W, K, R, S, stride, padding, dilation, groups = geom
    rng = np.random.default_rng(51)
    x = rand(rng, (N, C, H, W), dtype)
    w = rand(rng, (K, C // groups, R, S), dtype)
    out_ref = conv2d_ref(x, w, None, stride, padding, dilation, groups)
    dout = rand(rng, out_ref.shape, dtype)
    dx_ref, _, _ = conv2d_backward_ref(dout, x, w, stride, padding, dilation, groups)
    untouched = dx_ref == 0.0  # pixels no window reads (exactly zero in the reference)
    for _ in range(3):
        _pollute_heap(x.nbytes * 4, dtype)
        dx, _, _ = F.conv2d_backward(dout, x, w, stride=stride, padding=padding,
                                     dilation=dilation, groups=groups,
                                     output_mask=(True, False, False))
        assert_close(dx, dx_ref, rtol_for(dtype, (K // groups) * R * S), what="grad_input")
        if untouched.any():
            assert np.all(dx[untouched] == 0), "grad_input not zeroed where no window reads"


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_conv2d_forward_output_fully_written(dtype):
    case = CASES_BY_ID["pad_3_2_on_3x3"]
    x, w, b, _ = make_data(case, dtype, 52, bias=False)
    ref = conv2d_ref(x, w, None, **conv_args(case))
    for _ in range(3):
        _pollute_heap(ref.size * 8 * 4, dtype)
        out = F.conv2d(x, w, None, **conv_args(case))
        assert_close(out, ref, rtol_for(dtype, 18), what="forward")


# ---------------------------------------------------------------------------
# non-contiguous inputs
# ---------------------------------------------------------------------------

def _nhwc_view(a):
    """Same values as a (NCHW), but a transposed, non-contiguous view."""
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


def _strided_view(a, rng):
    """Same values as a, but a [:, :, ::2, ::2] view of a bigger array."""
    big = rand(rng, a.shape[:2] + (2 * a.shape[2], 2 * a.shape[3]), a.dtype)
    big[:, :, ::2, ::2] = a
    return big[:, :, ::2, ::2]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("kind", ["transposed", "strided", "fortran", "reversed"])
@pytest.mark.parametrize("case_id", ["combo_groups_stride_dil", "1x1_fast_path", "same_even_kernel"])
def test_conv2d_noncontiguous(case_id, kind, dtype):
    case = CASES_BY_ID[case_id]
    x, w, b, dout = make_data(case, dtype, 61)
    rng = np.random.default_rng(62)
    if kind == "transposed":
        xv, wv, gv = _nhwc_view(x), _nhwc_view(w), _nhwc_view(dout)
    elif kind == "strided":
        xv, wv, gv = _strided_view(x, rng), _strided_view(w, rng), _strided_view(dout, rng)
    elif kind == "fortran":
        xv, wv, gv = np.asfortranarray(x), np.asfortranarray(w), np.asfortranarray(dout)
    else:  # negative strides
        xv = np.ascontiguousarray(x[:, :, ::-1, ::-1])[:, :, ::-1, ::-1]
        wv = np.ascontiguousarray(w[::-1])[::-1]
        gv = np.ascontiguousarray(dout[:, ::-1])[:, ::-1]
    bbig = np.empty(2 * b.size, dtype=dtype)
    bbig[::2] = b
    bv = bbig[::2]
    for a, v in ((x, xv), (w, wv), (dout, gv), (b, bv)):
        assert np.array_equal(a, v)
    assert not xv.flags.c_contiguous and not gv.flags.c_contiguous and not bv.flags.c_contiguous

    fwd, l_dx, l_dw = reduction_lengths(case)
    out = F.conv2d(xv, wv, bv, **conv_args(case))
    assert_close(out, conv2d_ref(x, w, b, **conv_args(case)), rtol_for(dtype, fwd),
                 what=f"forward ({kind})")
    got = F.conv2d_backward(gv, xv, wv, **conv_args(case))
    _check_backward(case, dtype, got, x, w, dout)


# ---------------------------------------------------------------------------
# large input that forces chunking of the im2col workspace
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("geom", [
    # (N, C, H, W, K, R, S, stride, padding, dilation, groups)
    (2, 3, 300, 300, 4, 3, 3, 1, 1, 1, 1),
    (2, 16, 150, 170, 8, 3, 3, 2, 3, 2, 2),
], ids=["300x300_3x3_pad1", "150x170_s2_d2_p3_g2"])
def test_conv2d_large_chunked(geom, dtype):
    N, C, H, W, K, R, S, stride, padding, dilation, groups = geom
    rng = np.random.default_rng(71)
    x = rand(rng, (N, C, H, W), dtype)
    w = rand(rng, (K, C // groups, R, S), dtype)
    b = rand(rng, (K,), dtype)
    args = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    out = F.conv2d(x, w, b, **args)
    ref = conv2d_ref(x, w, b, **args)
    assert_close(out, ref, rtol_for(dtype, (C // groups) * R * S), what="forward")
    dout = rand(rng, ref.shape, dtype)
    dx, dw, db = F.conv2d_backward(dout, x, w, **args)
    dx_r, dw_r, db_r = conv2d_backward_ref(dout, x, w, **args)
    L = N * ref.shape[2] * ref.shape[3]
    assert_close(dx, dx_r, rtol_for(dtype, (K // groups) * R * S), what="grad_input")
    assert_close(dw, dw_r, rtol_for(dtype, L), what="grad_weight")
    assert_close(db, db_r, rtol_for(dtype, L), what="grad_bias")


# ---------------------------------------------------------------------------
# unfold / fold
# ---------------------------------------------------------------------------

UNFOLD_GEOMS = [
    # (N, C, H, W, kernel_size, dilation, padding, stride)
    (2, 3, 7, 9, (3, 2), 1, 0, 1),
    (1, 2, 10, 10, 3, 1, 0, 3),                 # stride not dividing, int kernel
    (2, 2, 6, 7, (2, 3), 1, (1, 2), (2, 1)),    # padding + stride
    (2, 3, 9, 8, 3, (2, 1), 1, 1),              # dilation
    (1, 2, 11, 9, (3, 2), (1, 2), (2, 0), (3, 2)),
    (2, 4, 5, 6, 1, 1, 0, 1),                   # 1x1
    (1, 2, 3, 4, 5, 1, 2, 1),                   # kernel > input, rescued by padding
]
UNFOLD_IDS = [f"unfold{i}" for i in range(len(UNFOLD_GEOMS))]


def _unfold_shape(geom):
    N, C, H, W, ks, dil, pad, st = geom
    R, S = pair(ks)
    ph, pw = pair(pad)
    P, Q = conv_output_size(H, W, (R, S), st, (ph, ph, pw, pw), dil)
    return (N, C * R * S, P * Q), R * S


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("geom", UNFOLD_GEOMS, ids=UNFOLD_IDS)
def test_conv2d_unfold(geom, dtype):
    N, C, H, W, ks, dil, pad, st = geom
    rng = np.random.default_rng(81)
    x = rand(rng, (N, C, H, W), dtype)
    cols = F.unfold(x, ks, dilation=dil, padding=pad, stride=st)
    shape, _ = _unfold_shape(geom)
    assert cols.shape == shape and cols.dtype == dtype
    # im2col is a pure copy: exact
    assert_close(cols, unfold_ref(x, ks, dil, pad, st), 0.0, what="unfold")
    # non-contiguous input
    cols2 = F.unfold(_nhwc_view(x), ks, dilation=dil, padding=pad, stride=st)
    assert_close(cols2, unfold_ref(x, ks, dil, pad, st), 0.0, what="unfold (transposed input)")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("geom", UNFOLD_GEOMS, ids=UNFOLD_IDS)
def test_conv2d_fold(geom, dtype):
    N, C, H, W, ks, dil, pad, st = geom
    shape, RS = _unfold_shape(geom)
    rng = np.random.default_rng(82)
    y = rand(rng, shape, dtype)
    out = F.fold(y, (H, W), ks, dilation=dil, padding=pad, stride=st)
    assert out.shape == (N, C, H, W) and out.dtype == dtype
    ref = fold_ref(y, (H, W), ks, dil, pad, st)
    assert_close(out, ref, rtol_for(dtype, RS), what="fold")
    # fresh memory: pixels no window covers must be exactly 0
    _pollute_heap(ref.nbytes * 4, dtype)
    out2 = F.fold(y[:, :, ::-1].copy()[:, :, ::-1], (H, W), ks, dilation=dil, padding=pad, stride=st)
    assert_close(out2, ref, rtol_for(dtype, RS), what="fold (2nd call, strided input)")
    cover = fold_ref(np.ones(shape), (H, W), ks, dil, pad, st)
    assert np.all(out2[cover == 0] == 0)


@pytest.mark.parametrize("geom", UNFOLD_GEOMS, ids=UNFOLD_IDS)
def test_conv2d_unfold_fold_adjoint(geom):
    N, C, H, W, ks, dil, pad, st = geom
    shape, _ = _unfold_shape(geom)
    rng = np.random.default_rng(83)
    x = rng.standard_normal((N, C, H, W))
    y = rng.standard_normal(shape)
    ux = F.unfold(x, ks, dilation=dil, padding=pad, stride=st)
    fy = F.fold(y, (H, W), ks, dilation=dil, padding=pad, stride=st)
    lhs = float(np.sum(ux * y))
    rhs = float(np.sum(x * fy))
    scale = float(np.sum(np.abs(ux * y)))
    assert abs(lhs - rhs) <= 1e-12 * scale, (lhs, rhs, scale)


def test_conv2d_unfold_matches_conv():
    """conv2d (groups=1) == weight-matrix @ unfold(x), both from fastconv, checked
    against the reference to catch a consistent row-ordering bug."""
    case = CASES_BY_ID["stride_2_3"]
    x, w, _, _ = make_data(case, np.float64, 91, bias=False)
    pad = case["padding"]
    cols = F.unfold(x, (case["R"], case["S"]), dilation=case["dilation"], padding=pad,
                    stride=case["stride"])
    P, Q = out_hw(case)
    via = np.einsum("kj,njl->nkl", w.reshape(case["K"], -1), cols).reshape(case["N"], case["K"], P, Q)
    assert_close(via, conv2d_ref(x, w, None, **conv_args(case)), 1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv2d_empty_batch(dtype):
    """N = 0 is a valid batch (PyTorch accepts it): empty outputs, zero parameter gradients."""
    x = np.zeros((0, 4, 9, 7), dtype=dtype)
    w = np.ones((6, 2, 3, 3), dtype=dtype)
    y = F.conv2d(x, w, stride=2, padding=1, groups=2)
    assert y.shape == (0, 6, 5, 4) and y.dtype == dtype
    dx, dw, db = F.conv2d_backward(np.zeros(y.shape, dtype=dtype), x, w, stride=2, padding=1,
                                   groups=2)
    assert dx.shape == x.shape
    np.testing.assert_array_equal(dw, np.zeros_like(w))
    np.testing.assert_array_equal(db, np.zeros(6, dtype=dtype))
