"""conv2d's Winograd path (csrc/cpu/conv_winograd.cpp: F(2x2, 3x3), float32 under AVX-512 and
AVX2) for
3x3 layers at stride 1, forward, input and weight gradients, against the float64 reference of
fastconv/_opinfo/conv.py, at the same tolerance as every other path, under every CPU variant
(the others run the same shapes through the direct tiles or the GEMM).

The shapes reach the path's corners: odd output sizes (a last block row or column of one
pixel), rows of one and of two vectors of tiles, lanes past the row's last tile, short rows
whose blocks are gathered 16 at a time across rows and images, padding 0, 1,
2 and 3 (the input gradient's window offset negative) and uneven padding, groups, batch 1,
items of four vectors that run across images, input channels beyond one chunk of 64 and output
channels beyond one pass of 48 (and counts that leave a partial block of 6). Which shapes take
the path, and which nearly alike do not, is pinned; results do not depend on the thread count.
"""

import numpy as np
import pytest

import fastconv as fc
import fastconv.functional as F
from fastconv._opinfo.conv import (conv2d_backward_ref, conv2d_ref,
                                   conv_transpose2d_backward_ref, conv_transpose2d_ref)

from _util import (_case, assert_close, check_conv2d_passes, check_same_bits_for_thread_counts,
                   conv_args, cpu_variant, make_data, reduction_lengths, rtol_for, stable_seed)

CASES = [
    _case("resnet_like_pad1", 2, 32, 18, 30, 32, 3, 3, padding=1),
    _case("odd_sizes_batch1", 1, 17, 13, 27, 40, 3, 3, padding=1),
    _case("valid_three_quarter_lanes", 3, 24, 20, 26, 24, 3, 3),
    _case("pad2_full_vector", 2, 16, 11, 29, 48, 3, 3, padding=2),
    _case("uneven_padding", 2, 32, 9, 26, 32, 3, 3, padding=(0, 1)),
    _case("pad3_beyond_kernel", 2, 32, 8, 26, 16, 3, 3, padding=3),
    _case("two_groups", 2, 64, 10, 28, 64, 3, 3, padding=1, groups=2),
    _case("two_vectors_per_row_batch1", 1, 16, 6, 61, 32, 3, 3, padding=1),
    _case("channel_chunks_partial_block", 1, 80, 8, 32, 20, 3, 3, padding=1),
    _case("output_passes", 1, 20, 8, 32, 100, 3, 3, padding=1),
    _case("items_across_images", 5, 16, 9, 25, 32, 3, 3, padding=1),
    # Rows too short to fill the lanes: flat vectors of 16 blocks gathered from anywhere in the
    # batch (several images per vector, padding, a last vector part empty).
    _case("flat_14x14_batch1", 1, 32, 14, 14, 24, 3, 3, padding=1),
    _case("flat_9x9_vectors_across_images", 3, 32, 9, 9, 40, 3, 3, padding=1),
    _case("flat_4x4_four_images_a_vector", 16, 16, 4, 4, 32, 3, 3, padding=1),
    _case("flat_valid", 4, 24, 10, 12, 24, 3, 3),
    _case("flat_pad2", 3, 16, 10, 10, 48, 3, 3, padding=2),
    # The weight gradient's input channels in passes of 60 (at 256 output channels): three
    # passes of two items, each whole on a thread; two passes of six items split among threads.
    _case("weight_grad_passes", 3, 130, 6, 16, 256, 3, 3, padding=1),
    _case("weight_grad_passes_many_items", 4, 70, 12, 32, 256, 3, 3, padding=1),
    # Input channels in five chunks of the forward's GEMMs (the last of 44).
    _case("channels_300", 1, 300, 8, 32, 40, 3, 3, padding=1),
    # 64-256 channels: AVX2 runs the weight gradient too (odd sizes, batch 1).
    _case("avx2_weight_grad", 3, 64, 13, 30, 96, 3, 3, padding=1),
    _case("avx2_weight_grad_batch1", 1, 80, 11, 27, 64, 3, 3, padding=1),
    _case("avx2_weight_grad_flat_7x7", 6, 64, 7, 7, 72, 3, 3, padding=1),
]
IDS = [c["id"] for c in CASES]

