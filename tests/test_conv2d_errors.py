"""Argument validation of fastconv.functional: every rejection names the argument."""

import re

import numpy as np
import pytest

import fastconv.functional as F


def _x(shape=(2, 4, 8, 8), dtype=np.float64):
    return np.random.default_rng(0).standard_normal(shape).astype(dtype)


def _w(shape=(6, 4, 3, 3), dtype=np.float64):
    return np.random.default_rng(1).standard_normal(shape).astype(dtype)


def _dout(shape=(2, 6, 6, 6), dtype=np.float64):
    return np.random.default_rng(2).standard_normal(shape).astype(dtype)


def _fwd(x=None, w=None, b=None, **kw):
    return F.conv2d(_x() if x is None else x, _w() if w is None else w, b, **kw)


def _bwd(g=None, x=None, w=None, **kw):
    return F.conv2d_backward(_dout() if g is None else g, _x() if x is None else x,
                             _w() if w is None else w, **kw)


OPS = {"forward": _fwd, "backward": _bwd}


def _assert_shape_in(msg, shape):
    """The message shows the received shape, e.g. (2, 6, 6, 5), [2, 6, 6, 5] or (5,)."""
    pat = r"[\(\[]\s*" + r"\s*[,x]\s*".join(str(d) for d in shape) + r"\s*,?\s*[\)\]]"
    assert re.search(pat, msg), f"message should show the received shape {shape}: {msg!r}"


def test_conv2d_errors_valid_baseline():
    """The default arguments used below are valid (so each rejection is caused by one change)."""
    out = _fwd()
    assert out.shape == (2, 6, 6, 6)
    dx, dw, db = _bwd()
    assert dx.shape == (2, 4, 8, 8) and dw.shape == (6, 4, 3, 3) and db.shape == (6,)


# ---------------------------------------------------------------------------
# shapes
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("op", ["forward", "backward"])
@pytest.mark.parametrize("shape", [(4, 8, 8), (1, 2, 4, 8, 8), (8, 8)])
def test_conv2d_errors_input_ndim(op, shape):
    with pytest.raises(ValueError, match="input") as ei:
        OPS[op](x=_x(shape))
    _assert_shape_in(str(ei.value), shape)


@pytest.mark.parametrize("op", ["forward", "backward"])
@pytest.mark.parametrize("shape", [(6, 4, 3), (6, 4, 3, 3, 1), (6, 36)])
def test_conv2d_errors_weight_ndim(op, shape):
    with pytest.raises(ValueError, match="weight") as ei:
        OPS[op](w=_w(shape))
    _assert_shape_in(str(ei.value), shape)


@pytest.mark.parametrize("op", ["forward", "backward"])
def test_conv2d_errors_channel_mismatch(op):
    with pytest.raises(ValueError, match="input|weight"):
        OPS[op](w=_w((6, 3, 3, 3)))  # C=4 but weight expects 3
    with pytest.raises(ValueError, match="input|weight|groups"):
        OPS[op](w=_w((6, 4, 3, 3)), groups=2)  # groups=2 needs weight.shape[1] == 2


def test_conv2d_errors_groups_not_dividing_C():
    # C=4, groups=3: 3 does not divide 4 (weight (6, 1, ...) would give C/groups mismatch anyway)
    with pytest.raises(ValueError, match="groups"):
        F.conv2d(_x((2, 4, 8, 8)), _w((6, 1, 3, 3)), groups=3)
    with pytest.raises(ValueError, match="groups"):
        F.conv2d(_x((2, 5, 8, 8)), _w((6, 1, 3, 3)), groups=3)


def test_conv2d_errors_groups_not_dividing_K():
    # C=4, groups=2, weight (5, 2, 3, 3): channels consistent, but 2 does not divide K=5
    with pytest.raises(ValueError, match="groups"):
        F.conv2d(_x((2, 4, 8, 8)), _w((5, 2, 3, 3)), groups=2)


@pytest.mark.parametrize("op", ["forward", "backward"])
@pytest.mark.parametrize("groups", [0, -1, -2])
def test_conv2d_errors_groups_below_one(op, groups):
    with pytest.raises(ValueError, match="groups"):
        OPS[op](groups=groups)


@pytest.mark.parametrize("op", ["forward", "backward"])
@pytest.mark.parametrize("stride", [0, -1, (1, 0), (0, 1), (-2, 1)])
def test_conv2d_errors_nonpositive_stride(op, stride):
    with pytest.raises(ValueError, match="stride"):
        OPS[op](stride=stride)


@pytest.mark.parametrize("op", ["forward", "backward"])
@pytest.mark.parametrize("dilation", [0, -1, (1, 0), (0, 2)])
def test_conv2d_errors_nonpositive_dilation(op, dilation):
    with pytest.raises(ValueError, match="dilation"):
        OPS[op](dilation=dilation)


@pytest.mark.parametrize("op", ["forward", "backward"])
@pytest.mark.parametrize("padding", [-1, (0, -1), (-1, 0)])
def test_conv2d_errors_negative_padding(op, padding):
    with pytest.raises(ValueError, match="padding"):
        OPS[op](padding=padding)


