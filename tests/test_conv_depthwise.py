"""conv2d's depthwise path (csrc/cpu/conv_depthwise.cpp: groups == C == K, stride 1, both
dtypes, every CPU variant) against the float64 reference of fastconv/_opinfo/conv.py.

The shapes reach the path's corners: rows wider than a register block (the last block
overlapping the one before) and narrower than one, a row exactly one block wide, dilation,
asymmetric and 'same' padding, padding beyond the kernel's reach (the input gradient's buffer
offset negative), batch 1, a 1x1 kernel, and a non-square kernel; a strided depthwise layer and
a depthwise multiplier of 2 stay on the GEMM path and are checked beside them.
"""

import numpy as np
import pytest

import fastconv.functional as F

from fastconv._opinfo.conv import conv2d_ref, conv2d_backward_ref
from _util import (_case, assert_close, conv_args, make_data, num_threads, reduction_lengths,
                   rtol_for, stable_seed)

pytestmark = pytest.mark.usefixtures("cpu_isa")

CASES = [
    _case("wide_rows_overlap", 2, 6, 9, 45, 6, 3, 3, padding=1, groups=6),
    _case("narrow_rows_batch1", 1, 5, 11, 7, 5, 3, 3, padding=1, groups=5),
    _case("one_block_row", 2, 3, 5, 32, 3, 3, 3, padding=(1, 1), groups=3),
    _case("dilated_asymmetric", 2, 4, 13, 19, 4, 3, 3, padding=(3, 1), dilation=(2, 1), groups=4),
    _case("same_even_kernel", 2, 4, 10, 12, 4, 4, 2, padding="same", groups=4),
    _case("pad_beyond_kernel", 2, 3, 6, 7, 3, 3, 3, padding=3, groups=3),
    _case("kernel_1x1", 3, 4, 5, 6, 4, 1, 1, groups=4),
    _case("kernel_5x3_valid", 2, 7, 12, 40, 7, 5, 3, groups=7),
]
OTHERS = [
    _case("strided_gemm", 2, 4, 11, 13, 4, 3, 3, stride=2, padding=1, groups=4),
    _case("multiplier_2_gemm", 2, 4, 9, 11, 8, 3, 3, padding=1, groups=4),
]
IDS = [c["id"] for c in CASES + OTHERS]
DTYPES = [np.float32, np.float64]


