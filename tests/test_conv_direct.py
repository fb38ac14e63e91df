"""conv2d's direct path (csrc/cpu/conv_direct.cpp: float32 under AVX2 or AVX-512) against the
float64 reference of fastconv/_opinfo/conv.py, under every instruction-set variant this machine
has (the baseline variant runs the same shapes through im2col + GEMM).

test_conv2d.py's shape table is small on purpose and mostly misses the direct path's gates
(output channels per group at least half a vector, C/groups*R*S at least 32, for the weight
gradient 16 output pixels or more); these shapes are built to pass them and to reach the
path's corners: channel counts that leave a partial vector, rows wider than a register tile
(the last tile overlapping the one before), strides that do not divide, dilation, asymmetric
and 'same' padding, padding beyond the kernel's reach (the data gradient's buffer offset
negative), groups, batch 1, input buffers split into row blocks, and planes narrower than a
tile (at most half a tile wide: several rows, of one image or the next, per tile), and layers
of one channel block, whose tiles hold a kernel row's weights.
"""

import numpy as np
import pytest

import fastconv as fc
import fastconv.functional as F

from fastconv._opinfo.conv import (conv2d_ref, conv2d_backward_ref, conv_transpose2d_ref,
                                   conv_transpose2d_backward_ref)
from _util import (_case, assert_close, check_same_bits_for_thread_counts, conv_args, cpu_variant,
                   fixed_order_passes, make_data, reduction_lengths, rtol_for, stable_seed)