@pytest.mark.parametrize("op", ["forward", "backward"])
@pytest.mark.parametrize("padding", ["full", "SAME", ""])
def test_conv2d_errors_unknown_padding_string(op, padding):
    with pytest.raises(ValueError, match="padding"):
        OPS[op](padding=padding)


@pytest.mark.parametrize("stride", [2, (1, 2), (2, 1)])
def test_conv2d_errors_same_with_stride(stride):
    with pytest.raises(ValueError, match="padding|stride"):
        F.conv2d(_x(), _w(), padding="same", stride=stride)
    with pytest.raises(ValueError, match="padding|stride"):
        F.conv2d_backward(_dout((2, 6, 4, 4)), _x(), _w(), padding="same", stride=stride)


@pytest.mark.parametrize("op", ["forward", "backward"])
def test_conv2d_errors_output_below_one(op):
    # 9x9 kernel on 8x8 input, no padding
    with pytest.raises(ValueError, match="input|weight|kernel|output"):
        OPS[op](w=_w((6, 4, 9, 9)))
    # dilation makes the effective kernel (5) larger than the input width (4)
    with pytest.raises(ValueError, match="input|weight|kernel|output|dilation"):
        OPS[op](x=_x((2, 4, 8, 4)), dilation=2)


@pytest.mark.parametrize("shape", [(5,), (7,), (6, 1), (1, 6), ()])
def test_conv2d_errors_bias_shape(shape):
    with pytest.raises(ValueError, match="bias") as ei:
        F.conv2d(_x(), _w(), np.zeros(shape))
    if shape:  # a 0-d bias may legitimately be reported after conversion to 1-d
        _assert_shape_in(str(ei.value), shape)


@pytest.mark.parametrize("shape", [(2, 6, 6, 5), (2, 6, 5, 6), (1, 6, 6, 6), (2, 5, 6, 6),
                                   (2, 6, 6), (2, 6, 6, 6, 1)])
def test_conv2d_errors_grad_output_shape(shape):
    with pytest.raises(ValueError, match="grad_output") as ei:
        _bwd(g=_dout(shape))
    _assert_shape_in(str(ei.value), shape)


# ---------------------------------------------------------------------------
# types
# ---------------------------------------------------------------------------

def test_conv2d_errors_mixed_dtypes_forward():
    with pytest.raises(TypeError, match="weight"):
        F.conv2d(_x(dtype=np.float32), _w(dtype=np.float64))
    with pytest.raises(TypeError, match="weight"):
        F.conv2d(_x(dtype=np.float64), _w(dtype=np.float32))
    with pytest.raises(TypeError, match="bias"):
        F.conv2d(_x(dtype=np.float32), _w(dtype=np.float32), np.zeros(6, np.float64))
    with pytest.raises(TypeError, match="bias"):
        F.conv2d(_x(), _w(), np.zeros(6, np.float32))


def test_conv2d_errors_mixed_dtypes_backward():
    with pytest.raises(TypeError, match="grad_output"):
        F.conv2d_backward(_dout(dtype=np.float32), _x(), _w())
    with pytest.raises(TypeError, match="weight"):
        F.conv2d_backward(_dout(), _x(), _w(dtype=np.float32))
    with pytest.raises(TypeError, match="grad_output|input"):
        F.conv2d_backward(_dout(), _x(dtype=np.float32), _w(dtype=np.float32))


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.complex64, np.complex128, np.bool_])
def test_conv2d_errors_bad_dtype_input(dtype):
    x = np.ones((2, 4, 8, 8), dtype=dtype)
    with pytest.raises(TypeError, match="input"):
        F.conv2d(x, np.ones((6, 4, 3, 3), dtype=dtype))
    with pytest.raises(TypeError, match="input"):
        F.conv2d(x, _w())
    with pytest.raises(TypeError, match="input"):
        F.conv2d_backward(_dout(), x, _w())


@pytest.mark.parametrize("dtype", [np.int32, np.complex64])
def test_conv2d_errors_bad_dtype_weight_bias_grad(dtype):
    with pytest.raises(TypeError, match="weight"):
        F.conv2d(_x(), np.ones((6, 4, 3, 3), dtype=dtype))
    with pytest.raises(TypeError, match="bias"):
        F.conv2d(_x(), _w(), np.ones(6, dtype=dtype))
    with pytest.raises(TypeError, match="grad_output"):
        F.conv2d_backward(np.ones((2, 6, 6, 6), dtype=dtype), _x(), _w())


def test_conv2d_errors_list_input():
    x = _x().tolist()
    with pytest.raises(TypeError, match="input"):
        F.conv2d(x, _w())
    with pytest.raises(TypeError, match="weight"):
        F.conv2d(_x(), _w().tolist())
    with pytest.raises(TypeError, match="input"):
        F.conv2d_backward(_dout(), x, _w())
    with pytest.raises(TypeError, match="grad_output"):
        F.conv2d_backward(_dout().tolist(), _x(), _w())


