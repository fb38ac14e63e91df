"""conv2d, its backward, unfold and fold on the GPU: CuPy in, CuPy out, against the float64
NumPy reference and the CPU kernel, over the CPU tests' geometry table (groups, dilation,
'same' with even kernels, strides that do not divide, batch 1), plus the tile shapes and split
reductions of the implicit GEMM, NaN propagation, accumulation and bit-identical reruns.
Outputs fastconv allocates are poisoned (NaN), so an element a kernel skips fails."""

import itertools

import numpy as np
import pytest

import fastconv
import fastconv.functional as F

from fastconv._opinfo.conv import conv2d_ref, conv2d_backward_ref, unfold_ref, fold_ref
from _cuda import covering, dev, host, requires_cuda
from _util import (assert_close, rtol_for, rand, stable_seed, CASES, CASE_IDS, CASES_BY_ID,
                   conv_args, make_data, reduction_lengths)
from test_conv2d import DTYPES, DTYPE_IDS, UNFOLD_GEOMS, UNFOLD_IDS, _nhwc_view, _unfold_shape
from test_dense import assert_close_nonfinite

pytestmark = requires_cuda

NAMES = ("grad_input", "grad_weight", "grad_bias")
# kernel_cover: groups, stride and dilation at once.
COVER_CASES = covering(CASES, CASES_BY_ID["combo_groups_stride_dil"])


def _is_gpu(a, dtype):
    assert type(a).__module__.startswith("cupy"), f"not a CuPy array: {type(a)}"
    assert a.dtype == dtype


def _matches(got, ref64, cpu, dtype, L, what):
    """Within the float tolerance of the float64 reference, and of the CPU kernel (whose own
    rounding error counts twice)."""
    rtol = rtol_for(dtype, L)
    assert_close(got, ref64, rtol, what=f"{what} vs reference")
    assert_close(got, cpu, 2 * rtol, what=f"{what} vs CPU")


def _backward_all(dout, x, w, args, **kw):
    """GPU gradients (as NumPy) and the CPU kernel's, for the same arguments."""
    got = F.conv2d_backward(dev(dout), dev(x), dev(w), **args, **kw)
    cpu = F.conv2d_backward(dout, x, w, **args, output_mask=kw.get("output_mask", (True,) * 3))
    return got, cpu


# ---------------------------------------------------------------------------
# the CPU tests' geometry table
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", COVER_CASES, ids=CASE_IDS)
def test_conv2d_forward_gpu(case, dtype, poisoned):
    x, w, b, _ = make_data(case, dtype, stable_seed(case["id"], "fwd"))
    args = conv_args(case)
    out = F.conv2d(dev(x), dev(w), dev(b), **args)
    _is_gpu(out, dtype)
    _matches(host(out), conv2d_ref(x, w, b, **args), F.conv2d(x, w, b, **args), dtype,
             reduction_lengths(case)[0], f"forward {case['id']}")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case_id", ["basic_3x3_pad1", "groups3_stride2", "1x1_fast_path",
                                     "same_even_kernel"])
def test_conv2d_forward_no_bias_gpu(case_id, dtype, poisoned):
    case = CASES_BY_ID[case_id]
    x, w, _, _ = make_data(case, dtype, stable_seed(case_id, "nobias"), bias=False)
    args = conv_args(case)
    out = host(F.conv2d(dev(x), dev(w), None, **args))
    _matches(out, conv2d_ref(x, w, None, **args), F.conv2d(x, w, None, **args), dtype,
             reduction_lengths(case)[0], "forward without bias")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", COVER_CASES, ids=CASE_IDS)
def test_conv2d_backward_gpu(case, dtype, poisoned):
    x, w, _, dout = make_data(case, dtype, stable_seed(case["id"], "bwd"), bias=False)
    args = conv_args(case)
    got, cpu = _backward_all(dout, x, w, args)
    refs = conv2d_backward_ref(dout, x, w, **args)
    _, l_dx, l_dw = reduction_lengths(case)
    for g, c, r, L, name in zip(got, cpu, refs, (l_dx, l_dw, l_dw), NAMES):
        _is_gpu(g, dtype)
        _matches(host(g), r, c, dtype, L, f"{name} {case['id']}")


@pytest.mark.parametrize("mask", list(itertools.product([False, True], repeat=3)),
                         ids=lambda m: "".join("1" if v else "0" for v in m))