CASES = [
    _case("fashion_conv2", 2, 16, 14, 14, 32, 5, 5, padding=2),
    _case("partial_vector_wide_rows_batch1", 1, 5, 9, 31, 20, 3, 3, padding=1),
    _case("stride_2_3_dilation_pad_pair", 2, 8, 23, 29, 24, 3, 5, stride=(2, 3),
          padding=(1, 2), dilation=(2, 1)),
    _case("groups2", 2, 16, 11, 13, 32, 3, 3, padding=1, groups=2),
    _case("pad_beyond_kernel", 2, 12, 6, 7, 16, 3, 3, padding=3),
    _case("same_even_kernel", 2, 8, 10, 12, 16, 4, 2, padding="same"),
    _case("dilated_unit_stride", 1, 9, 17, 19, 12, 3, 3, padding=(2, 3), dilation=2),
    _case("row_blocks_batch1", 1, 96, 44, 40, 16, 3, 3, padding=1),
    _case("lenet_c3_valid", 3, 6, 14, 14, 16, 5, 5),
    # Small planes, many channels, an odd batch (ResNet's last stages at small input).
    _case("small_planes_odd_batch", 7, 32, 5, 4, 24, 3, 3, padding=1),
    # Planes narrower than a register tile, dilated and one column wide.
    _case("narrow_7x7", 3, 16, 7, 7, 40, 3, 3, padding=1),
    _case("narrow_dilated_uneven", 2, 12, 9, 6, 16, 3, 2, padding=(2, 1), dilation=(2, 1)),
    _case("one_column_batch1", 1, 40, 6, 1, 16, 3, 1, padding=(1, 0)),
    # Rows at most half a tile wide: tiles of several rows, across images (a last tile with
    # fewer rows), at stride 2 and in groups; AVX2's narrower tiles group fewer rows.
    _case("grouped_rows_stride2_groups", 5, 16, 9, 7, 32, 3, 3, stride=2, padding=1, groups=2),
    _case("grouped_rows_many_images", 9, 24, 5, 3, 16, 3, 3, padding=1),
    _case("grouped_rows_one_pixel", 7, 16, 5, 5, 24, 5, 5),
    # One channel block (16 under AVX-512, 8 under AVX2) at unit column stride with a kernel 3
    # or 5 wide: tiles holding a kernel row's weights in registers. Rows of several per tile,
    # rows wider than one tile, a 3x5 kernel, lanes past the channel count.
    _case("row_tile_3x3_grouped_rows", 5, 12, 6, 5, 10, 3, 3, padding=1),
    _case("row_tile_5x5_wide_rows_batch1", 1, 8, 7, 40, 16, 5, 5, padding=2),
    _case("row_tile_3x5_uneven_pad", 2, 7, 9, 11, 16, 3, 5, padding=(1, 2)),
    # Tiles at a plane's edge leave out the products with padding columns where the padding is
    # the kernel's half width: a row tile spanning both edges, a wide row of two-block tiles
    # whose edge tiles start or end in padding, and a reach other than half the kernel (1 of 5
    # columns) that keeps every product.
    _case("row_tile_5x5_both_edges_one_tile", 2, 6, 9, 17, 12, 5, 5, padding=2),
    _case("edge_tiles_3x3_wide_rows", 1, 10, 5, 37, 40, 3, 3, padding=1),
    _case("edge_reach_not_half_kernel", 1, 8, 8, 30, 32, 5, 5, padding=(2, 1)),
    # An odd count of channel blocks (40: three of 16, five of 8): the lone last block's tiles
    # hold a kernel row's weights, its edge tiles too.
    _case("lone_block_5x5_wide_rows", 2, 8, 9, 33, 40, 5, 5, padding=2),
    # First layers: one input channel, 25 taps; the weight gradient's tiles, 6 channels of a
    # vector's lanes.
    _case("first_layer_one_channel", 3, 1, 13, 11, 16, 5, 5, padding=2),
    _case("first_layer_six_outputs_batch1", 1, 1, 9, 28, 6, 5, 5, padding=2),
    # A strided layer's input gradient, phase by phase (each phase's pixels a correlation of
    # dy with every stride-th kernel row and column): odd planes, unequal strides with
    # asymmetric padding, stride 4, and a kernel narrower than the stride (phases no tap
    # reaches, zero).
    _case("strided_dx_odd_planes", 2, 16, 15, 17, 24, 3, 3, stride=2, padding=1),
    _case("strided_dx_2x3_5x5", 2, 12, 16, 20, 16, 5, 5, stride=(2, 3), padding=(2, 1)),
    _case("strided_dx_stride4_batch1", 1, 8, 21, 23, 16, 5, 5, stride=4, padding=2),
    _case("strided_dx_empty_phases", 1, 16, 10, 11, 40, 2, 2, stride=3),
    # Each image's phases from one padded copy of its dy, with an even width at column stride
    # 2 the two column phases of a row phase tile by tile, their pixels stored interleaved: a
    # last channel vector of 8 lanes; a 4x4 kernel in groups, with an odd height (row phases of
    # 7 and 6 rows); a 5x5 kernel over 12 channels, whose column phases take a row tile (3
    # taps) and a tap tile (2) of 25 pixels (two register transposes per channel). At 3
    # threads the images are too few, and the phases run one by one: the same bits.
    _case("strided_dx_column_pairs", 3, 24, 18, 40, 32, 3, 3, stride=2, padding=1),
    _case("strided_dx_pairs_groups_4x4", 4, 48, 13, 22, 32, 4, 4, stride=2, padding=1,
          groups=2),
    _case("strided_dx_pairs_5x5_wide", 2, 12, 9, 100, 16, 5, 5, stride=2, padding=2),
    # ... and on dy planes at most half a tile wide, whose phases take tiles of several rows:
    # 7-pixel rows, two to a tile (row phases of 7 and 6 rows, a last channel vector of 8
    # lanes); 4-pixel rows of one channel block, four to a tile across images (under AVX2 both
    # take one-row tiles).
    _case("strided_dx_rows_pairs", 5, 40, 13, 14, 32, 3, 3, stride=2, padding=1),
    _case("strided_dx_rows_across_images", 7, 16, 8, 8, 24, 3, 3, stride=2, padding=1),
    # Column strides with tiles of their own (2 and 4: the broadcasts' displacements fixed when
    # compiled) on rows wider than a tile, beside stride 3 above (read from the tile).
    _case("stride4_11x11_wide_rows", 2, 3, 35, 71, 20, 11, 11, stride=4, padding=2),
    _case("stride2_wide_rows_batch1", 1, 16, 13, 41, 32, 3, 3, stride=2, padding=1),
    # ResNet's stride-2 3x3 layers on small planes: rows of 4 or 3 pixels, several to a tile,
    # grouped by the kernel rows they read inside the input (the first and last output rows
    # skip a row of padding); windows that start and end (odd input) or only start (even) in
    # a column of padding, whose products the tiles leave out; channel blocks enough that the
    # weight gradient splits them between threads, with a last block of part of a vector.
    _case("strided_small_planes_odd", 3, 24, 7, 7, 136, 3, 3, stride=2, padding=1),
    _case("strided_small_planes_even", 2, 16, 8, 6, 72, 3, 3, stride=2, padding=1),
    # A strided 1x1 layer (ResNet's downsampling): each pass is the unit-stride layer's on the
    # pixels it reads (the direct tiles where the BLAS's kernels are narrower), the input
    # gradient zero between and past them (9 and 11 at strides 2 and 3).
    _case("strided_1x1_uneven", 3, 40, 9, 11, 48, 1, 1, stride=(2, 3)),
]
IDS = [c["id"] for c in CASES]

