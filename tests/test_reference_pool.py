"""Checks of the pooling reference itself (fastconv/_opinfo/pool.py): hand-worked values and
backward against central finite differences."""

import numpy as np
import pytest

from fastconv._opinfo import pool as R
from _util import assert_close


def _distinct(rng, shape, offset=0.0):
    """Values at least 0.01 apart (no ties, so an eps-step never moves an argmax)."""
    n = int(np.prod(shape))
    return (rng.permutation(n).reshape(shape) * 0.01 - 0.005 * n + offset).astype(np.float64)


def _fd_check(fwd, bwd, x, rng, eps=1e-6, rtol=1e-7):
    """Directional derivative of L = sum(fwd(x) * G) along V vs <bwd(G, x), V>."""
    G = rng.standard_normal(fwd(x).shape)
    dx = bwd(G, x)
    assert dx.shape == x.shape
    V = rng.standard_normal(x.shape)
    fd = (np.sum(fwd(x + eps * V) * G) - np.sum(fwd(x - eps * V) * G)) / (2 * eps)
    an = float(np.sum(dx * V))
    scale = max(abs(an), float(np.sum(np.abs(dx * V))) / np.sqrt(dx.size), 1.0)
    assert abs(fd - an) <= rtol * scale, (fd, an)


# (id, shape, kernel, stride, padding, dilation, ceil_mode)
WINDOW_CASES = [
    ("k2s2", (2, 3, 8, 8), 2, None, 0, 1, False),
    ("ceil_7x7", (2, 2, 7, 7), 2, 2, 0, 1, True),
    ("k3s2p1_ceil_8x9", (1, 2, 8, 9), 3, 2, 1, 1, True),
    ("nonsquare_2x3_stride3", (2, 2, 9, 10), (2, 3), 3, (1, 1), 1, False),
    ("overlap_k3s1", (2, 2, 6, 7), 3, 1, 1, 1, False),
    ("dilated", (1, 2, 11, 12), 3, (1, 2), 1, (2, 3), True),
    ("3d_input", (3, 7, 6), 3, 2, 1, 1, False),
]
IDS = [c[0] for c in WINDOW_CASES]


@pytest.mark.parametrize("op", ["max", "min"])
@pytest.mark.parametrize("case", WINDOW_CASES, ids=IDS)
def test_reference_pool_extreme_backward_fd(case, op):
    _, shape, k, s, p, d, ceil = case
    rng = np.random.default_rng(1)
    fwd_ref, bwd_ref = ((R.max_pool2d_ref, R.max_pool2d_backward_ref) if op == "max"
                        else (R.min_pool2d_ref, R.min_pool2d_backward_ref))
    _fd_check(lambda x: fwd_ref(x, k, s, p, d, ceil)[0],
              lambda g, x: bwd_ref(g, x, k, s, p, d, ceil), _distinct(rng, shape), rng)


@pytest.mark.parametrize("divisor_override", [None, 5])
@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("case", [c for c in WINDOW_CASES if c[5] == 1],
                         ids=[c[0] for c in WINDOW_CASES if c[5] == 1])
def test_reference_pool_avg_backward_fd(case, count_include_pad, divisor_override):
    _, shape, k, s, p, _, ceil = case
    rng = np.random.default_rng(2)
    args = (k, s, p, ceil, count_include_pad, divisor_override)
    _fd_check(lambda x: R.avg_pool2d_ref(x, *args),
              lambda g, x: R.avg_pool2d_backward_ref(g, x, *args),
              rng.standard_normal(shape), rng)


@pytest.mark.parametrize("norm_type,positive", [(2, False), (1, True), (3, True), (1.5, True)])
@pytest.mark.parametrize("case", [c for c in WINDOW_CASES if c[5] == 1],
                         ids=[c[0] for c in WINDOW_CASES if c[5] == 1])
def test_reference_pool_lp_backward_fd(case, norm_type, positive):
    _, shape, k, s, _, _, ceil = case
    rng = np.random.default_rng(3)
    x = rng.uniform(0.5, 1.5, shape) if positive else rng.standard_normal(shape)
    _fd_check(lambda x: R.lp_pool2d_ref(x, norm_type, k, s, ceil),
              lambda g, x: R.lp_pool2d_backward_ref(g, x, norm_type, k, s, ceil), x, rng)


@pytest.mark.parametrize("shape,output_size", [((2, 3, 10, 5), (3, 7)), ((1, 2, 7, 7), 1),
                                               ((2, 9, 6), (None, 4))])
def test_reference_pool_adaptive_backward_fd(shape, output_size):
    rng = np.random.default_rng(4)
    _fd_check(lambda x: R.adaptive_avg_pool2d_ref(x, output_size),
              lambda g, x: R.adaptive_avg_pool2d_backward_ref(g, x, output_size),
              rng.standard_normal(shape), rng)
    _fd_check(lambda x: R.adaptive_max_pool2d_ref(x, output_size)[0],
              lambda g, x: R.adaptive_max_pool2d_backward_ref(g, x, output_size),
              _distinct(rng, shape), rng)


