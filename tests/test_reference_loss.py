"""Checks of the loss references themselves (fastconv/_opinfo/loss.py): forward against naive
scalar loops, backward against central finite differences."""

import math

import numpy as np
import pytest

from fastconv._opinfo.loss import (cross_entropy_ref, cross_entropy_backward_ref, mse_loss_ref,
                                   mse_loss_backward_ref, multi_margin_loss_ref,
                                   multi_margin_loss_backward_ref)
from _util import assert_close

REDUCTIONS = ["none", "mean", "sum"]


def _fd_check(forward, backward, x, loss_shape, reduction, rng):
    """<backward(G), V> == d/dt sum(forward(x + tV) * G) at t = 0, by central differences."""
    G = rng.standard_normal(loss_shape) if reduction == "none" else np.asarray(rng.standard_normal())
    V = rng.standard_normal(x.shape)
    eps = 1e-6

    def L(xx):
        return float(np.sum(forward(xx) * G))

    fd = (L(x + eps * V) - L(x - eps * V)) / (2 * eps)
    grad = backward(G, x)
    assert grad.shape == x.shape
    an = float(np.sum(grad * V))
    scale = max(abs(an), float(np.sum(np.abs(grad * V))) / np.sqrt(grad.size), 1e-3)
    assert abs(fd - an) <= 1e-6 * scale, (fd, an)


def _naive_ce(x, t, w, ignore_index, reduction, eps):
    """cross_entropy of (N, C) rows by scalar loops over torch's documented formula."""
    N, C = x.shape
    per, wsum = [], 0.0
    for n in range(N):
        if t[n] == ignore_index:
            per.append(0.0)
            continue
        lse = math.log(sum(math.exp(v) for v in x[n]))
        wc = [1.0] * C if w is None else list(w)
        nll = wc[t[n]] * (lse - x[n, t[n]])
        smooth = sum(wc[c] * (lse - x[n, c]) for c in range(C))
        per.append((1 - eps) * nll + eps / C * smooth)
        wsum += wc[t[n]]
    if reduction == "none":
        return np.array(per)
    return sum(per) / wsum if reduction == "mean" else sum(per)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("eps", [0.0, 0.1, 1.0])
@pytest.mark.parametrize("weighted", [False, True])
def test_reference_cross_entropy_matches_loops(reduction, eps, weighted):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, 5)) * 3
    t = np.array([0, 4, -100, 2, 2, 1])
    w = rng.uniform(0.2, 2.0, 5) if weighted else None
    got = cross_entropy_ref(x, t, w, -100, reduction, eps)
    assert_close(got, _naive_ce(x, t, w, -100, reduction, eps), 1e-13)