WINOGRAD_VARIANTS = [v for v in ("avx512", "avx2") if v in fc.info()["cpu_isas"]]


def _avx2_layout_fits(N, P, Q, grad_weight=False):
    """The AVX2 variant's layout rule: vectors of 8 2x2 blocks along the block rows of the N
    output planes of P x Q where a row's blocks fill 3/4 of the lanes it takes, else 8
    consecutive blocks of the batch whose outputs fill 3/4 of the lanes' 4 each; at least one
    item's 8 vectors (for the weight gradient: 48 blocks, 3/4 of an item's 64, and 64-256
    channels a side, below)."""
    rows, cols = (P + 1) // 2, (Q + 1) // 2
    per_row = -(-cols // 8)
    if 4 * cols >= 3 * 8 * per_row:
        vectors = N * rows * per_row
    else:
        vectors = -(-N * rows * cols // 8)
        if 4 * N * P * Q < 3 * 4 * 8 * vectors:
            return False
    return 4 * N * rows * cols >= 3 * 64 if grad_weight else vectors >= 8


def _avx2_winograd_passes(case):
    """The passes of a case that CASES makes Winograd under AVX-512 which AVX2 runs there too:
    the forward and weight gradient on the output planes, the input gradient on the input
    planes."""
    pad = case["padding"] if isinstance(case["padding"], tuple) else (case["padding"],) * 2
    P, Q = case["H"] + 2 * pad[0] - 2, case["W"] + 2 * pad[1] - 2
    passes = set()
    if _avx2_layout_fits(case["N"], P, Q):
        passes.add("forward")
    if _avx2_layout_fits(case["N"], case["H"], case["W"]):
        passes.add("grad_input")
    C, K = case["C"] // case["groups"], case["K"] // case["groups"]
    if 64 <= min(C, K) and max(C, K) <= 256 and _avx2_layout_fits(case["N"], P, Q, True):
        passes.add("grad_weight")
    return passes


@pytest.mark.parametrize("case", CASES, ids=IDS)
@pytest.mark.parametrize("variant", fc.info()["cpu_isas"])
def test_the_cases_take_the_winograd_path_under_avx512_and_avx2(case, variant):
    x, w, _, _ = make_data(case, np.float32, 0, bias=False)
    with cpu_variant(variant):
        got = F.conv2d_algorithm(x, w, **conv_args(case))
        got64 = F.conv2d_algorithm(x.astype(np.float64), w.astype(np.float64), **conv_args(case))
    winograd = {p for p, a in got.items() if a == "winograd"}
    if variant == "avx512":
        assert winograd == {"forward", "grad_input", "grad_weight"}
    elif variant == "avx2":
        assert winograd == _avx2_winograd_passes(case)
    else:
        assert not winograd
    assert "winograd" not in got64.values()


def test_avx2_runs_most_cases():
    """The rule above leaves the AVX2 variant most of the cases, along rows and flat."""
    assert sum(len(_avx2_winograd_passes(c)) for c in CASES) >= 40
    assert sum("grad_weight" in _avx2_winograd_passes(c) for c in CASES) >= 5


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_avx2_gives_the_avx512_bits(case):
    """The AVX2 variant runs the AVX-512 variant's chains of operations (the same transformed
    weights, the same sums in the same order), so where both take Winograd their bits agree.
    (A CPU without AVX-512 has nothing to compare.)"""
    passes = _avx2_winograd_passes(case) if len(WINOGRAD_VARIANTS) == 2 else set()
    x, w, b, dout = make_data(case, np.float32, stable_seed("winograd avx2 bits", case["id"]))
    runs = {}
    for variant in ("avx512", "avx2"):
        with cpu_variant(variant):
            runs[variant] = (F.conv2d(x, w, b, **conv_args(case)),) + F.conv2d_backward(
                dout, x, w, **conv_args(case), output_mask=(True, True, False))[:2]
    for i, what in enumerate(("forward", "grad_input", "grad_weight")):
        if what in passes:
            np.testing.assert_array_equal(runs["avx2"][i], runs["avx512"][i], err_msg=what)


@pytest.mark.usefixtures("cpu_isa")
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_forward_and_backward(case):
    check_conv2d_passes(case, np.float32, stable_seed("winograd", case["id"]))


@pytest.mark.usefixtures("cpu_isa")
@pytest.mark.parametrize("case", CASES[:3] + CASES[-3:], ids=IDS[:3] + IDS[-3:])
def test_weight_gradient_accumulates_into_given_gradients(case):
    x, w, _, dout = make_data(case, np.float32, stable_seed("winograd acc", case["id"]),
                              bias=False)
    rng = np.random.default_rng(stable_seed("winograd acc start", case["id"]))
    start = rng.standard_normal(w.shape).astype(np.float32)
    gw = start.copy()
    got = F.conv2d_backward(dout, x, w, **conv_args(case), grad_weight=gw,
                            output_mask=(False, True, False))[1]
    assert got is gw
    ref = conv2d_backward_ref(dout, x, w, **conv_args(case))[1]
    assert_close(gw, start + ref, rtol_for(np.float32, reduction_lengths(case)[2]),
                 what="grad_weight += ")


@pytest.mark.parametrize("variant", WINOGRAD_VARIANTS)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_results_do_not_depend_on_thread_count(case, variant):
    check_same_bits_for_thread_counts(case, variant, stable_seed("winograd threads", case["id"]))


@pytest.mark.usefixtures("cpu_isa")
def test_large_values_keep_their_relative_accuracy():
    """The transforms add up to 16 inputs and 9 products per output: values of 1e30 neither
    overflow nor lose more than the float32 tolerance."""
    case = _case("scaled", 2, 32, 10, 30, 32, 3, 3, padding=1)
    x, w, b, dout = make_data(case, np.float32, stable_seed("winograd scaled"))
    x = (x * np.float32(1e30)).astype(np.float32)
    y = F.conv2d(x, w, b, padding=1)
    assert np.isfinite(y).all()
    assert_close(y, conv2d_ref(x, w, b, padding=1), rtol_for(np.float32, 32 * 9),
                 what="forward at 1e30")


@pytest.mark.usefixtures("cpu_isa")
def test_channel_sums_stay_at_pytorchs_float32_accuracy():
    """The transformed-domain products summed over the input channels in passes of 64, each
    from zero and then added (continuing one float32 chain over all C, 256 channels came 5.7e-7
    of the largest output off float64 and the weight gradient's item sums 1.2e-6, 2-4x
    PyTorch's float32 error): both within 4-5e-7."""
    rng = np.random.default_rng(33)
    x = rng.standard_normal((2, 256, 12, 12)).astype(np.float32)
    w = (rng.standard_normal((32, 256, 3, 3)) / 48).astype(np.float32)
    assert_close(F.conv2d(x, w, padding=1), conv2d_ref(x, w, None, 1, 1, 1, 1), 4e-7,
                 what="forward, 256 channels")
    x = rng.standard_normal((8, 64, 28, 28)).astype(np.float32)
    w = (rng.standard_normal((64, 64, 3, 3)) / 24).astype(np.float32)
    dy = rng.standard_normal((8, 64, 28, 28)).astype(np.float32)
    _, dw, _ = F.conv2d_backward(dy, x, w, padding=1, output_mask=(False, True, False))
    assert_close(dw, conv2d_backward_ref(dy, x, w, 1, 1, 1, 1)[1], 5e-7,
                 what="weight gradient over 8 x 28 x 28 pixels")


@pytest.mark.usefixtures("cpu_isa")
@pytest.mark.parametrize("where", ["input", "grad_output"])
@pytest.mark.parametrize("value", [np.inf, -np.inf, np.nan], ids=["inf", "-inf", "nan"])
def test_an_infinity_or_nan_comes_out_where_and_as_the_reference_has_it(value, where):
    """The transforms would meet an infinity with itself and give NaN where the sums give
    +-inf: a call whose arrays hold one takes the GEMM path. Each result is non-finite exactly
    where the float64 reference is, with the same value there (zeros of the padding times an
    infinity are NaN in both), and close elsewhere."""
    case = _case("non_finite", 2, 32, 10, 30, 32, 3, 3, padding=1)
    x, w, b, dout = make_data(case, np.float32, stable_seed("winograd non-finite"))
    if where == "input":
        x[1, 3, 4, 7] = value
    else:
        dout[0, 5, 2, 9] = value
    got = (F.conv2d(x, w, b, padding=1),) + F.conv2d_backward(dout, x, w, padding=1)
    with np.errstate(invalid="ignore"):
        ref = (conv2d_ref(x, w, b, padding=1),) + conv2d_backward_ref(dout, x, w, padding=1)
    for what, g, r in zip(("forward", "grad_input", "grad_weight", "grad_bias"), got, ref):
        bad = ~np.isfinite(r)
        np.testing.assert_array_equal(g[bad], r[bad].astype(np.float32), err_msg=what)
        assert_close(np.where(bad, 0, g), np.where(bad, 0, r), rtol_for(np.float32, 2 * 10 * 30),
                     what=what)
    assert (~np.isfinite(got[0] if where == "input" else got[1])).any()


def _check_non_finite_as_reference(got, ref, n):
    for what, g, r in zip(("forward", "grad_input", "grad_weight", "grad_bias"), got, ref):
        bad = ~np.isfinite(r)
        np.testing.assert_array_equal(g[bad], r[bad].astype(np.float32), err_msg=what)
        assert_close(np.where(bad, 0, g), np.where(bad, 0, r), rtol_for(np.float32, n),
                     what=what)


@pytest.mark.usefixtures("cpu_isa")
@pytest.mark.parametrize("value", [np.inf, -np.inf, np.nan], ids=["inf", "-inf", "nan"])
def test_an_infinity_or_nan_in_the_weights_and_in_gathered_blocks(value):
    """A non-finite weight reaches every output of its channel through the transformed
    weights, and one in a plane too short for rows reaches its outputs through gathered blocks
    (the flat layout, whose outputs are scattered): each call is redone on the GEMM path, as
    for one in a row layout's input."""
    case = _case("non_finite_weight", 2, 32, 10, 30, 32, 3, 3, padding=1)
    x, w, b, dout = make_data(case, np.float32, stable_seed("winograd non-finite weight"))
    w[3, 7, 0, 2] = value
    got = (F.conv2d(x, w, b, padding=1),) + F.conv2d_backward(dout, x, w, padding=1)
    with np.errstate(invalid="ignore"):
        ref = (conv2d_ref(x, w, b, padding=1),) + conv2d_backward_ref(dout, x, w, padding=1)
    _check_non_finite_as_reference(got, ref, 2 * 10 * 30)
    assert (~np.isfinite(got[0][:, 3])).any() and (~np.isfinite(got[1][:, 7])).any()

    flat = _case("non_finite_flat", 3, 32, 9, 9, 40, 3, 3, padding=1)
    x, w, b, dout = make_data(flat, np.float32, stable_seed("winograd non-finite flat"))
    x[2, 5, 8, 0] = value
    dout[1, 9, 4, 4] = value
    got = (F.conv2d(x, w, b, padding=1),) + F.conv2d_backward(dout, x, w, padding=1)
    with np.errstate(invalid="ignore"):
        ref = (conv2d_ref(x, w, b, padding=1),) + conv2d_backward_ref(dout, x, w, padding=1)
    _check_non_finite_as_reference(got, ref, 3 * 9 * 9)


@pytest.mark.usefixtures("cpu_isa")
def test_finite_values_whose_transforms_overflow_take_the_gemm_path():
    """Inputs and weights near float32's largest value are finite, and so are the sums the
    reference makes of them at these scales, but the transforms' sums of up to four of them
    overflow to infinity (and meet another with the other sign: NaN). The Winograd results are
    then not finite, and the call is redone on the GEMM path: finite and close."""
    case = _case("overflow", 2, 32, 10, 30, 32, 3, 3, padding=1)
    x, w, b, dout = make_data(case, np.float32, stable_seed("winograd overflow"))
    big = np.float32(3e38)
    xs = np.where(x > 0, big, -big).astype(np.float32)
    ws = (w * np.float32(1e-37)).astype(np.float32)
    y = F.conv2d(xs, ws, b, padding=1)
    assert np.isfinite(y).all()
    assert_close(y, conv2d_ref(xs, ws, b, padding=1), rtol_for(np.float32, 32 * 9),
                 what="forward of inputs near the largest float")
    wb = np.where(w > 0, big, -big).astype(np.float32)
    xb = (x * np.float32(1e-30)).astype(np.float32)
    dx = F.conv2d_backward((dout * np.float32(1e-9)).astype(np.float32), xb, wb, padding=1,
                           output_mask=(True, False, False))[0]
    assert np.isfinite(dx).all()
    assert_close(dx, conv2d_backward_ref((dout * np.float32(1e-9)).astype(np.float32), xb, wb,
                                         padding=1)[0],
                 rtol_for(np.float32, 32 * 9), what="input gradient of weights near the largest")


@pytest.mark.usefixtures("cpu_isa")
def test_conv_transpose2d_runs_the_input_gradient():
    """conv_transpose2d at stride 1 with a 3x3 kernel: its forward is the equivalent conv2d's
    input gradient, its input gradient that conv2d's forward, both Winograd under AVX-512."""
    rng = np.random.default_rng(stable_seed("winograd transposed"))
    x = rng.standard_normal((2, 48, 9, 30)).astype(np.float32)
    w = rng.standard_normal((48, 32, 3, 3)).astype(np.float32)
    b = rng.standard_normal(32).astype(np.float32)
    y = F.conv_transpose2d(x, w, b, padding=1)
    assert_close(y, conv_transpose2d_ref(x, w, b, padding=1), rtol_for(np.float32, 48 * 9),
                 what="forward")
    dout = rng.standard_normal(y.shape).astype(np.float32)
    got = F.conv_transpose2d_backward(dout, x, w, padding=1)
    ref = conv_transpose2d_backward_ref(dout, x, w, padding=1)
    for what, g, r, n in zip(("grad_input", "grad_weight", "grad_bias"), got, ref,
                             (32 * 9, 2 * 9 * 30, 2 * 9 * 30)):
        assert_close(g, r, rtol_for(np.float32, n), what=what)


# Layers one step from a case above that keep other paths under AVX-512, with the passes that
# do take Winograd: a stride, a dilation, another kernel, too few channels, planes whose blocks
# waste lanes; past 512 channels the forward and input gradient (where the weight gradient
# runs its input channels in passes); too few blocks to fill the GEMMs.
NOT_WINOGRAD = [
    (_case("stride2", 2, 32, 18, 30, 32, 3, 3, stride=2, padding=1), ()),
    (_case("dilation2", 2, 32, 18, 30, 32, 3, 3, padding=2, dilation=2), ()),
    (_case("kernel_5x5", 2, 32, 18, 30, 32, 5, 5, padding=2), ()),
    (_case("kernel_3x1", 2, 32, 18, 30, 32, 3, 1, padding=(1, 0)), ()),
    (_case("sixteen_channels_each", 2, 16, 18, 30, 16, 3, 3, padding=1), ()),
    # 5x5 planes: 9 blocks of 2x2 hold 25 of 36 outputs.
    (_case("planes_of_5x5", 4, 32, 5, 5, 32, 3, 3, padding=1), ()),
    (_case("output_channels_513", 1, 32, 8, 32, 513, 3, 3, padding=1), ()),
    (_case("input_channels_513", 1, 513, 8, 32, 32, 3, 3, padding=1), ("grad_weight",)),
    # One vector of blocks, under an item's four.
    (_case("few_blocks", 1, 64, 8, 8, 64, 3, 3, padding=1), ()),
]


@pytest.mark.parametrize("case,winograd", NOT_WINOGRAD, ids=[c["id"] for c, _ in NOT_WINOGRAD])
def test_nearby_layers_take_other_paths(case, winograd):
    x, w, _, _ = make_data(case, np.float32, 0, bias=False)
    for variant in fc.info()["cpu_isas"]:
        with cpu_variant(variant):
            got = F.conv2d_algorithm(x, w, **conv_args(case))
        # Under AVX2 none of them (its weight gradient takes at most 256 channels a side).
        assert {p for p, a in got.items() if a == "winograd"} == (
            set(winograd) if variant == "avx512" else set()), variant