# The variants with a direct path: AVX2 and AVX-512 (every x86-64 CPU of the last decade has
# AVX2; elsewhere this list is empty, and pytest skips the tests parametrized over it).
VECTOR_ISAS = [i for i in fc.info()["cpu_isas"] if i != "baseline"]

DTYPES = [np.float32, np.float64]
DTYPE_IDS = ["f32", "f64"]


@pytest.mark.usefixtures("cpu_isa")
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_forward(case, dtype):
    x, w, b, _ = make_data(case, dtype, stable_seed("direct fwd", case["id"]))
    out = F.conv2d(x, w, b, **conv_args(case))
    assert out.dtype == dtype and not np.isnan(out).any()
    assert_close(out, conv2d_ref(x, w, b, **conv_args(case)),
                 rtol_for(dtype, reduction_lengths(case)[0]), what=f"forward {case['id']}")


@pytest.mark.usefixtures("cpu_isa")
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_backward(case, dtype):
    x, w, _, dout = make_data(case, dtype, stable_seed("direct bwd", case["id"]), bias=False)
    got = F.conv2d_backward(dout, x, w, **conv_args(case))
    ref = conv2d_backward_ref(dout, x, w, **conv_args(case))
    _, l_dx, l_dw = reduction_lengths(case)
    for name, g, r, n in zip(("grad_input", "grad_weight", "grad_bias"), got, ref,
                             (l_dx, l_dw, l_dw)):
        assert g.dtype == dtype and not np.isnan(g).any(), name
        assert_close(g, r, rtol_for(dtype, n), what=f"{name} {case['id']}")


@pytest.mark.usefixtures("cpu_isa")
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_backward_accumulates_into_given_gradients(case):
    x, w, _, dout = make_data(case, np.float32, stable_seed("direct acc", case["id"]), bias=False)
    rng = np.random.default_rng(stable_seed("direct acc start", case["id"]))
    start_w = rng.standard_normal(w.shape).astype(np.float32)
    start_b = rng.standard_normal(case["K"]).astype(np.float32)
    gw, gb = start_w.copy(), start_b.copy()
    F.conv2d_backward(dout, x, w, **conv_args(case), grad_weight=gw, grad_bias=gb)
    _, ref_w, ref_b = conv2d_backward_ref(dout, x, w, **conv_args(case))
    _, _, l_dw = reduction_lengths(case)
    assert_close(gw, start_w + ref_w, rtol_for(np.float32, l_dw), what="grad_weight += ")
    assert_close(gb, start_b + ref_b, rtol_for(np.float32, l_dw), what="grad_bias += ")