def test_conv2d_backward_output_mask_gpu(mask, poisoned):
    case = CASES_BY_ID["combo_groups_stride_dil"]
    x, w, _, dout = make_data(case, np.float64, 31, bias=False)
    args = conv_args(case)
    got = F.conv2d_backward(dev(dout), dev(x), dev(w), output_mask=mask, **args)
    refs = conv2d_backward_ref(dout, x, w, **args)
    for want, g, r, name in zip(mask, got, refs, NAMES):
        if not want:
            assert g is None, name
        else:
            assert_close(host(g), r, 1e-10, what=name)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case_id", ["combo_groups_stride_dil", "depthwise_mult2",
                                     "same_even_kernel", "1x1_fast_path"])
def test_conv2d_backward_accumulates_gpu(case_id, dtype, poisoned):
    case = CASES_BY_ID[case_id]
    args = conv_args(case)
    x, w, _, dout = make_data(case, dtype, 41, bias=False)
    rng = np.random.default_rng(42)
    gw0, gb0 = rand(rng, w.shape, dtype), rand(rng, (case["K"],), dtype)
    buf_w, buf_b = dev(gw0), dev(gb0)
    dx_r, dw_r, db_r = conv2d_backward_ref(dout, x, w, **args)
    _, l_dx, l_dw = reduction_lengths(case)
    tol = rtol_for(dtype, l_dw)
    for k in (1, 2):
        dx, gw, gb = F.conv2d_backward(dev(dout), dev(x), dev(w), **args, grad_weight=buf_w,
                                       grad_bias=buf_b)
        assert gw is buf_w and gb is buf_b
        assert_close(host(gw), gw0 + k * dw_r, tol, what=f"grad_weight (call {k})")
        assert_close(host(gb), gb0 + k * db_r, tol, what=f"grad_bias (call {k})")
        assert_close(host(dx), dx_r, rtol_for(dtype, l_dx), what=f"grad_input (call {k})")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_conv2d_padding_only_outputs_equal_bias_gpu(dtype, poisoned):
    rng = np.random.default_rng(21)
    x, w, b = rand(rng, (2, 3, 4, 5), dtype), rand(rng, (4, 3, 2, 2), dtype), rand(rng, (4,), dtype)
    out = host(F.conv2d(dev(x), dev(w), dev(b), stride=1, padding=3))
    bb = np.broadcast_to(b.reshape(1, 4, 1), (2, 4, out.shape[3]))
    for p in (0, 1, out.shape[2] - 2, out.shape[2] - 1):
        assert np.array_equal(out[:, :, p, :], bb), p
    assert_close(out, conv2d_ref(x, w, b, 1, 3, 1, 1), rtol_for(dtype, 12))


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_conv2d_grad_input_zero_where_no_window_reads_gpu(dtype, poisoned):
    """stride 3 with a 2x2 kernel leaves rows and columns no window reads: exactly 0."""
    rng = np.random.default_rng(51)
    x, w = rand(rng, (2, 3, 11, 10), dtype), rand(rng, (4, 3, 2, 2), dtype)
    dout = rand(rng, conv2d_ref(x, w, None, 3).shape, dtype)
    dx = host(F.conv2d_backward(dev(dout), dev(x), dev(w), stride=3,
                                output_mask=(True, False, False))[0])
    dx_r = conv2d_backward_ref(dout, x, w, 3)[0]
    assert_close(dx, dx_r, rtol_for(dtype, 16), what="grad_input")
    assert np.all(dx[dx_r == 0] == 0)


# ---------------------------------------------------------------------------
# the implicit GEMM's tiles and split reductions, large shapes, determinism
# ---------------------------------------------------------------------------

# (N, C, H, W, K, R, S, stride, padding, dilation, groups): output channels 16, 32, 64, 128
# and 200 pick every tile width and leave partial tiles; few output pixels with a long
# reduction split forward and data gradients, many pixels split the weight gradient.
TILE_GEOMS = [
    (4, 3, 28, 28, 16, 5, 5, 1, 2, 1, 1),
    (3, 16, 14, 14, 32, 5, 5, 1, 2, 1, 1),
    (2, 24, 17, 15, 64, 3, 3, 2, 1, 1, 1),
    (2, 40, 9, 11, 128, 3, 3, 1, 1, 1, 1),
    (1, 64, 7, 7, 200, 3, 3, 1, 1, 1, 1),
    (2, 128, 6, 5, 40, 3, 3, 1, 1, 1, 2),
    (1, 3, 67, 61, 20, 11, 11, 4, 2, 1, 1),
    (5, 48, 13, 12, 24, 1, 1, 1, 0, 1, 1),
]
TILE_IDS = ["k16_5x5", "k32_5x5", "k64_s2", "k128", "k200_split", "groups_split",
            "alexnet_11x11_s4", "1x1"]