@pytest.mark.parametrize("mask", [(True, True), (True, True, True, True), (1, 1, 1),
                                  ("yes", True, True), True, None, (True, None, False)],
                         ids=["len2", "len4", "ints", "str", "bool", "None", "has_None"])
def test_conv2d_errors_output_mask(mask):
    with pytest.raises((TypeError, ValueError), match="output_mask"):
        _bwd(output_mask=mask)


def test_conv2d_errors_accumulation_buffers():
    """Buffers for the accumulation contract must have the right shape and dtype."""
    with pytest.raises((ValueError, TypeError), match="grad_weight"):
        _bwd(grad_weight=np.zeros((6, 4, 3, 2)))
    with pytest.raises((ValueError, TypeError), match="grad_weight"):
        _bwd(grad_weight=np.zeros((6, 4, 3, 3), np.float32))
    with pytest.raises((ValueError, TypeError), match="grad_bias"):
        _bwd(grad_bias=np.zeros(5))
    with pytest.raises((ValueError, TypeError), match="grad_bias"):
        _bwd(grad_bias=np.zeros(6, np.float32))


# ---------------------------------------------------------------------------
# unfold / fold
# ---------------------------------------------------------------------------

def test_conv2d_errors_unfold_fold():
    with pytest.raises(ValueError, match="input"):
        F.unfold(_x((4, 8, 8)), 3)
    with pytest.raises(TypeError, match="input"):
        F.unfold(np.ones((2, 4, 8, 8), np.int32), 3)
    with pytest.raises(ValueError, match="stride"):
        F.unfold(_x(), 3, stride=0)
    with pytest.raises(ValueError, match="dilation"):
        F.unfold(_x(), 3, dilation=0)
    with pytest.raises(ValueError, match="padding"):
        F.unfold(_x(), 3, padding=-1)
    with pytest.raises(ValueError, match="input|kernel|output"):
        F.unfold(_x(), 9)
    # fold: (N, C*R*S, L) with L not matching the geometry (8x8, 3x3 -> L=36)
    with pytest.raises(ValueError, match=re.escape("(2, 36, 35)") + "|input|output_size"):
        F.fold(_x((2, 36, 35)), (8, 8), 3)
    # C*R*S not divisible by R*S
    with pytest.raises(ValueError, match="input|kernel"):
        F.fold(_x((2, 35, 36)), (8, 8), 3)
    with pytest.raises(TypeError, match="input"):
        F.fold(np.ones((2, 36, 36), np.complex64), (8, 8), 3)


# ---------------------------------------------------------------------------
# regressions found by the property tests (tests/test_properties_conv.py)
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("kw,name", [(dict(stride=2**64), "stride"),
                                     (dict(padding=(0, -(2**63) - 1)), "padding"),
                                     (dict(groups=2**63), "groups")])
def test_conv2d_errors_int_beyond_int64_is_named(kw, name):
    """pybind11 refused these with a TypeError naming no argument."""
    with pytest.raises(ValueError, match=name):
        _fwd(**kw)


@pytest.mark.parametrize("op,kw,name", [
    # int64 overflow in the geometry made these "valid": a segfault, then a result.
    ("conv2d", dict(stride=(2, 2**63 - 1), padding=(2, 2**40), dilation=(1, 2**62)), "stride"),
    ("conv2d", dict(stride=(2**40, 3), padding=(0, 2), dilation=(2**62, 2**63 - 1)), "stride"),
    ("conv2d", dict(padding="same", dilation=2**62), "dilation"),  # was blamed on padding
    ("conv_transpose2d", dict(output_padding=(2**62, 0), dilation=(2**63 - 1, 1)),
     "output_padding"),  # was NumPy's "array is too big"
    ("unfold", dict(kernel_size=3, padding=2**31), "padding"),
    ("max_pool2d", dict(kernel_size=3, dilation=2**62), "dilation"),
    ("adaptive_avg_pool2d", dict(output_size=(2**62, 1)), "output_size"),
])
def test_conv2d_errors_geometry_beyond_int32_is_named(op, kw, name):
    x = _x((1, 4, 5, 6))
    args = dict(conv2d=(x, _w((2, 4, 3, 3))), conv_transpose2d=(x, _w((4, 2, 3, 3)))).get(op, (x,))
    with pytest.raises(ValueError, match=f"{name} must be at most 2147483647"):
        getattr(F, op)(*args, **kw)


@pytest.mark.parametrize("output_size,kernel_size,name", [
    ((0, 5), 2, "output_size"), ((-1, 5), 2, "output_size"), ((5, 5), 0, "kernel_size"),
    ((2**62, 5), 2, "output_size")])
def test_conv2d_errors_fold_names_output_size_and_kernel_size(output_size, kernel_size, name):
    """fold said 'empty spatial or channel size' or 'kernel area 0*0', naming neither."""
    with pytest.raises(ValueError, match=name):
        F.fold(_x((1, 4, 1)), output_size, kernel_size)


def test_conv2d_errors_unfold_empty_input_is_named():
    with pytest.raises(ValueError, match="input"):
        F.unfold(_x((1, 4, 0, 4)), 1)