@pytest.mark.usefixtures("cpu_isa")
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_bias_gradient_with_the_weight_gradient_is_the_same_as_alone(case):
    """Where the weight gradient's items hold whole planes of dy, it sums the bias gradient on
    its way: the same sums in the same order as the bias gradient asked for alone."""
    x, w, _, dout = make_data(case, np.float32, stable_seed("direct bias", case["id"]),
                              bias=False)
    start = np.random.default_rng(7).standard_normal(case["K"]).astype(np.float32)
    alone, both = start.copy(), start.copy()
    F.conv2d_backward(dout, x, w, **conv_args(case), output_mask=(False, False, True),
                      grad_bias=alone)
    F.conv2d_backward(dout, x, w, **conv_args(case), output_mask=(False, True, True),
                      grad_bias=both)
    np.testing.assert_array_equal(both, alone)


@pytest.mark.usefixtures("cpu_isa")
def test_long_float32_sums_stay_at_pytorchs_accuracy():
    """One float32 running sum over all of C * R * S taps lost a bit every few hundred: 512
    channels of 3x3 (ResNet's last stage) came 2.4-3.3e-6 of the largest output off the
    float64 sum in the forward and input gradient, ten times PyTorch's float32 (2-4e-7). The
    tiles sum chunks of about 128 taps and add those: within 1e-6."""
    rng = np.random.default_rng(32)
    x = rng.standard_normal((2, 512, 7, 7)).astype(np.float32)
    w = (rng.standard_normal((64, 512, 3, 3)) / 68).astype(np.float32)
    assert_close(F.conv2d(x, w, padding=1), conv2d_ref(x, w, None, 1, 1, 1, 1), 1e-6,
                 what="forward, 4608 taps")
    x = rng.standard_normal((2, 64, 7, 7)).astype(np.float32)
    w = (rng.standard_normal((512, 64, 3, 3)) / 68).astype(np.float32)
    dy = rng.standard_normal((2, 512, 7, 7)).astype(np.float32)
    dx, _, _ = F.conv2d_backward(dy, x, w, padding=1, output_mask=(True, False, False))
    assert_close(dx, conv2d_backward_ref(dy, x, w, 1, 1, 1, 1)[0], 1e-6,
                 what="input gradient, 512 output channels")


# The cases with a pass on a fixed-order algorithm under the variant: a whole-window layer
# (linear) and one input channel (im2col) run both on BLAS.
FIXED_ORDER_CASES = [pytest.param(v, c, id=f"{v}-{c['id']}") for v in VECTOR_ISAS for c in CASES
                     if fixed_order_passes(c, v)]


@pytest.mark.parametrize("variant,case", FIXED_ORDER_CASES)
def test_forward_and_input_grad_do_not_depend_on_thread_count(variant, case):
    """Each output element is summed in a fixed order, whoever computes it (the GEMM path's
    blocks, and so its bits, follow the thread count)."""
    check_same_bits_for_thread_counts(case, variant, stable_seed("direct threads", case["id"]))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_vector_variants_agree_bit_for_bit(case):
    """The AVX2 and AVX-512 tiles differ only in how many channels one instruction carries:
    every output element is the same sum of fused multiply-adds, so they give the same bits.
    Each vector variant this machine has is compared with the first, which is also run twice
    (with a single vector variant, that rerun is the check). A pass that AVX-512 gives to the
    Winograd path (test_conv_winograd.py) is compared only with itself."""
    vector = VECTOR_ISAS or ["baseline"]
    x, w, b, dout = make_data(case, np.float32, stable_seed("direct isa", case["id"]))
    results, algorithms = [], []
    for name in [vector[0]] + vector:
        with cpu_variant(name):
            results.append((F.conv2d(x, w, b, **conv_args(case)),)
                           + F.conv2d_backward(dout, x, w, **conv_args(case)))
            algo = F.conv2d_algorithm(x, w, **conv_args(case))
            algorithms.append((algo["forward"], algo["grad_input"], algo["grad_weight"], None))
    for name, got, algo in zip(vector, results[1:], algorithms[1:]):
        for what, a, e, mine, first in zip(("out", "dx", "dw", "db"), got, results[0], algo,
                                           algorithms[0]):
            if mine == first:
                np.testing.assert_array_equal(a, e, err_msg=f"{what}: {name} vs {vector[0]}")