TILE_BY_ID = dict(zip(TILE_IDS, TILE_GEOMS))


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("geom", covering(TILE_GEOMS, TILE_BY_ID["groups_split"]), ids=TILE_IDS)
def test_conv2d_tiles_gpu(geom, dtype, poisoned):
    N, C, H, W, K, R, S, stride, padding, dilation, groups = geom
    rng = np.random.default_rng(stable_seed(geom))
    args = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    x, w = rand(rng, (N, C, H, W), dtype), rand(rng, (K, C // groups, R, S), dtype)
    b = rand(rng, (K,), dtype)
    y_r = conv2d_ref(x, w, b, **args)
    dout = rand(rng, y_r.shape, dtype)
    L_fwd, L_dx = (C // groups) * R * S, (K // groups) * R * S
    L_dw = N * y_r.shape[2] * y_r.shape[3]
    _matches(host(F.conv2d(dev(x), dev(w), dev(b), **args)), y_r, F.conv2d(x, w, b, **args),
             dtype, L_fwd, "forward")
    got, cpu = _backward_all(dout, x, w, args)
    refs = conv2d_backward_ref(dout, x, w, **args)
    for g, c, r, L, name in zip(got, cpu, refs, (L_dx, L_dw, L_dw), NAMES):
        _matches(host(g), r, c, dtype, L, name)


@pytest.mark.parametrize("geom", [
    (64, 64, 56, 56, 64, 3, 3, 1, 1),      # ResNet 3x3
    (16, 128, 28, 28, 256, 3, 3, 2, 1),    # 3x3 stride 2
    (16, 256, 56, 56, 64, 1, 1, 1, 0),     # 1x1
    (8, 3, 224, 224, 64, 11, 11, 4, 2),    # AlexNet conv1
    (256, 1, 28, 28, 16, 5, 5, 1, 2),      # the course layers, batch 256
    (256, 16, 14, 14, 32, 5, 5, 1, 2),
], ids=["resnet_3x3", "3x3_s2", "1x1", "alexnet_conv1", "course_1_16", "course_16_32"])
def test_conv2d_large_vs_cpu_gpu(geom):
    """float32 on the GPU against the CPU kernel in float64 on the benchmark shapes."""
    N, C, H, W, K, R, S, stride, padding = geom
    rng = np.random.default_rng(stable_seed(geom))
    x, w = rand(rng, (N, C, H, W), np.float32), rand(rng, (K, C, R, S), np.float32)
    b = rand(rng, (K,), np.float32)
    args = dict(stride=stride, padding=padding)
    y64 = F.conv2d(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), **args)
    assert_close(host(F.conv2d(dev(x), dev(w), dev(b), **args)), y64,
                 rtol_for(np.float32, C * R * S), what="forward")
    dout = rand(rng, y64.shape, np.float32)
    got = F.conv2d_backward(dev(dout), dev(x), dev(w), **args)
    refs = F.conv2d_backward(*(a.astype(np.float64) for a in (dout, x, w)), **args)
    L = N * y64.shape[2] * y64.shape[3]
    for g, r, L_, name in zip(got, refs, (K * R * S, L, L), NAMES):
        assert_close(host(g), r, rtol_for(np.float32, L_), what=name)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_conv2d_deterministic_gpu(dtype):
    """Reruns give identical bits, split reductions included (this shape splits the weight
    gradient's reduction over 3200 output pixels, and the forward's over 576 taps)."""
    rng = np.random.default_rng(61)
    x, w = rand(rng, (8, 64, 20, 20), dtype), rand(rng, (16, 64, 3, 3), dtype)
    b, dout = rand(rng, (16,), dtype), rand(rng, (8, 16, 20, 20), dtype)
    xd, wd, bd, gd = dev(x, w, b, dout)

    def run():
        return [host(F.conv2d(xd, wd, bd, padding=1))] + list(
            host(F.conv2d_backward(gd, xd, wd, padding=1)))

    first, again = run(), run()
    for a, b_, name in zip(first, again, ("out",) + NAMES):
        assert np.array_equal(a, b_), f"{name} differs between identical calls"


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_conv2d_nan_inf_propagate_gpu(dtype, poisoned):
    """NaN and inf reach exactly the outputs they reach on the CPU."""
    case = CASES_BY_ID["combo_groups_stride_dil"]
    args = conv_args(case)
    x, w, b, dout = make_data(case, dtype, 71)
    x[0, 1, 2, 3], x[1, 0, 0, 0], x[2, -1, -1, -1] = np.nan, np.inf, -np.inf
    with np.errstate(invalid="ignore"):
        ref = conv2d_ref(x, w, b, **args)
    fwd, l_dx, l_dw = reduction_lengths(case)
    assert_close_nonfinite(host(F.conv2d(dev(x), dev(w), dev(b), **args)), ref,
                           rtol_for(dtype, fwd), what="forward")
    x = make_data(case, dtype, 72)[0]
    dout[0, 0, 1, 1], dout[1, -1, -1, -2] = np.nan, np.inf
    got = F.conv2d_backward(dev(dout), dev(x), dev(w), **args)
    with np.errstate(invalid="ignore"):
        refs = conv2d_backward_ref(dout, x, w, **args)
    for g, r, L, name in zip(got, refs, (l_dx, l_dw, l_dw), NAMES):
        assert_close_nonfinite(host(g), r, rtol_for(dtype, L), what=name)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_conv2d_noncontiguous_gpu(dtype, poisoned):
    case = CASES_BY_ID["combo_groups_stride_dil"]
    args = conv_args(case)
    x, w, b, dout = make_data(case, dtype, 81)
    xv = dev(np.ascontiguousarray(x.transpose(0, 2, 3, 1))).transpose(0, 3, 1, 2)
    assert not xv.flags.c_contiguous
    out = host(F.conv2d(xv, dev(w), dev(b), **args))
    assert_close(out, conv2d_ref(x, w, b, **args), rtol_for(dtype, reduction_lengths(case)[0]))


def test_conv2d_empty_batch_gpu():
    x, w = dev(np.zeros((0, 4, 9, 7), np.float32)), dev(np.ones((6, 2, 3, 3), np.float32))
    y = F.conv2d(x, w, stride=2, padding=1, groups=2)
    assert y.shape == (0, 6, 5, 4)
    dx, dw, db = F.conv2d_backward(dev(np.zeros((0, 6, 5, 4), np.float32)), x, w, stride=2,
                                   padding=1, groups=2)
    assert dx.shape == (0, 4, 9, 7)
    assert not host(dw).any() and not host(db).any()


def test_conv2d_devices_do_not_mix():
    x, w = np.ones((1, 2, 5, 5), np.float32), np.ones((3, 2, 3, 3), np.float32)
    dout = np.ones((1, 3, 3, 3), np.float32)
    with pytest.raises(ValueError, match="weight is on the CPU"):
        F.conv2d(dev(x), w)
    with pytest.raises(ValueError, match="bias is on the GPU"):
        F.conv2d(x, w, dev(np.ones(3, np.float32)))
    with pytest.raises(ValueError, match="grad_output is on the CPU"):
        F.conv2d_backward(dout, dev(x), dev(w))
    with pytest.raises(ValueError, match="grad_weight is on the CPU"):
        F.conv2d_backward(dev(dout), dev(x), dev(w), grad_weight=np.zeros(w.shape, np.float32))


# ---------------------------------------------------------------------------
# unfold / fold
# ---------------------------------------------------------------------------

# kernel_cover: padding and a stride of (2, 1).
COVER_UNFOLD = covering(UNFOLD_GEOMS, UNFOLD_GEOMS[UNFOLD_IDS.index("unfold2")])


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("geom", COVER_UNFOLD, ids=UNFOLD_IDS)
def test_conv2d_unfold_gpu(geom, dtype, poisoned):
    N, C, H, W, ks, dil, pad, st = geom
    x = rand(np.random.default_rng(81), (N, C, H, W), dtype)
    cols = F.unfold(dev(x), ks, dilation=dil, padding=pad, stride=st)
    _is_gpu(cols, dtype)
    assert cols.shape == _unfold_shape(geom)[0]
    # a pure copy: exact, and the same bits as the CPU
    assert_close(host(cols), unfold_ref(x, ks, dil, pad, st), 0.0, what="unfold")
    assert np.array_equal(host(cols), F.unfold(x, ks, dilation=dil, padding=pad, stride=st))
    cols2 = F.unfold(dev(_nhwc_view(x)), ks, dilation=dil, padding=pad, stride=st)
    assert np.array_equal(host(cols2), host(cols))


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("geom", COVER_UNFOLD, ids=UNFOLD_IDS)
def test_conv2d_fold_gpu(geom, dtype, poisoned):
    N, C, H, W, ks, dil, pad, st = geom
    shape, RS = _unfold_shape(geom)
    y = rand(np.random.default_rng(82), shape, dtype)
    out = F.fold(dev(y), (H, W), ks, dilation=dil, padding=pad, stride=st)
    _is_gpu(out, dtype)
    ref = fold_ref(y, (H, W), ks, dil, pad, st)
    assert_close(host(out), ref, rtol_for(dtype, RS), what="fold")
    # the gather adds each pixel's taps in the CPU's order: the same bits
    assert np.array_equal(host(out), F.fold(y, (H, W), ks, dilation=dil, padding=pad, stride=st))
    cover = fold_ref(np.ones(shape), (H, W), ks, dil, pad, st)
    assert np.all(host(out)[cover == 0] == 0)


def test_conv2d_unfold_fold_large_batch_gpu(poisoned):
    x = rand(np.random.default_rng(83), (300, 3, 12, 10), np.float32)
    cols = F.unfold(dev(x), (3, 2), padding=1, stride=(2, 1))
    assert np.array_equal(host(cols), F.unfold(x, (3, 2), padding=1, stride=(2, 1)))
    back = F.fold(cols, (12, 10), (3, 2), padding=1, stride=(2, 1))
    cpu = F.fold(host(cols), (12, 10), (3, 2), padding=1, stride=(2, 1))
    assert np.array_equal(host(back), cpu)


# ---------------------------------------------------------------------------
# TF32 tensor cores (float32 forward, only when fastconv.set_allow_tf32(True))
# ---------------------------------------------------------------------------

@pytest.fixture
def tf32():
    before = fastconv.get_allow_tf32()
    fastconv.set_allow_tf32(True)
    yield
    fastconv.set_allow_tf32(before)


@pytest.mark.parametrize("geom", covering(TILE_GEOMS, TILE_BY_ID["1x1"]), ids=TILE_IDS)
def test_conv2d_forward_tf32_gpu(geom, tf32, poisoned):
    """TF32 keeps 10 mantissa bits of each operand: within 1e-2 of the largest output (float32
    sums of the rounded products are far closer), and float64 is unaffected."""
    N, C, H, W, K, R, S, stride, padding, dilation, groups = geom
    rng = np.random.default_rng(stable_seed(geom, "tf32"))
    args = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    x, w = rand(rng, (N, C, H, W), np.float32), rand(rng, (K, C // groups, R, S), np.float32)
    b = rand(rng, (K,), np.float32)
    ref = conv2d_ref(x, w, b, **args)
    out = host(F.conv2d(dev(x), dev(w), dev(b), **args))
    assert_close(out, ref, 1e-2, what="TF32 forward")
    fastconv.set_allow_tf32(False)
    fp32 = host(F.conv2d(dev(x), dev(w), dev(b), **args))
    fastconv.set_allow_tf32(True)
    assert not np.array_equal(out, fp32), "set_allow_tf32(True) did not change the kernel"
    x64, w64, b64 = (a.astype(np.float64) for a in (x, w, b))
    assert_close(host(F.conv2d(dev(x64), dev(w64), dev(b64), **args)), ref, 1e-10,
                 what="float64 with TF32 allowed")


def test_conv2d_tf32_is_off_by_default_gpu():
    """Without set_allow_tf32 the float32 forward is the FP32 kernel: far inside TF32's error."""
    assert not fastconv.get_allow_tf32()
    rng = np.random.default_rng(91)
    x, w = rand(rng, (2, 64, 9, 9), np.float32), rand(rng, (32, 64, 3, 3), np.float32)
    out = host(F.conv2d(dev(x), dev(w), None, padding=1))
    assert_close(out, conv2d_ref(x, w, None, padding=1), rtol_for(np.float32, 576))
