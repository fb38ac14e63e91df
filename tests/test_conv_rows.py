"""conv2d's forward along output rows (csrc/cpu/conv_rows.cpp: float32 under AVX2 or AVX-512,
unit stride, rows at least one vector wide, few taps or few output channels) against the
float64 reference of fastconv/_opinfo/conv.py, under every instruction-set variant this machine
has (the baseline variant and float64 run the same shapes through the other algorithms).

The shapes reach the path's corners: a row of exactly one vector, rows of several vector
chunks whose last vector overlaps the one before, channel blocks of unequal widths, batch 1
(output rows split between threads), dilation, asymmetric and 'same' padding, padding beyond
the kernel's reach (buffer rows of zeros only) and groups. test_cases_take_the_rows_path
checks that each case does run it.
"""

import numpy as np
import pytest

import fastconv as fc
import fastconv.functional as F

from fastconv._opinfo.conv import conv2d_ref
from _util import (_case, assert_close, conv_args, cpu_variant, make_data, num_threads,
                   reduction_lengths, rtol_for, stable_seed)

# (case, the vector variants that take the rows path for it)
BOTH = ("avx2", "avx512")
CASES = [
    (_case("fashion_conv1", 3, 1, 28, 28, 16, 5, 5, padding=2), BOTH),
    (_case("lenet_c1_batch1", 1, 1, 28, 28, 6, 5, 5, padding=2), BOTH),
    (_case("rgb_wide_rows_uneven_blocks", 2, 3, 13, 70, 20, 3, 3, padding=1), BOTH),
    (_case("dilated_asymmetric_pad", 2, 2, 15, 33, 12, 3, 2, padding=(2, 1),
           dilation=(2, 3)), BOTH),
    (_case("same_even_kernel_one_vector", 2, 3, 9, 16, 7, 4, 2, padding="same"), BOTH),
    (_case("groups2", 2, 4, 10, 30, 8, 3, 3, padding=1, groups=2), BOTH),
    (_case("pad_beyond_kernel", 2, 1, 5, 26, 16, 3, 3, padding=3), BOTH),
    (_case("one_vector_rows_40_channels", 2, 1, 6, 16, 40, 3, 3, padding=1), BOTH),
    # 288 taps: only a vector of 16 channels is left half empty by 8 (AVX2's is full).
    (_case("thin_output_many_taps", 2, 32, 9, 24, 8, 3, 3, padding=1), ("avx512",)),
    # Rows of 12: two AVX2 vectors, a quarter recomputed; shorter than one AVX-512 vector.
    (_case("rows_of_12", 2, 16, 12, 12, 4, 3, 3, padding=1), ("avx2",)),
    # Rows of 10 (a third recomputed) and 16 pixels in all at stride 2: not taken.
    (_case("rows_of_10", 2, 16, 12, 10, 4, 3, 3, padding=1), ()),
    (_case("stride_2", 2, 1, 33, 33, 16, 3, 3, stride=2, padding=1), ()),
]
IDS = [c["id"] for c, _ in CASES]

VECTOR_ISAS = [i for i in fc.info()["cpu_isas"] if i != "baseline"]


@pytest.mark.parametrize("variant", VECTOR_ISAS)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_cases_take_the_rows_path(case, variant):
    case, takes = case
    x, w, _, _ = make_data(case, np.float32, 0, bias=False)
    with cpu_variant(variant):
        got = F.conv2d_algorithm(x, w, **conv_args(case))["forward"]
    assert (got == "direct_rows") == (variant in takes), got
    with cpu_variant(variant):
        assert F.conv2d_algorithm(x.astype(np.float64), w.astype(np.float64),
                                  **conv_args(case))["forward"] != "direct_rows"


@pytest.mark.usefixtures("cpu_isa")
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_forward(case, dtype):
    case, _ = case
    x, w, b, _ = make_data(case, dtype, stable_seed("rows fwd", case["id"]))
    for bias in (b, None):
        out = F.conv2d(x, w, bias, **conv_args(case))
        assert out.dtype == dtype and not np.isnan(out).any()
        assert_close(out, conv2d_ref(x, w, bias, **conv_args(case)),
                     rtol_for(dtype, reduction_lengths(case)[0]),
                     what=f"forward {case['id']} bias={bias is not None}")


# (case, variant) wherever the rows path runs on this machine.
TAKEN = [(c, v) for c, takes in CASES for v in VECTOR_ISAS if v in takes]


@pytest.mark.parametrize("case,variant", TAKEN, ids=[f"{c['id']}-{v}" for c, v in TAKEN])
def test_forward_does_not_depend_on_thread_count(case, variant):
    """Each output element is one chain of multiply-adds from the bias in tap order, whichever
    thread and whichever (possibly overlapping) vector computes it."""
    x, w, b, _ = make_data(case, np.float32, stable_seed("rows threads", case["id"]))
    runs = []
    for n in (1, 2, 3):
        with num_threads(n), cpu_variant(variant):
            runs.append(F.conv2d(x, w, b, **conv_args(case)))
    for n, y in zip((2, 3), runs[1:]):
        np.testing.assert_array_equal(y, runs[0], err_msg=f"{n} threads vs 1")


@pytest.mark.parametrize("case", [c for c in CASES if c[1] == BOTH],
                         ids=[c["id"] for c, t in CASES if t == BOTH])
def test_vector_variants_agree_bit_for_bit(case):
    """AVX2 and AVX-512 differ only in how many pixels one instruction carries (and so in
    which columns an overlapping last vector recomputes): the same chains, the same bits."""
    case, _ = case
    vector = VECTOR_ISAS or ["baseline"]
    x, w, b, _ = make_data(case, np.float32, stable_seed("rows isa", case["id"]))
    results = []
    for name in [vector[0]] + vector:
        with cpu_variant(name):
            results.append(F.conv2d(x, w, b, **conv_args(case)))
    for name, got in zip(vector, results[1:]):
        np.testing.assert_array_equal(got, results[0], err_msg=f"{name} vs {vector[0]}")
