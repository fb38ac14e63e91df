"""fastconv.functional activations and softmax vs PyTorch (skipped when torch is absent).

Forward against torch.nn.functional, backward against torch.autograd.grad of the same call,
including PyTorch's NaN/Inf results and kink conventions.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as TF  # noqa: E402

import fastconv.functional as F  # noqa: E402
from fastconv._opinfo.act import ACTS  # noqa: E402

from _util import assert_close, rtol_for  # noqa: E402

DTYPES = [np.float32, np.float64]
DTYPE_IDS = ["f32", "f64"]

# From the activations' specs: sample id -> (fastconv forward, fastconv backward, torch
# forward, arguments).
CASES = {sample.id: (spec.functional(), spec.functional_backward(), spec.torch_op(torch),
                     sample.kwargs)
         for spec in ACTS for sample in spec.torch_samples}
NAMES = list(CASES)

SHAPES = [(), (1,), (9,), (1, 3, 5, 7), (2, 3, 5, 7), (2, 64, 33, 17)]
SHAPE_IDS = ["0d", "1", "9", "batch1", "2x3x5x7", "large"]


def _t(a):
    return torch.from_numpy(np.array(a, copy=True))


def torch_fwd_bwd(tf, x, g, kw):
    xt = _t(x).requires_grad_(True)
    yt = tf(xt, **kw)
    (dxt,) = torch.autograd.grad(yt, xt, _t(g))
    return yt.detach().numpy(), dxt.numpy()


def assert_matches(actual, expected, rtol, what=""):
    """assert_close on the finite entries; NaN and +-inf must sit at the same places."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, (what, actual.shape, expected.shape)
    assert np.array_equal(np.isnan(actual), np.isnan(expected)), (
        f"{what}: NaN at {np.argwhere(np.isnan(actual) != np.isnan(expected))[:5].tolist()}, "
        f"actual {actual.ravel()[:8]}, expected {expected.ravel()[:8]}")
    for sign in (1, -1):
        assert np.array_equal(actual == sign * np.inf, expected == sign * np.inf), (
            f"{what}: {sign:+d}inf mismatch")
    fin = np.isfinite(expected)
    assert_close(actual[fin], expected[fin], rtol, what=what)