# Which algorithm each pass takes (fastconv.functional.conv2d_algorithm): (id, input shape,
# weight shape, stride, padding, float32 under AVX2/AVX-512 as (forward, grad_input,
# grad_weight), and where AVX-512 differs (the Winograd path, test_conv_winograd.py), its
# triple, then where AVX2 differs (Winograd's forward and input gradient along rows), its.
# Elsewhere (float64, the baseline variant) "direct" and "direct_rows" (the forward along
# output rows, test_conv_rows.py) become the next rule's pick: "batched_gemm" for planes of at
# most 16 pixels and a batch of 2 or more, else "im2col_gemm" ("gemm" for a 1x1 layer read in
# place).
ALGORITHMS = [
    ("fashion_conv2", (64, 16, 14, 14), (32, 16, 5, 5), 1, 2, ("direct", "direct", "direct")),
    # A first layer: 25 taps per output channel, rows of 28 pixels; its weight gradient sums
    # over the pixels in the tiles.
    ("fashion_conv1", (64, 1, 28, 28), (16, 1, 5, 5), 1, 2,
     ("direct_rows", "im2col_gemm", "direct")),
    # ... not with 9 taps, nor with 4 output channels.
    ("first_3x3", (64, 1, 28, 28), (32, 1, 3, 3), 1, 1,
     ("direct_rows", "im2col_gemm", "im2col_gemm")),
    # 400 taps: the direct tiles' epilogue is repaid.
    ("inception_5x5", (32, 16, 28, 28), (32, 16, 5, 5), 1, 2, ("direct", "direct", "direct")),
    ("bottleneck_1x1", (2, 256, 8, 8), (64, 256, 1, 1), 1, 0, ("gemm", "gemm", "gemm")),
    # ResNet's last stage: the weight gradient's GEMM (512 x 4608) is at the BLAS's peak.
    ("resnet_l4", (64, 512, 4, 4), (512, 512, 3, 3), 1, 1,
     ("direct", "direct", "batched_gemm"), ("winograd", "winograd", "winograd"),
     ("winograd", "winograd", "batched_gemm")),
    # ... at batch 16 under AVX-512 one Winograd item (64 blocks) does not repay its 17 MB of
    # transformed weights: the direct tiles, skipping the padding's products.
    ("resnet_l4_batch16", (16, 512, 4, 4), (512, 512, 3, 3), 1, 1,
     ("direct", "direct", "batched_gemm"), ("direct", "direct", "winograd"),
     ("winograd", "winograd", "batched_gemm")),
    # ... at batch 4 (64 output pixels) and 1, packing its 9.4 MB of weights outweighs the tiles.
    ("resnet_l4_batch4", (4, 512, 4, 4), (512, 512, 3, 3), 1, 1,
     ("batched_gemm", "batched_gemm", "batched_gemm")),
    ("resnet_l4_batch1", (1, 512, 4, 4), (512, 512, 3, 3), 1, 1,
     ("im2col_gemm", "im2col_gemm", "im2col_gemm")),
    # Strided: the input gradient phase by phase; the weight gradient's per-thread sums
    # (256 x 1152 floats) stay within L2.
    ("resnet_3x3_s2", (2, 128, 28, 28), (256, 128, 3, 3), 2, 1, ("direct", "direct", "direct")),
    # ResNet's downsampling 1x1 at stride 2: each pass is the unit-stride layer's on the
    # pixels it reads (one GEMM per image in place, or the direct tiles).
    ("resnet_downsample_1x1", (16, 256, 14, 14), (512, 256, 1, 1), 2, 0,
     ("gemm", "gemm", "gemm")),
    # AlexNet's first layer: its input gradient's 3 channels would fill too little of a vector.
    ("alexnet_conv1", (2, 3, 64, 64), (64, 3, 11, 11), 4, 2,
     ("direct", "im2col_gemm", "direct")),
    # ResNet-18's third stage: sums of 2.25 MiB per thread still pay; at 384 -> 256 (3.4 MiB)
    # the GEMM's time is lower.
    ("resnet18_l3", (64, 256, 7, 7), (256, 256, 3, 3), 1, 1, ("direct", "direct", "direct"),
     ("winograd", "winograd", "winograd"), ("winograd", "winograd", "winograd")),
    # ResNet's 3x3 layers at stride 1: Winograd under AVX-512, along rows at 56x56 and
    # gathered across rows and images at 14x14 and 4x4; under AVX2 too (rows of 8 blocks, or
    # 8 gathered), its weight gradient for 64-256 channels.
    ("resnet_3x3_56", (16, 64, 56, 56), (64, 64, 3, 3), 1, 1, ("direct", "direct", "direct"),
     ("winograd", "winograd", "winograd"), ("winograd", "winograd", "winograd")),
    ("resnet18_l2", (64, 128, 14, 14), (128, 128, 3, 3), 1, 1, ("direct", "direct", "direct"),
     ("winograd", "winograd", "winograd"), ("winograd", "winograd", "winograd")),
    ("alexnet_conv4", (16, 384, 13, 13), (256, 384, 3, 3), 1, 1,
     ("direct", "direct", "im2col_gemm"), ("winograd", "winograd", "winograd"),
     ("winograd", "winograd", "im2col_gemm")),
    # LeNet's C5: a window over the whole 5x5 input, a linear layer on the flattened images.
    ("lenet_c5", (64, 16, 5, 5), (120, 16, 5, 5), 1, 0, ("linear", "linear", "linear")),
    # ... with padding, one output pixel is still a convolution; dy is far smaller than x.
    ("one_pixel_padded", (64, 16, 3, 3), (120, 16, 5, 5), 1, 1,
     ("direct", "batched_gemm", "batched_gemm")),
    # Four output channels fill too little of a vector; as the input gradient's 4 x 3x3 taps
    # into 16 channels they do. Rows of 10 pixels are too short for the forward along rows
    # (two AVX2 vectors, a third of them recomputed).
    ("thin_output", (2, 16, 12, 10), (4, 16, 3, 3), 1, 1,
     ("im2col_gemm", "direct", "im2col_gemm")),
]