@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
def test_reference_pool_mixed_backward_fd(alpha):
    rng = np.random.default_rng(5)
    _fd_check(lambda x: R.mixed_pool2d_ref(x, 3, 2, 1, alpha),
              lambda g, x: R.mixed_pool2d_backward_ref(g, x, 3, 2, 1, alpha),
              _distinct(rng, (2, 3, 9, 8)), rng)


def test_reference_pool_output_sizes():
    # (n, k, pad, stride, dil, ceil) -> PyTorch's output size, worked by hand
    table = [((7, 2, 0, 2, 1, False), 3), ((7, 2, 0, 2, 1, True), 4),
             ((8, 3, 1, 2, 1, False), 4), ((8, 3, 1, 2, 1, True), 5),
             ((9, 3, 1, 2, 1, True), 5),
             ((5, 2, 1, 2, 1, True), 3),     # a 4th window would start in the right padding
             ((10, 2, 0, 3, 1, False), 3), ((10, 2, 0, 3, 1, True), 4),
             ((11, 3, 1, 1, 2, False), 9), ((3, 5, 0, 1, 1, False), 0)]
    for args, want in table:
        assert R.pool_output_size(*args) == want, args


def test_reference_pool_adaptive_windows():
    assert R.adaptive_windows(10, 3) == [[0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9]]
    assert R.adaptive_windows(5, 7) == [[0], [0, 1], [1, 2], [2], [2, 3], [3, 4], [4]]
    assert R.adaptive_windows(4, 1) == [[0, 1, 2, 3]]


def test_reference_pool_avg_divisors_by_hand():
    x = np.ones((1, 1, 6, 6))
    # k3 s2 p1 ceil: windows start at -1, 1, 3, 5; the last covers rows 5, 6, 7 of which 5 is
    # in the input and 6 in the padding: 2 cells count with padding, 1 without.
    inc = R.avg_pool2d_ref(x, 3, 2, 1, True, True)
    exc = R.avg_pool2d_ref(x, 3, 2, 1, True, False)
    assert inc.shape == (1, 1, 4, 4)
    assert inc[0, 0, 0, 0] == 4 / 9 and inc[0, 0, 1, 1] == 1.0 and inc[0, 0, 3, 3] == 1 / 4
    assert inc[0, 0, 0, 3] == 2 / 6
    assert np.all(exc == 1.0)
    assert np.all(R.avg_pool2d_ref(x, 2, 2, 0, False, True, 3) == 4 / 3)


def test_reference_pool_extreme_rules_by_hand():
    nan, inf = np.nan, np.inf
    x = np.array([[[[1.0, 5.0, 5.0], [nan, 2.0, nan], [5.0, -inf, 0.0]]]])
    out, idx = R.max_pool2d_ref(x, 3)
    assert np.isnan(out[0, 0, 0, 0]) and idx[0, 0, 0, 0] == 5      # the last NaN wins
    out, idx = R.max_pool2d_ref(x[:, :, :1], (1, 3))
    assert out[0, 0, 0, 0] == 5 and idx[0, 0, 0, 0] == 1           # the first maximum wins
    out, idx = R.min_pool2d_ref(x[:, :, 2:], (1, 3))
    assert out[0, 0, 0, 0] == -inf and idx[0, 0, 0, 0] == 1
    neg = -np.ones((1, 1, 2, 2))
    out, idx = R.max_pool2d_ref(neg, 2, 1, 1)                       # padding never wins
    assert np.all(out == -1) and idx[0, 0, 0, 0] == 0 and idx[0, 0, 2, 2] == 3
    out, idx = R.max_pool2d_ref(np.full((1, 1, 2, 2), -inf), 2)     # all -inf: first pixel
    assert out[0, 0, 0, 0] == -inf and idx[0, 0, 0, 0] == 0


def test_reference_pool_lp_matches_norm():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 2, 6, 6))
    got = R.lp_pool2d_ref(x, 2, 3)
    want = np.sqrt((x.reshape(2, 2, 2, 3, 2, 3) ** 2).sum(axis=(3, 5)))
    assert_close(got, want, 1e-14)


def test_reference_pool_global_average():
    x = np.random.default_rng(7).standard_normal((2, 3, 5, 7))
    assert_close(R.adaptive_avg_pool2d_ref(x, 1)[..., 0, 0], x.mean(axis=(2, 3)), 1e-14)
    assert_close(R.avg_pool2d_ref(x, (5, 7))[..., 0, 0], x.mean(axis=(2, 3)), 1e-14)