def _data(shape, dtype, seed):
    rng = np.random.default_rng(seed)
    x = np.asarray(3 * rng.standard_normal(shape))
    if x.size:
        x.reshape(-1)[rng.integers(0, x.size, size=max(1, x.size // 10))] = 0.0
    return x.astype(dtype), np.asarray(rng.standard_normal(shape)).astype(dtype)


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("name", NAMES)
def test_act_torch_elementwise(name, dtype, shape):
    f, df, tf, kw = CASES[name]
    x, g = _data(shape, dtype, 100 + NAMES.index(name))
    # torch in float64 on the same values (exact kink and threshold decisions on both sides)
    ty, tdx = torch_fwd_bwd(tf, x.astype(np.float64), g.astype(np.float64), kw)
    y, dx = f(x, **kw), df(g, x, **kw)
    assert y.dtype == dtype and dx.dtype == dtype and y.shape == shape and dx.shape == shape
    assert_matches(y, ty, rtol_for(dtype), f"{name} forward")
    assert_matches(dx, tdx, rtol_for(dtype), f"{name} backward")


@pytest.mark.parametrize("name", NAMES)
def test_act_torch_elementwise_float32_native(name):
    """Against torch computing in float32 too: same formula, rounding within 2 ulps-ish."""
    f, df, tf, kw = CASES[name]
    x, g = _data((4, 33, 17), np.float32, 200 + NAMES.index(name))
    ty, tdx = torch_fwd_bwd(tf, x, g, kw)
    assert_matches(f(x, **kw), ty, 2e-6, f"{name} forward")
    assert_matches(df(g, x, **kw), tdx, 2e-6, f"{name} backward")


SPECIAL = [np.nan, np.inf, -np.inf, 0.0, -0.0, 100.0, -100.0, 1e4, -1e4, 20.0, 20.5, 19.5,
           -20.0, 1.0, -1.0, 1e-30, -1e-30, 88.0, -88.0, 89.0, -89.0, 710.0, -710.0]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("name", NAMES)
def test_act_torch_nonfinite_and_extremes(name, dtype):
    """NaN, +-inf, signed zeros, |x| = 100 ... 1e4 and values at the softplus threshold,
    repeated so that they land in PyTorch's vectorised loop, with finite and NaN grads."""
    f, df, tf, kw = CASES[name]
    with np.errstate(over="ignore"):
        x = np.tile(np.array(SPECIAL, dtype=dtype), 4)
    rng = np.random.default_rng(300)
    g = rng.standard_normal(x.shape).astype(dtype)
    g[-len(SPECIAL):] = np.nan  # NaN gradients: relu's backward still gives 0 where x <= 0
    ty, tdx = torch_fwd_bwd(tf, x, g, kw)
    # At +-inf, PyTorch's float32 result depends on the CPU it runs on (its AVX-512 gelu gives
    # NaN at +inf, its AVX2 and float64 paths +inf, the formula's value): there the reference
    # is PyTorch in float64, the formula evaluated without a vectorised approximation.
    ty64, tdx64 = torch_fwd_bwd(tf, x.astype(np.float64), g.astype(np.float64), kw)
    inf = np.isinf(x)
    ty[inf], tdx[inf] = ty64[inf], tdx64[inf]
    assert_matches(f(x, **kw), ty, 2e-6, f"{name} forward")
    assert_matches(df(g, x, **kw), tdx, 2e-6, f"{name} backward")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("op, alpha", [(op, a) for op in ("elu", "celu") for a in (np.inf, -np.inf, np.nan)]
                         + [("elu", 1e300)])
def test_act_torch_non_finite_alpha(op, alpha, dtype):
    """An infinite or NaN alpha: PyTorch takes x >= 0 (signed zeros included) on the positive
    side, so elu(0) is 0 where alpha * expm1(0) would be NaN. (torch's celu refuses an alpha
    float32 cannot hold, also in float64.)"""
    with np.errstate(over="ignore"):
        x = np.tile(np.array(SPECIAL, dtype=dtype), 4)
    g = np.random.default_rng(301).standard_normal(x.shape).astype(dtype)
    g[-len(SPECIAL):] = np.nan  # PyTorch's scalar tail differs from its vector loop at NaN
    if dtype == np.float32 and alpha == 1e300:
        alpha = np.float32(np.inf)  # torch refuses an alpha float32 cannot hold; ours rounds
    ty, tdx = torch_fwd_bwd(getattr(TF, op), x, g, {"alpha": alpha})
    assert_matches(getattr(F, op)(x, alpha), ty, 2e-6, f"{op} forward")
    assert_matches(getattr(F, f"{op}_backward")(g, x, alpha), tdx, 2e-6, f"{op} backward")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("name", ["sigmoid", "tanh"])
def test_act_torch_backward_from_output(name, dtype):
    f, df, tf, kw = CASES[name]
    x, g = _data((5, 40), dtype, 400)
    ty, tdx = torch_fwd_bwd(tf, x, g, kw)
    assert_matches(df(g, output=f(x)), tdx, 2e-6, f"{name} backward from output")
    tback = getattr(torch.ops.aten, f"{name}_backward")(_t(g), _t(ty)).numpy()
    assert_matches(df(g, output=ty), tback, 1e-6 if dtype == np.float32 else 1e-15)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("name", ["relu", "leaky_relu_0.2", "elu_2"])
def test_act_torch_inplace(name, dtype):
    f, _, tf, kw = CASES[name]
    x, _ = _data((3, 70, 400), dtype, 500)
    xt = _t(x)
    tf(xt, inplace=True, **kw)
    out = f(x, inplace=True, **kw)
    assert out is x
    assert_matches(x, xt.numpy(), 2e-6 if dtype == np.float32 else 1e-15, f"{name} inplace")
    # through a strided view, as torch writes through one
    y, _ = _data((5, 8, 6), dtype, 501)
    yt = _t(y)
    tf(yt[:, ::3].transpose(1, 2), inplace=True, **kw)
    assert f(y[:, ::3].transpose(0, 2, 1), inplace=True, **kw).base is not None
    assert_matches(y, yt.numpy(), 2e-6 if dtype == np.float32 else 1e-15, f"{name} view")


@pytest.mark.parametrize("name", ["relu", "elu_0.3", "sigmoid", "softplus_2_5"])
def test_act_torch_noncontiguous(name):
    f, df, tf, kw = CASES[name]
    x, g = _data((6, 10, 9), np.float64, 600)
    xs, gs = x[:, ::2, 1:].transpose(2, 0, 1), g[::-1, 1::2, :8].transpose(2, 0, 1)
    ty, tdx = torch_fwd_bwd(tf, xs, gs, kw)
    assert_matches(f(xs, **kw), ty, 1e-10, f"{name} forward")
    assert_matches(df(gs, xs, **kw), tdx, 1e-10, f"{name} backward")


# ---------------------------------------------------------------------------
# softmax / log_softmax
# ---------------------------------------------------------------------------

SOFTMAX = {
    "softmax": (F.softmax, F.softmax_backward, TF.softmax),
    "log_softmax": (F.log_softmax, F.log_softmax_backward, TF.log_softmax),
}
SOFTMAX_CASES = ([((2, 3, 5, 7), d) for d in range(-4, 4)]
                 + [((), 0), ((), -1), ((1,), 0), ((11,), 0), ((3, 5, 130), 1), ((3, 5, 130), 2),
                    ((64, 100, 16), 1), ((256, 1000), 1), ((2, 1, 3), 1)])
SOFTMAX_IDS = [f"{'x'.join(map(str, s)) or '0d'}-dim{d}" for s, d in SOFTMAX_CASES]


def torch_softmax(tf, x, g, dim, **kw):
    xt = _t(x).requires_grad_(True)
    yt = tf(xt, dim, **kw)
    (dxt,) = torch.autograd.grad(yt, xt, _t(g))
    return yt.detach().numpy(), dxt.numpy()


@pytest.mark.parametrize("shape,dim", SOFTMAX_CASES, ids=SOFTMAX_IDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("name", sorted(SOFTMAX))
def test_act_torch_softmax(name, dtype, shape, dim):
    f, df, tf = SOFTMAX[name]
    rng = np.random.default_rng(700)
    x = np.asarray(4 * rng.standard_normal(shape)).astype(dtype)
    g = np.asarray(rng.standard_normal(shape)).astype(dtype)
    D = shape[dim] if shape else 1
    ty, tdx = torch_softmax(tf, x.astype(np.float64), g.astype(np.float64), dim)
    y = f(x, dim)
    assert y.dtype == dtype and y.shape == shape
    assert_close(y, ty, rtol_for(dtype, D), what=f"{name} forward")
    # backward from fastconv's own output, against torch's backward from its output
    dx = df(g, y, dim)
    assert_close(dx, tdx, rtol_for(dtype, D), what=f"{name} backward")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("name", sorted(SOFTMAX))
def test_act_torch_softmax_infinities(name, dtype):
    f, df, tf = SOFTMAX[name]
    inf, nan = np.inf, np.nan
    rows = np.array([[-inf, 1.0, 2.0, -inf, 0.5], [-inf] * 5, [-inf, -inf, 3.0, -inf, -inf],
                     [inf, 1.0, 2.0, 3.0, 0.0], [nan, 1.0, 2.0, 3.0, 0.0],
                     [inf, -inf, 0.0, 1.0, 2.0], [0.5, 1.0, 2.0, 3.0, -1.0]], dtype=dtype)
    g = np.random.default_rng(800).standard_normal(rows.shape).astype(dtype)
    for dim, x, gg in [(1, rows, g), (0, np.ascontiguousarray(rows.T), np.ascontiguousarray(g.T)),
                       (1, np.ascontiguousarray(rows.T[None]), np.ascontiguousarray(g.T[None]))]:
        ty, tdx = torch_softmax(tf, x, gg, dim)
        y = f(x, dim)
        assert_matches(y, ty, 2e-6, f"{name} forward dim {dim}")
        assert_matches(df(gg, y, dim), tdx, 2e-6, f"{name} backward dim {dim}")


@pytest.mark.parametrize("name", sorted(SOFTMAX))
def test_act_torch_softmax_float32_large_logits(name):
    f, df, tf = SOFTMAX[name]
    rng = np.random.default_rng(900)
    x = (rng.choice([-1e4, 1e4], size=(16, 50)) + rng.standard_normal((16, 50))).astype(np.float32)
    x[3] = 1e4 + np.arange(50, dtype=np.float32)
    x[4] = -1e4
    g = rng.standard_normal(x.shape).astype(np.float32)
    for dim, xx, gg in [(1, x, g), (0, np.ascontiguousarray(x.T), np.ascontiguousarray(g.T))]:
        ty, tdx = torch_softmax(tf, xx, gg, dim)
        y = f(xx, dim)
        assert np.isfinite(y).all()
        assert_close(y, ty, 2e-6, what=f"{name} forward")
        assert_close(df(gg, y, dim), tdx, 2e-6, what=f"{name} backward")


@pytest.mark.parametrize("name", sorted(SOFTMAX))
def test_act_torch_softmax_dtype_and_noncontiguous(name):
    f, _, tf = SOFTMAX[name]
    x = np.random.default_rng(1000).standard_normal((5, 6, 7)).astype(np.float32)
    t = tf(_t(x), 1, dtype=torch.float64).numpy()
    y = f(x, 1, dtype=np.float64)
    assert y.dtype == np.float64
    assert_close(y, t, 1e-12)
    assert np.array_equal(f(x, 1, dtype=torch.float64), y)  # torch's dtype objects too
    assert f(x.astype(np.float64), 1, dtype=torch.float32).dtype == np.float32
    with pytest.raises(TypeError, match="dtype must be float32 or float64"):
        f(x, 1, dtype=torch.int64)
    xs = x.astype(np.float64).transpose(2, 0, 1)[:, ::2]
    assert_close(f(xs, 0), tf(_t(xs), 0).numpy(), 1e-12)


LAYERS = [("SiLU", ()), ("Mish", ()), ("Hardswish", ()), ("Hardsigmoid", ()),
          ("Hardtanh", (-0.5, 2.0)), ("ReLU6", ()), ("SELU", ()), ("CELU", (0.7,))]
LAYER_CASES = ([pytest.param(n, a, i, id=f"{n}-{'inplace' if i else 'copy'}")
                for n, a in LAYERS for i in (False, True)]
               + [pytest.param("GELU", ("tanh",), False, id="GELU_tanh")])


@pytest.mark.parametrize("name, args, inplace", LAYER_CASES)
def test_act_torch_layers(name, args, inplace):
    """The layers against torch.nn's: forward, and backward from the layer's saved input (a
    copy of it in place, where the forward overwrites it)."""
    from fastconv import nn

    kw = {"inplace": True} if inplace else {}
    ours, theirs = getattr(nn, name)(*args, **kw), getattr(torch.nn, name)(*args)
    x, g = _data((2, 3, 9, 11), np.float64, 600)
    ty, tdx = torch_fwd_bwd(lambda t: theirs(t), x, g, {})
    given = x.copy()
    y = ours(given)
    assert (y is given) == inplace
    assert_matches(y, ty, 1e-15, f"{name} forward")
    assert_matches(ours.backward(g), tdx, 1e-15, f"{name} backward")
    assert repr(ours).split("(")[0] == repr(theirs).split("(")[0]