def _shapes(case, dtype):
    return (np.zeros((case["N"], case["C"], case["H"], case["W"]), dtype),
            np.zeros((case["K"], case["C"] // case["groups"], case["R"], case["S"]), dtype))


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("case", CASES + OTHERS, ids=IDS)
def test_path_taken(case, dtype):
    x, w = _shapes(case, dtype)
    want = "depthwise" if case in CASES else None
    got = F.conv2d_algorithm(x, w, **conv_args(case))
    if want:
        assert set(got.values()) == {"depthwise"}, got
    else:
        assert "depthwise" not in got.values(), got


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("case", CASES + OTHERS, ids=IDS)
def test_forward_and_backward(case, dtype):
    x, w, b, dout = make_data(case, dtype, stable_seed("depthwise", case["id"]))
    out = F.conv2d(x, w, b, **conv_args(case))
    l_out, l_dx, l_dw = reduction_lengths(case)
    assert out.dtype == dtype and not np.isnan(out).any()
    assert_close(out, conv2d_ref(x, w, b, **conv_args(case)), rtol_for(dtype, l_out),
                 what=f"forward {case['id']}")
    got = F.conv2d_backward(dout, x, w, **conv_args(case))
    ref = conv2d_backward_ref(dout, x, w, **conv_args(case))
    for name, g, r, n in zip(("grad_input", "grad_weight", "grad_bias"), got, ref,
                             (l_dx, l_dw, l_dw)):
        assert g.dtype == dtype and not np.isnan(g).any(), name
        assert_close(g, r, rtol_for(dtype, n), what=f"{name} {case['id']}")


@pytest.mark.parametrize("case", CASES, ids=IDS[:len(CASES)])
def test_weight_gradient_accumulates_and_results_do_not_depend_on_threads(case):
    x, w, b, dout = make_data(case, np.float32, stable_seed("depthwise threads", case["id"]))
    start = np.random.default_rng(5).standard_normal(w.shape).astype(np.float32)
    runs = []
    for n in (1, 2, 3):
        gw = start.copy()
        with num_threads(n):
            dx, _, _ = F.conv2d_backward(dout, x, w, **conv_args(case), grad_weight=gw)
            runs.append((F.conv2d(x, w, b, **conv_args(case)), dx, gw))
    _, ref_w, _ = conv2d_backward_ref(dout, x, w, **conv_args(case))
    assert_close(runs[0][2], start + ref_w, rtol_for(np.float32, reduction_lengths(case)[2]),
                 what="grad_weight +=")
    for n, run in zip((2, 3), runs[1:]):
        for what, a, e in zip(("out", "grad_input", "grad_weight"), run, runs[0]):
            np.testing.assert_array_equal(a, e, err_msg=f"{what}: {n} threads vs 1")


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("case", CASES, ids=IDS[:len(CASES)])
def test_bias_gradient_with_the_weight_gradient_is_the_same_as_alone(case, dtype):
    """The weight gradient's pass sums the bias gradient on its way through dy: the same sums
    in the same order as the bias gradient asked for alone, added into grad_bias alike."""
    x, w, _, dout = make_data(case, dtype, stable_seed("depthwise bias", case["id"]))
    start = np.random.default_rng(6).standard_normal(case["K"]).astype(dtype)
    alone, both = start.copy(), start.copy()
    F.conv2d_backward(dout, x, w, **conv_args(case), output_mask=(False, False, True),
                      grad_bias=alone)
    F.conv2d_backward(dout, x, w, **conv_args(case), output_mask=(False, True, True),
                      grad_bias=both)
    _, _, ref_b = conv2d_backward_ref(dout, x, w, **conv_args(case))
    assert_close(both, start + ref_b, rtol_for(dtype, reduction_lengths(case)[2]),
                 what="grad_bias +=")
    np.testing.assert_array_equal(both, alone)


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_non_finite_values_come_out_as_in_pytorch(case, dtype):
    """The stencils multiplied taps with the zeros around dy and dy's zeros past Q with input
    pixels: an infinite weight or input gave NaN (a whole row of the input gradient) where
    PyTorch forms no such product and its result is finite."""
    torch = pytest.importorskip("torch")
    TF = torch.nn.functional
    x, w, b, dout = make_data(case, dtype, stable_seed("depthwise_nonfinite", case["id"]))
    x[0, 0, 0, -1] = np.inf
    w[-1, 0, 0, 0] = -np.inf
    if w.shape[0] > 2:
        w[1, 0, -1, -1] = np.nan
    xt, wt, bt = (torch.from_numpy(a.astype(np.float64)).requires_grad_() for a in (x, w, b))
    out = TF.conv2d(xt, wt, bt, **conv_args(case))
    want = [out] + list(torch.autograd.grad(out, (xt, wt, bt),
                                            torch.from_numpy(dout.astype(np.float64))))
    got = [F.conv2d(x, w, b, **conv_args(case))] + list(
        F.conv2d_backward(dout, x, w, **conv_args(case)))
    for name, g, t in zip(("forward", "grad_input", "grad_weight", "grad_bias"), got, want):
        t = t.detach().numpy()
        assert np.array_equal(np.isnan(g), np.isnan(t)), name
        assert np.array_equal(np.isposinf(g), np.isposinf(t)), name
        assert np.array_equal(np.isneginf(g), np.isneginf(t)), name
        fin = np.isfinite(t)
        assert_close(g[fin], t[fin], 1e-4 if dtype == np.float32 else 1e-10, what=name)
