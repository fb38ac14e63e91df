"""fastconv.functional vs PyTorch (skipped when torch is not installed)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as TF  # noqa: E402

import fastconv.functional as F  # noqa: E402

from _util import (assert_close, rtol_for, CASES_BY_ID, conv_args, make_data,  # noqa: E402
                   reduction_lengths)

# torch warns (UserWarning) about the extra copy for padding="same" with even kernels;
# the project turns warnings into errors.
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same':UserWarning")

DTYPES = [np.float32, np.float64]
DTYPE_IDS = ["f32", "f64"]

TORCH_CASE_IDS = [
    "basic_3x3_pad1",
    "batch1",
    "odd_nonsquare_3x5_on_13x17",
    "stride3_not_dividing",
    "stride_2_3",
    "pad_larger_than_half_kernel",
    "dilation_2_3",
    "groups3_stride2",
    "depthwise",
    "depthwise_mult2",
    "1x1_fast_path",
    "1x1_stride2",
    "kernel_larger_than_input_padded",
    "same_odd_kernel",
    "same_even_kernel",
    "same_dilated_odd_total",
    "same_dilated_groups",
    "valid",
    "many_channels_64_48",
    "combo_groups_stride_dil",
]


def _t(a):
    return torch.from_numpy(np.ascontiguousarray(a))


def _torch_conv(x, w, b, case, grad_output=None):
    xt = _t(x).requires_grad_(True)
    wt = _t(w).requires_grad_(True)
    bt = _t(b).requires_grad_(True) if b is not None else None
    out = TF.conv2d(xt, wt, bt, **conv_args(case))
    if grad_output is None:
        return out.detach().numpy(), None
    inputs = (xt, wt) + ((bt,) if bt is not None else ())
    grads = torch.autograd.grad(out, inputs, grad_outputs=_t(grad_output))
    return out.detach().numpy(), [g.numpy() for g in grads]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case_id", TORCH_CASE_IDS)
def test_conv2d_torch_forward_backward(case_id, dtype):
    case = CASES_BY_ID[case_id]
    x, w, b, dout = make_data(case, dtype, 1000 + TORCH_CASE_IDS.index(case_id))
    # reference in float64 from the same (possibly float32) values
    ref_out, (ref_dx, ref_dw, ref_db) = _torch_conv(
        x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), case,
        grad_output=dout.astype(np.float64))
    l_fwd, l_dx, l_dw = reduction_lengths(case)

    out = F.conv2d(x, w, b, **conv_args(case))
    assert out.dtype == dtype
    assert_close(out, ref_out, rtol_for(dtype, l_fwd), what="forward vs torch")
    dx, dw, db = F.conv2d_backward(dout, x, w, **conv_args(case))
    assert_close(dx, ref_dx, rtol_for(dtype, l_dx), what="grad_input vs torch")
    assert_close(dw, ref_dw, rtol_for(dtype, l_dw), what="grad_weight vs torch")
    assert_close(db, ref_db, rtol_for(dtype, l_dw), what="grad_bias vs torch")


@pytest.mark.parametrize("case_id", ["basic_3x3_pad1", "same_even_kernel", "depthwise_mult2"])
def test_conv2d_torch_float32_native(case_id):
    """Against torch computing natively in float32 (same dtype on both sides)."""
    case = CASES_BY_ID[case_id]
    x, w, b, dout = make_data(case, np.float32, 2000)
    ref_out, (ref_dx, ref_dw, ref_db) = _torch_conv(x, w, b, case, grad_output=dout)
    l_fwd, l_dx, l_dw = reduction_lengths(case)
    # both sides carry float32 rounding: allow twice the usual tolerance
    assert_close(F.conv2d(x, w, b, **conv_args(case)), ref_out, 2 * rtol_for(np.float32, l_fwd))
    dx, dw, db = F.conv2d_backward(dout, x, w, **conv_args(case))
    assert_close(dx, ref_dx, 2 * rtol_for(np.float32, l_dx))
    assert_close(dw, ref_dw, 2 * rtol_for(np.float32, l_dw))
    assert_close(db, ref_db, 2 * rtol_for(np.float32, l_dw))


def test_conv2d_torch_no_bias():
    case = CASES_BY_ID["same_dilated_odd_total"]
    x, w, _, dout = make_data(case, np.float64, 2001, bias=False)
    ref_out, (ref_dx, ref_dw) = _torch_conv(x, w, None, case, grad_output=dout)
    assert_close(F.conv2d(x, w, None, **conv_args(case)), ref_out, 1e-10)
    dx, dw, db = F.conv2d_backward(dout, x, w, **conv_args(case))
    assert_close(dx, ref_dx, 1e-10)
    assert_close(dw, ref_dw, 1e-10)
    assert_close(db, dout.sum(axis=(0, 2, 3)), 1e-10)


UNFOLD_GEOMS = [
    # (N, C, H, W, kernel_size, dilation, padding, stride)
    (2, 3, 7, 9, (3, 2), 1, 0, 1),
    (1, 2, 10, 10, 3, 1, 0, 3),
    (2, 2, 6, 7, (2, 3), 1, (1, 2), (2, 1)),
    (2, 3, 9, 8, 3, (2, 1), 1, 1),
    (1, 2, 11, 9, (3, 2), (1, 2), (2, 0), (3, 2)),
    (1, 2, 3, 4, 5, 1, 2, 1),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("geom", UNFOLD_GEOMS, ids=[f"g{i}" for i in range(len(UNFOLD_GEOMS))])
def test_conv2d_torch_unfold_fold(geom, dtype):
    N, C, H, W, ks, dil, pad, st = geom
    rng = np.random.default_rng(3000)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    ref_cols = TF.unfold(_t(x), ks, dilation=dil, padding=pad, stride=st).numpy()
    cols = F.unfold(x, ks, dilation=dil, padding=pad, stride=st)
    assert cols.dtype == dtype
    assert_close(cols, ref_cols, 0.0, what="unfold vs torch")
    y = rng.standard_normal(ref_cols.shape).astype(dtype)
    ref_fold = TF.fold(_t(y.astype(np.float64)), (H, W), ks, dilation=dil, padding=pad,
                       stride=st).numpy()
    out = F.fold(y, (H, W), ks, dilation=dil, padding=pad, stride=st)
    assert out.dtype == dtype
    RS = int(np.prod(np.broadcast_to(ks, (2,))))
    assert_close(out, ref_fold, rtol_for(dtype, RS), what="fold vs torch")


def test_conv2d_random_geometries_match_torch():
    """150 seeded random geometries (groups, non-square kernels, strides, dilation, int/pair/
    'same'/'valid' padding): where torch accepts, forward and all gradients agree to 1e-12;
    where torch rejects, fastconv raises ValueError."""
    rng = np.random.default_rng(123)
    checked = 0
    while checked < 150:
        g = int(rng.choice([1, 1, 2, 3]))
        C, K = g * int(rng.integers(1, 4)), g * int(rng.integers(1, 4))
        R, S, H, W = (int(v) for v in rng.integers([1, 1, 1, 1], [6, 6, 14, 14]))
        N = int(rng.integers(1, 4))
        stride = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        dilation = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        mode = int(rng.integers(0, 4))
        padding = {0: "same", 1: "valid"}.get(mode, (int(rng.integers(0, 4)), int(rng.integers(0, 4))))
        if padding == "same":
            stride = (1, 1)
        args = (stride, padding, dilation, g)
        x, w, b = (rng.standard_normal(s) for s in ((N, C, H, W), (K, C // g, R, S), (K,)))
        xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
        try:
            yt = torch.nn.functional.conv2d(xt, wt, bt, *args)
        except RuntimeError:
            with pytest.raises(ValueError):
                F.conv2d(x, w, b, *args)
            continue
        checked += 1
        G = rng.standard_normal(tuple(yt.shape))
        expected = (yt, *torch.autograd.grad(yt, (xt, wt, bt), torch.tensor(G)))
        actual = (F.conv2d(x, w, b, *args), *F.conv2d_backward(G, x, w, *args))
        for name, a, t in zip(("output", "grad_input", "grad_weight", "grad_bias"), actual, expected):
            assert_close(a, t.detach().numpy(), 1e-12, what=f"{name} {x.shape} {w.shape} {args}")


def test_conv_one_element_sequences_mean_both_sides_as_torch():
    """torch's convolutions take stride, padding, dilation and output_padding as a sequence of
    one int, for both sides."""
    rng = np.random.default_rng(21)
    x = rng.standard_normal((2, 3, 9, 8))
    w, wt = rng.standard_normal((4, 3, 3, 2)), rng.standard_normal((3, 4, 3, 2))
    kw = dict(stride=(2,), padding=[1], dilation=(2,))
    want = TF.conv2d(_t(x), _t(w), **kw).numpy()
    assert_close(F.conv2d(x, w, **kw), want, 1e-12)
    assert np.array_equal(F.conv2d(x, w, **kw), F.conv2d(x, w, stride=2, padding=1, dilation=2))
    dy = rng.standard_normal(want.shape)
    assert np.array_equal(F.conv2d_backward(dy, x, w, **kw)[0],
                          F.conv2d_backward(dy, x, w, stride=2, padding=1, dilation=2)[0])
    kw = dict(stride=[2], padding=(1,), output_padding=(1,), dilation=[1])
    assert_close(F.conv_transpose2d(x, wt, **kw), TF.conv_transpose2d(_t(x), _t(wt), **kw).numpy(),
                 1e-12)
    with pytest.raises(ValueError, match="stride must be an int or one or two ints"):
        F.conv2d(x, w, stride=(1, 1, 1))
