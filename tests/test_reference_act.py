"""Checks of the activation references themselves (fastconv/_opinfo/act.py).

Backward references against central finite differences of a random projection
L = sum(op(x) * G), with inputs kept away from kinks (relu, leaky_relu and elu at 0, softplus
at its threshold); forward references against direct textbook formulas.
"""

import math

import numpy as np
import pytest

from fastconv._opinfo import act as R

EPS = 1e-6


def _away_from_zero(rng, shape, margin=0.1):
    x = rng.standard_normal(shape)
    return np.where(np.abs(x) < margin, np.sign(x + 1e-300) * margin + x, x)


def _fd_check(f, grad, x, G, rng):
    """<grad, V> against (L(x + eps V) - L(x - eps V)) / (2 eps) for a random direction V."""
    V = rng.standard_normal(x.shape)
    L = lambda xx: float(np.sum(f(xx) * G))  # noqa: E731
    fd = (L(x + EPS * V) - L(x - EPS * V)) / (2 * EPS)
    an = float(np.sum(grad * V))
    scale = max(abs(an), float(np.sum(np.abs(grad * V))) / math.sqrt(max(grad.size, 1)), 1.0)
    assert abs(fd - an) <= 1e-7 * scale, (fd, an)


ELEMENTWISE = [
    ("relu", R.relu_ref, R.relu_backward_ref, {}),
    ("leaky_relu", R.leaky_relu_ref, R.leaky_relu_backward_ref, {"negative_slope": 0.2}),
    ("leaky_relu_negative", R.leaky_relu_ref, R.leaky_relu_backward_ref,
     {"negative_slope": -1.5}),
    ("elu", R.elu_ref, R.elu_backward_ref, {"alpha": 1.0}),
    ("elu_alpha", R.elu_ref, R.elu_backward_ref, {"alpha": 0.3}),
    ("sigmoid", R.sigmoid_ref, R.sigmoid_backward_ref, {}),
    ("tanh", R.tanh_ref, R.tanh_backward_ref, {}),
    ("softplus", R.softplus_ref, R.softplus_backward_ref, {}),
    ("softplus_beta_threshold", R.softplus_ref, R.softplus_backward_ref,
     {"beta": 2.5, "threshold": 1.0}),
    ("softplus_negative_beta", R.softplus_ref, R.softplus_backward_ref,
     {"beta": -0.7, "threshold": 0.5}),
]


@pytest.mark.parametrize("name,f,df,kw", ELEMENTWISE, ids=[e[0] for e in ELEMENTWISE])
@pytest.mark.parametrize("shape", [(), (7,), (3, 4, 5)], ids=["0d", "1d", "3d"])
def test_reference_act_backward_matches_finite_differences(name, f, df, kw, shape):
    rng = np.random.default_rng(11)
    x = 3 * _away_from_zero(rng, shape)
    if "threshold" in kw:
        # keep beta * x at least 0.05 away from the threshold switch
        z = x * kw.get("beta", 1.0)
        x = np.where(np.abs(z - kw["threshold"]) < 0.05, x + 0.2 / kw.get("beta", 1.0), x)
    G = rng.standard_normal(shape)
    _fd_check(lambda xx: f(xx, **kw), df(G, x, **kw), x, G, rng)


SOFTMAX_CASES = [((7,), 0), ((4, 6), 1), ((4, 6), 0), ((2, 3, 5, 4), 2), ((2, 3, 5, 4), -4),
                 ((), 0)]


@pytest.mark.parametrize("shape,dim", SOFTMAX_CASES, ids=[f"{s}-{d}" for s, d in SOFTMAX_CASES])
@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
def test_reference_softmax_backward_matches_finite_differences(shape, dim, log):
    rng = np.random.default_rng(12)
    x = 2 * rng.standard_normal(shape)
    G = rng.standard_normal(shape)
    f = R.log_softmax_ref if log else R.softmax_ref
    df = R.log_softmax_backward_ref if log else R.softmax_backward_ref
    y = f(x, dim)
    _fd_check(lambda xx: f(xx, dim), df(G, y, dim), x, G, rng)


def test_reference_act_forward_formulas():
    x = np.linspace(-6, 6, 49)
    assert np.allclose(R.sigmoid_ref(x), 1 / (1 + np.exp(-x)), rtol=1e-14, atol=0)
    assert np.allclose(R.softplus_ref(x), np.log(1 + np.exp(x)), rtol=1e-13, atol=0)
    assert np.allclose(R.softplus_ref(x, beta=2.0, threshold=5.0),
                       np.where(2 * x > 5, x, np.log(1 + np.exp(2 * x)) / 2), rtol=1e-13)
    assert np.allclose(R.elu_ref(x, 0.5), np.where(x > 0, x, 0.5 * (np.exp(x) - 1)), rtol=1e-13)
    assert np.array_equal(R.relu_ref(x), np.maximum(x, 0))
    assert np.array_equal(R.leaky_relu_ref(x, 0.1), np.where(x > 0, x, 0.1 * x))
    xs = np.random.default_rng(0).standard_normal((3, 4, 5))
    for dim in range(3):
        s = R.softmax_ref(xs, dim)
        assert np.allclose(s.sum(axis=dim), 1.0, rtol=1e-14)
        assert np.allclose(s, np.exp(xs) / np.exp(xs).sum(axis=dim, keepdims=True), rtol=1e-14)
        assert np.allclose(R.log_softmax_ref(xs, dim), np.log(s), rtol=1e-13, atol=1e-15)


def test_reference_act_extremes():
    """No overflow at large |x| and PyTorch's values at +-inf."""
    with np.errstate(over="raise", invalid="raise"):
        assert R.sigmoid_ref(np.array([-800.0]))[0] == 0.0
        assert R.sigmoid_ref(np.array([800.0]))[0] == 1.0
        assert R.softplus_ref(np.array([-800.0]))[0] == 0.0
        assert R.softplus_ref(np.array([800.0]), threshold=1e9)[0] == 800.0
    inf = np.inf
    assert list(R.elu_ref(np.array([-inf, inf]), 2.0)) == [-2.0, inf]
    assert list(R.softmax_ref(np.array([-inf, 0.0, -inf]), 0)) == [0.0, 1.0, 0.0]
    assert np.isnan(R.softmax_ref(np.array([-inf, -inf]), 0)).all()
    assert np.isnan(R.log_softmax_ref(np.array([inf, 1.0]), 0)).all()
    assert R.relu_backward_ref(np.array([5.0]), np.array([0.0]))[0] == 0.0
    assert R.leaky_relu_backward_ref(np.array([5.0]), np.array([0.0]), 0.1)[0] == 0.5
    assert R.elu_backward_ref(np.array([5.0]), np.array([0.0]), 0.3)[0] == 1.5