# Under AVX-512, when the BLAS runs narrower kernels (OpenBLAS on a core without AVX-512, as
# OPENBLAS_CORETYPE=Haswell makes it), a 1x1 layer takes the direct tiles, and so does the
# weight gradient of a layer of 9 to 15 taps, or of up to 3 Mi weights (512 x 512 x 3x3).
BLAS_AVX512 = fc.info()["blas_core"].lower() in ("skylakex", "cooperlake", "sapphirerapids",
                                                  "unknown")
NARROW_BLAS = {"bottleneck_1x1": ("direct", "direct", "direct"),
               "first_3x3": ("direct_rows", "im2col_gemm", "direct"),
               "resnet_l4_batch4": ("batched_gemm", "batched_gemm", "direct"),
               "resnet_l4_batch1": ("im2col_gemm", "im2col_gemm", "direct"),
               "resnet_downsample_1x1": ("direct", "direct", "direct")}


def _without_direct(case):
    _, xs, ws = case[:3]
    small = xs[0] >= 2 and _out_pixels(case) <= 16
    one_by_one = ws[2:] == (1, 1) and case[3] == 1 and case[4] == 0
    return "batched_gemm" if small else "gemm" if one_by_one else "im2col_gemm"


def _out_pixels(case):
    _, xs, ws, stride, pad = case[:5]
    return (((xs[2] + 2 * pad - ws[2]) // stride + 1) * ((xs[3] + 2 * pad - ws[3]) // stride + 1))


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("variant", fc.info()["cpu_isas"])
@pytest.mark.parametrize("case", ALGORITHMS, ids=[c[0] for c in ALGORITHMS])
def test_algorithm_pinned_per_shape(case, variant, dtype):
    name, xs, ws, stride, pad, want = case[:6]
    x, w = np.zeros(xs, dtype), np.zeros(ws, dtype)
    with cpu_variant(variant):
        got = F.conv2d_algorithm(x, w, stride=stride, padding=pad)
    vector = dtype == np.float32 and variant != "baseline"
    if vector and variant == "avx512" and len(case) > 6:
        want = case[6]
    elif vector and variant == "avx2" and len(case) > 7:
        want = case[7]
    if vector and variant == "avx512" and not BLAS_AVX512:
        want = NARROW_BLAS.get(name, want)
    expected = {p: a if vector or not a.startswith("direct") else _without_direct(case)
                for p, a in zip(("forward", "grad_input", "grad_weight"), want)}
    assert got == expected


def test_algorithm_takes_conv2d_arguments_and_refuses_bad_ones():
    x, w = np.zeros((2, 16, 9, 9), np.float32), np.zeros((16, 8, 3, 3), np.float32)
    assert set(F.conv2d_algorithm(x, w, padding="same", groups=2)) == {
        "forward", "grad_input", "grad_weight"}
    with pytest.raises(ValueError, match="conv2d_algorithm"):
        F.conv2d_algorithm(x, w)  # 16 channels against a weight for 8
    with pytest.raises(TypeError, match="conv2d_algorithm"):
        F.conv2d_algorithm(x, w.astype(np.float64), groups=2)


# conv_transpose2d runs conv2d's kernels on its equivalent conv2d: its forward is that conv2d's
# input gradient (direct at stride 1), its input gradient that conv2d's forward.
# (N, C_in, H, W, C_out, R, S, stride, padding, output_padding, groups, dilation)
TRANSPOSED = [
    ("decoder_3x3", 2, 32, 9, 11, 16, 3, 3, 1, 1, 0, 1, 1),
    ("wide_5x5_batch1", 1, 12, 7, 30, 24, 5, 5, 1, 2, 0, 1, 1),
    ("stride2_groups2", 2, 16, 6, 7, 32, 4, 4, 2, 1, 1, 2, 1),
    ("dilated", 2, 16, 8, 9, 10, 3, 3, 1, 0, 0, 1, 2),
]


@pytest.mark.usefixtures("cpu_isa")
@pytest.mark.parametrize("case", TRANSPOSED, ids=[c[0] for c in TRANSPOSED])
def test_conv_transpose2d(case):
    name, N, C, H, W, K, R, S, stride, padding, out_pad, groups, dil = case
    rng = np.random.default_rng(stable_seed("direct transposed", name))
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    w = rng.standard_normal((C, K // groups, R, S)).astype(np.float32)
    b = rng.standard_normal(K).astype(np.float32)
    args = dict(stride=stride, padding=padding, output_padding=out_pad, groups=groups,
                dilation=dil)
    y = F.conv_transpose2d(x, w, b, **args)
    want = conv_transpose2d_ref(x.astype(np.float64), w.astype(np.float64),
                                b.astype(np.float64), **args)
    assert_close(y, want, rtol_for(np.float32, C // groups * R * S), what="forward")
    dout = rng.standard_normal(y.shape).astype(np.float32)
    got = F.conv_transpose2d_backward(dout, x, w, **args)
    ref = conv_transpose2d_backward_ref(dout.astype(np.float64), x.astype(np.float64),
                                        w.astype(np.float64), **args)
    for what, g, r, n in zip(("grad_input", "grad_weight", "grad_bias"), got, ref,
                             (K // groups * R * S, N * H * W, N * y.shape[2] * y.shape[3])):
        assert not np.isnan(g).any(), what
        assert_close(g, r, rtol_for(np.float32, n), what=what)