def test_reference_cross_entropy_spatial_is_rows():
    """(N, C, H, W) equals the (N*H*W, C) rows with the class dimension moved last."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 4, 5))
    t = rng.integers(0, 3, (2, 4, 5))
    per = cross_entropy_ref(x, t, reduction="none")
    rows = cross_entropy_ref(np.moveaxis(x, 1, -1).reshape(-1, 3), t.reshape(-1), reduction="none")
    assert per.shape == (2, 4, 5)
    assert_close(per.reshape(-1), rows, 1e-14)


def test_reference_cross_entropy_probabilities_of_one_hot_equal_indices():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 6))
    t = np.array([5, 0, 3, 3])
    w = rng.uniform(0.5, 1.5, 6)
    onehot = np.eye(6)[t]
    for eps in (0.0, 0.3):
        assert_close(cross_entropy_ref(x, onehot, w, reduction="none", label_smoothing=eps),
                     cross_entropy_ref(x, t, w, reduction="none", label_smoothing=eps), 1e-13)


CE_FD = [
    # (shape, weighted, ignore some, label_smoothing, prob targets)
    ((5, 4), False, False, 0.0, False),
    ((5, 4), True, True, 0.0, False),
    ((5, 4), True, True, 0.1, False),
    ((5, 4), True, False, 1.0, False),
    ((3, 4, 2, 3), True, True, 0.2, False),
    ((7,), False, False, 0.1, False),
    ((1, 1), False, False, 0.0, False),
    ((4, 2), True, False, 0.3, False),
    ((4, 5), True, False, 0.0, True),
    ((2, 3, 3, 2), True, False, 0.25, True),
]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", CE_FD, ids=[f"ce{i}" for i in range(len(CE_FD))])
def test_reference_cross_entropy_backward_finite_differences(case, reduction):
    shape, weighted, ignore, eps, prob = case
    rng = np.random.default_rng(10)
    x = rng.standard_normal(shape) * 2
    C = shape[1] if len(shape) > 1 else shape[0]
    loss_shape = () if len(shape) == 1 else (shape[0],) + shape[2:]
    w = rng.uniform(0.2, 2.0, C) if weighted else None
    if prob:
        t = rng.uniform(0, 1, shape)
        t /= t.sum(axis=1 if len(shape) > 1 else 0, keepdims=True)
    else:
        t = rng.integers(0, C, loss_shape)
        if ignore:
            t.reshape(-1)[::3] = -100
    _fd_check(lambda xx: cross_entropy_ref(xx, t, w, -100, reduction, eps),
              lambda G, xx: cross_entropy_backward_ref(G, xx, t, w, -100, reduction, eps),
              x, loss_shape, reduction, rng)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(7,), (3, 4, 5)])
def test_reference_mse_backward_finite_differences(shape, reduction):
    rng = np.random.default_rng(11)
    x, y = rng.standard_normal(shape), rng.standard_normal(shape)
    _fd_check(lambda xx: mse_loss_ref(xx, y, reduction),
              lambda G, xx: mse_loss_backward_ref(G, xx, y, reduction),
              x, shape, reduction, rng)


def _margin_inputs(rng, N, C, margin):
    """Rows whose hinge arguments margin - x_y + x_i all stay >= 0.05 away from the kink."""
    while True:
        x = rng.standard_normal((N, C))
        t = rng.integers(0, C, N)
        z = margin - x[np.arange(N), t][:, None] + x
        z[np.arange(N), t] = 1.0
        if np.all(np.abs(z) > 0.05) and np.any(z < 0) and np.any(z > 0):
            return x, t


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("p,margin,weighted", [(1, 1.0, False), (2, 1.0, True), (1, 0.5, True),
                                               (2, 0.5, False)])
def test_reference_multi_margin_backward_finite_differences(p, margin, weighted, reduction):
    rng = np.random.default_rng(12)
    x, t = _margin_inputs(rng, 5, 4, margin)
    w = rng.uniform(0.2, 2.0, 4) if weighted else None
    _fd_check(lambda xx: multi_margin_loss_ref(xx, t, p, margin, w, reduction),
              lambda G, xx: multi_margin_loss_backward_ref(G, xx, t, p, margin, w, reduction),
              x, (5,), reduction, rng)


def test_reference_multi_margin_known_value():
    # torch docs example: x = [0.1, 0.2, 0.4, 0.8], y = 3 -> (0.3 + 0.4 + 0.6) / 4 = 0.325
    x = np.array([[0.1, 0.2, 0.4, 0.8]])
    assert abs(float(multi_margin_loss_ref(x, np.array([3]))) - 0.325) < 1e-15
    assert abs(float(multi_margin_loss_ref(x, np.array([3]), p=2)) - (0.09 + 0.16 + 0.36) / 4) < 1e-15


def test_reference_cross_entropy_all_ignored_mean_is_nan():
    x = np.zeros((3, 4))
    t = np.full(3, -100)
    assert np.isnan(cross_entropy_ref(x, t))
    assert float(cross_entropy_ref(x, t, reduction="sum")) == 0.0
    assert np.all(cross_entropy_backward_ref(1.0, x, t) == 0)
