"""conv2d whose window covers the whole unpadded input (csrc/cpu/conv.cpp, whole_window: one
output pixel, no padding, no dilation, one group), computed as a linear layer on the flattened
images: LeNet's C5, a classifier head written as a convolution. Against the float64 reference
of fastconv/_opinfo/conv.py in both float dtypes under every CPU variant: square and
non-square windows, strides (which a single window ignores), one input or output channel,
batch 1; accumulation into given gradients; conv_transpose2d of a 1x1 map, whose equivalent
conv2d is such a layer; and which shapes take the path (and which, nearly alike, do not)."""

import numpy as np
import pytest

import fastconv as fc
import fastconv.functional as F
from fastconv._opinfo.conv import (conv2d_backward_ref, conv2d_ref, conv_transpose2d_backward_ref,
                                   conv_transpose2d_ref)

from _util import (_case, assert_close, check_conv2d_passes, conv_args, cpu_variant, make_data,
                   out_hw, reduction_lengths, rtol_for, stable_seed)

CASES = [
    _case("lenet_c5", 5, 16, 5, 5, 120, 5, 5),
    _case("nonsquare_3x7_stride2", 3, 4, 3, 7, 9, 3, 7, stride=2),
    _case("one_input_channel_batch1", 1, 1, 4, 6, 10, 4, 6),
    _case("one_output_channel", 7, 6, 2, 3, 1, 2, 3, stride=(3, 1)),
]
IDS = [c["id"] for c in CASES]
DTYPES = [np.float32, np.float64]
DTYPE_IDS = ["f32", "f64"]


@pytest.mark.parametrize("case", CASES, ids=IDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("variant", fc.info()["cpu_isas"])
def test_the_cases_take_the_linear_path(case, dtype, variant):
    assert out_hw(case) == (1, 1)
    x, w, _, _ = make_data(case, dtype, 0, bias=False)
    with cpu_variant(variant):
        got = F.conv2d_algorithm(x, w, **conv_args(case))
    assert got == {"forward": "linear", "grad_input": "linear", "grad_weight": "linear"}


@pytest.mark.usefixtures("cpu_isa")
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_forward_and_backward(case, dtype):
    check_conv2d_passes(case, dtype, stable_seed("whole window", case["id"]))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_backward_accumulates_into_given_gradients(case):
    x, w, _, dout = make_data(case, np.float64, stable_seed("whole acc", case["id"]), bias=False)
    rng = np.random.default_rng(stable_seed("whole acc start", case["id"]))
    gw, gb = rng.standard_normal(w.shape), rng.standard_normal(case["K"])
    start_w, start_b = gw.copy(), gb.copy()
    _, got_w, got_b = F.conv2d_backward(dout, x, w, **conv_args(case), grad_weight=gw,
                                        grad_bias=gb)
    assert got_w is gw and got_b is gb
    _, ref_w, ref_b = conv2d_backward_ref(dout, x, w, **conv_args(case))
    n = reduction_lengths(case)[2]
    assert_close(gw, start_w + ref_w, rtol_for(np.float64, n), what="grad_weight += ")
    assert_close(gb, start_b + ref_b, rtol_for(np.float64, n), what="grad_bias += ")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_conv_transpose2d_of_one_pixel(dtype):
    """A transposed convolution of a 1x1 map to a 3x4 one: its forward is the equivalent
    conv2d's input gradient and its input gradient that conv2d's forward, both linear."""
    rng = np.random.default_rng(stable_seed("whole transposed"))
    x = rng.standard_normal((4, 6, 1, 1)).astype(dtype)
    w = rng.standard_normal((6, 5, 3, 4)).astype(dtype)
    b = rng.standard_normal(5).astype(dtype)
    y = F.conv_transpose2d(x, w, b)
    assert_close(y, conv_transpose2d_ref(x, w, b), rtol_for(dtype, 6), what="forward")
    dout = rng.standard_normal(y.shape).astype(dtype)
    got = F.conv_transpose2d_backward(dout, x, w)
    ref = conv_transpose2d_backward_ref(dout, x, w)
    for what, g, r, n in zip(("grad_input", "grad_weight", "grad_bias"), got, ref,
                             (5 * 12, 4, 4 * 12)):
        assert_close(g, r, rtol_for(dtype, n), what=what)


# Nearly whole windows that stay convolutions: padding, dilation or groups.
NOT_LINEAR = [
    _case("padded", 4, 16, 3, 3, 120, 5, 5, padding=1),
    _case("dilated", 4, 3, 5, 5, 8, 3, 3, dilation=2),
    _case("two_groups", 4, 8, 5, 5, 8, 5, 5, groups=2),
]


@pytest.mark.parametrize("case", NOT_LINEAR, ids=[c["id"] for c in NOT_LINEAR])
def test_other_one_pixel_layers_stay_convolutions(case):
    assert out_hw(case) == (1, 1)
    x, w, b, dout = make_data(case, np.float64, stable_seed("not linear", case["id"]))
    assert "linear" not in F.conv2d_algorithm(x, w, **conv_args(case)).values()
    assert_close(F.conv2d(x, w, b, **conv_args(case)), conv2d_ref(x, w, b, **conv_args(case)),
                 rtol_for(np.float64), what="forward")
