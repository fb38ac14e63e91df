"""conv2d's small-plane path (csrc/cpu/conv.cpp, small_planes: at most 16 output pixels per
plane, a batch of two or more, one group): the images of a chunk side by side in one
[C*R*S, images * P*Q] matrix, one GEMM per pass. Against the float64 reference of
fastconv/_opinfo/conv.py in both float dtypes: ResNet's last stages (4x4 planes, stride 2 into
them, their 1x1 projection), one output pixel from a padded window (an unpadded window over
the whole input is a linear layer: test_conv_whole_window.py), dilation and asymmetric padding,
batch 2, and batches that span several chunks of the 64 MB column budget; conv_transpose2d
through its equivalent conv2d; accumulation into given gradients; repeatable results."""

import numpy as np
import pytest

import fastconv.functional as F
from fastconv._opinfo.conv import (conv2d_backward_ref, conv_transpose2d_backward_ref,
                                   conv_transpose2d_ref)

from _util import (_case, assert_close, check_conv2d_passes, conv_args, make_data, num_threads,
                   out_hw, reduction_lengths, rtol_for, stable_seed)

CASES = [
    _case("resnet_l4_4x4", 3, 64, 4, 4, 48, 3, 3, padding=1),
    _case("stride2_into_4x3", 2, 24, 7, 6, 40, 3, 3, stride=2, padding=1),
    _case("projection_1x1_s2", 5, 32, 7, 7, 24, 1, 1, stride=2),
    _case("one_pixel_padded_window", 4, 16, 3, 3, 120, 5, 5, padding=1),
    _case("dilated_asymmetric", 2, 10, 4, 7, 9, 3, 2, padding=(2, 0), dilation=(2, 3)),
    # C*R*S * P*Q = 1024*18 * 16 values per image, 1.18 MB in float32, 2.36 in float64: 57 images
    # make 2 and 3 chunks of the 64 MB budget.
    _case("several_chunks", 57, 1024, 4, 5, 8, 3, 6, padding=(1, 2)),
]
IDS = [c["id"] for c in CASES]
DTYPES = [np.float32, np.float64]
DTYPE_IDS = ["f32", "f64"]


def test_the_cases_take_the_small_plane_path():
    for case in CASES:
        P, Q = out_hw(case)
        assert P * Q <= 16 and case["N"] >= 2 and case["groups"] == 1, case["id"]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_forward_and_backward(case, dtype):
    check_conv2d_passes(case, dtype, stable_seed("small planes", case["id"]))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_backward_accumulates_into_given_gradients(case):
    x, w, _, dout = make_data(case, np.float64, stable_seed("small acc", case["id"]), bias=False)
    start = np.random.default_rng(stable_seed("small acc start", case["id"])).standard_normal(
        w.shape)
    gw = start.copy()
    dx, got, _ = F.conv2d_backward(dout, x, w, **conv_args(case), grad_weight=gw,
                                   output_mask=(True, True, False))
    assert got is gw
    _, ref_w, _ = conv2d_backward_ref(dout, x, w, **conv_args(case))
    assert_close(gw, start + ref_w, rtol_for(np.float64, reduction_lengths(case)[2]),
                 what="grad_weight += ")


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_results_are_repeatable(case):
    """Reruns give the same bits (no race between the threads' blocks); across thread counts
    they may differ in the last bits, as on the other BLAS paths (README, Threads)."""
    x, w, b, dout = make_data(case, np.float32, stable_seed("small repeat", case["id"]))
    runs = []
    for _ in range(2):
        with num_threads(2):
            runs.append((F.conv2d(x, w, b, **conv_args(case)),)
                        + F.conv2d_backward(dout, x, w, **conv_args(case)))
    for what, a, e in zip(("out", "dx", "dw", "db"), runs[1], runs[0]):
        np.testing.assert_array_equal(a, e, err_msg=what)


def test_conv_transpose2d_from_small_planes():
    """A transposed convolution of a 4x4 map: its forward is the small-plane input gradient
    of the equivalent conv2d, its input gradient that conv2d's small-plane forward."""
    rng = np.random.default_rng(stable_seed("small transposed"))
    x = rng.standard_normal((3, 20, 4, 3))
    w = rng.standard_normal((20, 6, 3, 3))
    b = rng.standard_normal(6)
    args = dict(stride=2, padding=1, output_padding=1)
    y = F.conv_transpose2d(x, w, b, **args)
    assert_close(y, conv_transpose2d_ref(x, w, b, **args), rtol_for(np.float64, 20 * 9),
                 what="forward")
    dout = rng.standard_normal(y.shape)
    got = F.conv_transpose2d_backward(dout, x, w, **args)
    ref = conv_transpose2d_backward_ref(dout, x, w, **args)
    for what, g, r, n in zip(("grad_input", "grad_weight", "grad_bias"), got, ref,
                             (6 * 9, 3 * 12, y[0, 0].size * 3)):
        assert_close(g, r, rtol_for(np.float64, n), what=what)
