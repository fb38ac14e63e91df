"""fastconv.functional activations and softmax vs the NumPy reference (fastconv/_opinfo/act.py).

Expected values always come from the float64 reference, never from fastconv itself (except in
the finite-difference check, which ties each backward to its own forward).
"""

import numpy as np
import pytest

import fastconv
import fastconv.functional as F
from fastconv import nn
from fastconv._loader import _C

from fastconv._opinfo import act as R
from _util import assert_close, rtol_for

# Every test here runs once per CPU variant of the kernels (avx512, avx2, baseline; _isa.py).
pytestmark = pytest.mark.usefixtures("cpu_isa")

DTYPES = [np.float32, np.float64]
DTYPE_IDS = ["f32", "f64"]

# 0-d, 1-d, odd sizes, batch 1, empty, and one shape above the OpenMP thresholds.
SHAPES = [(), (1,), (7,), (3, 5), (1, 3, 5, 7), (2, 3, 5, 7), (0,), (2, 0, 3), (2, 64, 33, 17)]
SHAPE_IDS = ["0d", "1", "7", "3x5", "batch1", "2x3x5x7", "empty", "empty_mid", "large"]

# The one table of the elementwise activations, from their specs (R.ACTS), shared with
# test_cuda_act.py. Sample id: (forward, backward, reference forward, reference backward, op
# arguments); SPEC_OF gives each sample's spec.
SPEC_OF = {sample.id: spec for spec in R.ACTS for sample in spec.samples}
ELEMENTWISE = {sample.id: (spec.functional(), spec.functional_backward(), spec.reference,
                           spec.reference_backward, sample.kwargs)
               for spec in R.ACTS for sample in spec.samples}
OPS = sorted(ELEMENTWISE)
FROM_OUTPUT = [spec.name for spec in R.ACTS if spec.output_backward]


def assert_matches(actual, expected, dtype, what=""):
    """assert_close on the finite entries; NaN and +-inf must sit at the same places."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, (what, actual.shape, expected.shape)
    assert np.array_equal(np.isnan(actual), np.isnan(expected)), (
        f"{what}: NaN at {np.argwhere(np.isnan(actual) != np.isnan(expected))[:5].tolist()}")
    for sign in (1, -1):
        assert np.array_equal(actual == sign * np.inf, expected == sign * np.inf), (
            f"{what}: {sign:+d}inf mismatch: actual {actual[~np.isfinite(actual)][:5]} "
            f"expected {expected[~np.isfinite(expected)][:5]}")
    fin = np.isfinite(expected)
    assert_close(actual[fin], expected[fin], rtol_for(dtype), what=what)


def _data(shape, dtype, seed, scale=3.0):
    """Normal values times scale with a few exact zeros (the kinks), and a grad_output."""
    rng = np.random.default_rng(seed)
    x = np.asarray(scale * rng.standard_normal(shape))
    if x.size:
        x.reshape(-1)[rng.integers(0, x.size, size=max(1, x.size // 10))] = 0.0
    g = np.asarray(rng.standard_normal(shape))
    return x.astype(dtype), g.astype(dtype)


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("op", OPS)
def test_act_forward(op, dtype, shape):
    f, _, ref, _, kw = ELEMENTWISE[op]
    x, _ = _data(shape, dtype, 10 + OPS.index(op))
    x0 = x.copy()
    out = f(x, **kw)
    assert isinstance(out, np.ndarray) and out.dtype == dtype and out.shape == shape
    assert out is not x
    assert np.array_equal(x, x0), "input modified"
    assert_matches(out, ref(x, **kw), dtype, f"{op} forward")


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("op", OPS)
def test_act_backward(op, dtype, shape):
    _, df, _, dref, kw = ELEMENTWISE[op]
    x, g = _data(shape, dtype, 20 + OPS.index(op))
    dx = df(g, x, **kw)
    assert isinstance(dx, np.ndarray) and dx.dtype == dtype and dx.shape == shape
    assert_matches(dx, dref(g, x, **kw), dtype, f"{op} backward")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("op", FROM_OUTPUT)
def test_act_backward_from_output(op, dtype):
    f, df, _, dref, _ = ELEMENTWISE[op]
    x, g = _data((4, 33, 17), dtype, 30)
    y = f(x)
    assert_matches(df(g, output=y), dref(g, x), dtype, f"{op} backward from output")
    assert_matches(df(g, x, output=y), dref(g, x), dtype, f"{op} backward input and output")


def test_act_kinks():
    """Derivative conventions at 0: relu'(0) = 0, leaky_relu'(0) = slope, elu'(0) = alpha."""
    z, g = np.zeros(3), np.array([2.0, -1.0, 4.0])
    assert np.array_equal(F.relu_backward(g, z), np.zeros(3))
    assert np.array_equal(F.leaky_relu_backward(g, z, 0.25), 0.25 * g)
    assert np.array_equal(F.elu_backward(g, z, 0.5), 0.5 * g)
    assert np.array_equal(F.relu(np.array([-0.0, 0.0])), np.zeros(2))


@pytest.mark.parametrize("op", [spec.name for spec in R.ACTS])
def test_act_backward_matches_finite_differences(op):
    """The backward kernel against central differences of the forward kernel in float64, away
    from the kinks (|x| >= 0.1; each spec's first sample, whose kinks are at 0 or far out)."""
    f, df, _, _, kw = ELEMENTWISE[op]
    x, g = _data((3, 41), np.float64, 50)
    x = np.where(np.abs(x) < 0.1, 0.5, x)
    h = 1e-6
    numeric = g * (f(x + h, **kw) - f(x - h, **kw)) / (2 * h)
    assert_close(df(g, x, **kw), numeric, 1e-7, atol=1e-8, what=f"{op} finite differences")


def test_act_gelu_takes_torchs_two_forms_only():
    x = np.ones(3)
    for call in (lambda: F.gelu(x, approximate="exact"),
                 lambda: F.gelu_backward(x, x, approximate="exact"), lambda: nn.GELU("exact")):
        with pytest.raises(ValueError, match="approximate must be 'none' or 'tanh'.*'exact'"):
            call()
    assert repr(nn.GELU()) == "GELU(approximate='none')"
    assert repr(nn.GELU("tanh")) == "GELU(approximate='tanh')"


def test_act_scalar_arguments_are_checked_as_torch():
    x = np.ones(3)
    with pytest.raises(ValueError, match="min_val must not be greater than max_val"):
        F.hardtanh(x, 2.0, 1.0)
    for lo in (1.0, 2.0, np.nan):
        with pytest.raises(ValueError, match="max_val must be greater than min_val"):
            nn.Hardtanh(lo, 1.0)
    # as torch: a NaN bound gives NaN; the backward of a reversed range is zeros
    assert np.isnan(F.hardtanh(x, np.nan, 1.0)).all()
    assert not F.hardtanh_backward(x, x, 2.0, 1.0).any()
    for call in (lambda: F.celu(x, 0.0), lambda: F.celu_backward(x, x, 0.0),
                 lambda: nn.CELU(0.0)):
        with pytest.raises(ValueError, match="alpha must be nonzero"):
            call()
    assert repr(nn.ReLU6(inplace=True)) == "ReLU6(inplace=True)"
    assert repr(nn.Hardtanh()) == "Hardtanh(min_val=-1.0, max_val=1.0)"
    assert repr(nn.CELU(0.5)) == "CELU(alpha=0.5)" and repr(nn.SiLU()) == "SiLU()"
    assert repr(nn.Hardswish(inplace=True)) == "Hardswish()"  # as torch's


NONFINITE = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 100.0, -100.0, 1e4, -1e4, 1.5, -1.5,
                      30.0, -30.0, 1e-30, -1e-30, 88.0, -88.0, 710.0, -710.0])


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("op", OPS)
def test_act_nonfinite_and_extremes(op, dtype):
    """NaN, +-inf and large |x| (no overflow to inf/NaN where the result is finite)."""
    f, df, ref, dref, kw = ELEMENTWISE[op]
    with np.errstate(over="ignore"):
        x = np.tile(NONFINITE, 5).astype(dtype)
    g = np.random.default_rng(1).standard_normal(x.shape).astype(dtype)
    assert_matches(f(x, **kw), ref(x, **kw), dtype, f"{op} forward")
    assert_matches(df(g, x, **kw), dref(g, x, **kw), dtype, f"{op} backward")


@pytest.mark.parametrize("op", ["sigmoid", "softplus"])
def test_act_float32_stable_at_100(op):
    f, df, ref, dref, _ = ELEMENTWISE[op]
    x = np.array([-100.0, -50.0, 50.0, 100.0], dtype=np.float32)
    out = f(x)
    assert np.isfinite(out).all() and (out >= 0).all()
    np.testing.assert_allclose(out[2:], ref(x[2:]), rtol=1e-6)
    assert np.abs(out[:2] - ref(x[:2])).max() < 1e-20
    dx = df(np.ones_like(x), x)
    assert np.isfinite(dx).all()
    assert np.abs(dx - dref(np.ones_like(x), x)).max() < 1e-6


@pytest.mark.parametrize("op", OPS)
def test_act_noncontiguous(op):
    f, df, ref, dref, kw = ELEMENTWISE[op]
    x, g = _data((6, 10, 9), np.float64, 40)
    xs, gs = x[:, ::2, 1:].transpose(2, 0, 1), g[::-1, 1::2, :8].transpose(2, 0, 1)
    assert not xs.flags.c_contiguous
    assert_matches(f(xs, **kw), ref(xs, **kw), np.float64, f"{op} forward")
    assert_matches(df(gs, xs, **kw), dref(gs, xs, **kw), np.float64, f"{op} backward")


def _sweep32():
    """float32 values over the whole useful range of the exp-based ops, both signs."""
    mags = np.concatenate([np.linspace(0, 110, 400001), np.logspace(-38, 0, 2001)])
    return np.concatenate([mags, -mags]).astype(np.float32)


@pytest.mark.parametrize("op", ["sigmoid", "tanh", "elu", "elu_backward", "softplus_backward"])
def test_act_float32_elementwise_relative_accuracy(op):
    """float32 results within a few ulp of the float64 reference element by element (not just
    relative to the largest value); results below the smallest normal float32 may flush to 0,
    as PyTorch's 1 / (1 + exp(-x)) does. (sigmoid's and tanh's backward are left out: their
    formula, PyTorch's, cancels in 1 - y.)"""
    x = _sweep32()
    g = np.ones_like(x)
    calls = {
        "sigmoid": (lambda: F.sigmoid(x), lambda: R.sigmoid_ref(x)),
        "tanh": (lambda: F.tanh(x), lambda: R.tanh_ref(x)),
        "elu": (lambda: F.elu(x, 1.5), lambda: R.elu_ref(x, 1.5)),
        "elu_backward": (lambda: F.elu_backward(g, x, 1.5), lambda: R.elu_backward_ref(g, x, 1.5)),
        "softplus_backward": (lambda: F.softplus_backward(g, x, 1.0, 200.0),
                              lambda: R.softplus_backward_ref(g, x, 1.0, 200.0)),
    }
    got, want = calls[op]
    a, e = got().astype(np.float64), want()
    tiny = float(np.finfo(np.float32).tiny)
    bound = np.where(np.abs(e) < tiny, tiny, 8 * float(np.finfo(np.float32).eps) * np.abs(e))
    bad = np.abs(a - e) > bound
    assert not bad.any(), (
        f"{op}: {int(bad.sum())} elements off, e.g. x={x[bad][:3]}, got {a[bad][:3]}, "
        f"want {e[bad][:3]}")


def test_act_tanh_float32_same_bits_in_the_fma_variants(cpu_isa):
    """The AVX-512 and AVX2 variants' float32 tanh forwards are their own loops (intrinsics,
    four vectors interleaved) that run tanh_of's operations in tanh_of's order: their bits
    agree, on 2^22 random bit patterns (both signs, every exponent) and the specials, whole
    vectors and a masked tail. (Checked over every float32 once, and against GCC's
    vectorisation of tanh_of before.) On a machine with one of the two variants there is
    nothing to compare."""
    fma = [isa for isa in ("avx2", "avx512") if isa in fastconv.info()["cpu_isas"]]
    bits = np.random.default_rng(3).integers(0, 2**32, size=2**22 + 13, dtype=np.uint32)
    x = bits.view(np.float32)
    x[:9] = [0.0, -0.0, np.inf, -np.inf, np.nan, 9.0, -9.0, 1e-45, -3e38]
    results = []
    for isa in fma:
        _C.set_cpu_isa(isa)
        results.append(F.tanh(x))
    _C.set_cpu_isa(cpu_isa)
    for other in results[1:]:
        assert np.array_equal(results[0].view(np.uint32), other.view(np.uint32))


INPLACE = [spec.name for spec in R.ACTS if spec.inplace]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("op", INPLACE)
def test_act_inplace(op, dtype):
    f, _, ref, _, kw = ELEMENTWISE[op]
    x, _ = _data((3, 70, 400), dtype, 50)
    expected = ref(x, **kw)
    y = x.copy()
    out = f(y, inplace=True, **kw)
    assert out is y
    assert_matches(y, expected, dtype, f"{op} inplace")
    z = np.array(x[0, 0, 0])
    assert f(z, inplace=True, **kw) is z
    assert_matches(z, expected[0, 0, 0], dtype, f"{op} inplace 0-d")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("op", INPLACE)
def test_act_inplace_writes_through_a_strided_view(op, dtype):
    """As PyTorch: the view's elements are replaced, the ones between them untouched."""
    f, _, _, _, kw = ELEMENTWISE[op]
    x, _ = _data((4, 6, 5), dtype, 52)
    whole = x.copy()
    for view in (x[:, ::2], x.transpose(2, 0, 1), x[1:, :, 3]):
        before = view.copy()
        out = f(view, inplace=True, **kw)
        assert out is view
        assert np.array_equal(view, f(before, **kw))
    x2 = whole.copy()
    f(x2[:, ::2], inplace=True, **kw)
    assert np.array_equal(x2[:, 1::2], whole[:, 1::2])


@pytest.mark.parametrize("op", INPLACE)
def test_act_inplace_rejects(op):
    f, _, _, _, kw = ELEMENTWISE[op]
    x, _ = _data((4, 6), np.float64, 51)
    ro = x.copy()
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="input.*writable"):
        f(ro, inplace=True, **kw)
    with pytest.raises(ValueError, match="input.*writable"):
        f(ro[:, ::2], inplace=True, **kw)
    with pytest.raises(TypeError, match="input"):
        f(np.arange(4), inplace=True, **kw)
    with pytest.raises(TypeError, match="inplace"):
        f(x, inplace="yes", **kw)
    assert np.array_equal(ro, x)


# ---------------------------------------------------------------------------
# every output element is written: call the kernels with NaN-poisoned outputs
# ---------------------------------------------------------------------------

def _poisoned(shape, dtype):
    return np.full(shape, np.nan, dtype=dtype)


@pytest.mark.parametrize("shape", [(7,), (2, 64, 33, 17)], ids=["small", "large"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_act_kernels_write_every_element(dtype, shape):
    x, g = _data(shape, dtype, 60)
    y = _poisoned(shape, dtype)
    calls = []
    for spec in R.ACTS:
        kw = spec.kernel_kwargs
        args = tuple(kw.values())
        # an activation whose backward can start from y takes y (None: use x) last
        extra = (None,) if spec.output_backward else ()
        fwd, bwd = getattr(_C, spec.name + "_forward"), getattr(_C, spec.name + "_backward")
        calls += [(spec.name, lambda o, fwd=fwd, args=args: fwd(o, x, *args),
                   spec.reference(x, **kw)),
                  (spec.name + "_backward",
                   lambda o, bwd=bwd, args=args + extra: bwd(o, g, x, *args),
                   spec.reference_backward(g, x, **kw))]
    for name, call, expected in calls:
        out = _poisoned(shape, dtype)
        call(out)
        assert_close(out, expected, rtol_for(dtype), what=name)
    for dim in range(len(shape)):
        for log in (False, True):
            name = "log_softmax" if log else "softmax"
            out = _poisoned(shape, dtype)
            getattr(_C, f"{name}_forward")(out, x, dim)
            ref = (R.log_softmax_ref if log else R.softmax_ref)(x, dim)
            assert_close(out, ref, rtol_for(dtype), what=f"{name} dim {dim}")
            dout = _poisoned(shape, dtype)
            getattr(_C, f"{name}_backward")(dout, g, out, dim)
            dref = (R.log_softmax_backward_ref if log else R.softmax_backward_ref)(g, out, dim)
            assert_close(dout, dref, rtol_for(dtype, shape[dim]), what=f"{name}_backward {dim}")
    assert np.isnan(y).all()


# ---------------------------------------------------------------------------
# softmax / log_softmax
# ---------------------------------------------------------------------------

SOFTMAX = {
    "softmax": (F.softmax, F.softmax_backward, R.softmax_ref, R.softmax_backward_ref),
    "log_softmax": (F.log_softmax, F.log_softmax_backward, R.log_softmax_ref,
                    R.log_softmax_backward_ref),
}

# (shape, dim): every dim of (2, 3, 5, 7) with both signs, 0-d and 1-d, an inner extent that
# is not a multiple of the kernel's lane block, and shapes above the OpenMP threshold.
SOFTMAX_CASES = ([((2, 3, 5, 7), d) for d in range(-4, 4)]
                 + [((), 0), ((), -1), ((1,), 0), ((9,), -1), ((3, 5, 130), 1), ((1, 4, 1), 1),
                    ((4, 1), 1), ((64, 100, 16), 1), ((300, 257), 1), ((300, 257), 0),
                    ((2, 0, 3), 2), ((2, 0, 3), 1)])
SOFTMAX_IDS = [f"{'x'.join(map(str, s)) or '0d'}-dim{d}" for s, d in SOFTMAX_CASES]


@pytest.mark.parametrize("shape,dim", SOFTMAX_CASES, ids=SOFTMAX_IDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("name", sorted(SOFTMAX))
def test_act_softmax(name, dtype, shape, dim):
    f, df, ref, dref = SOFTMAX[name]
    rng = np.random.default_rng(70)
    x = np.asarray(4 * rng.standard_normal(shape)).astype(dtype)
    g = np.asarray(rng.standard_normal(shape)).astype(dtype)
    x0 = x.copy()
    y = f(x, dim)
    assert isinstance(y, np.ndarray) and y.dtype == dtype and y.shape == shape
    assert np.array_equal(x, x0)
    D = shape[dim] if shape else 1
    assert_close(y, ref(x, dim), rtol_for(dtype, D), what=f"{name} forward")
    dx = df(g, y, dim)
    assert dx.dtype == dtype and dx.shape == shape
    assert_close(dx, dref(g, y, dim), rtol_for(dtype, D), what=f"{name} backward")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("name", sorted(SOFTMAX))
def test_act_softmax_infinities(name, dtype):
    f, df, ref, dref = SOFTMAX[name]
    inf, nan = np.inf, np.nan
    rows = np.array([[-inf, 1.0, 2.0, -inf], [-inf, -inf, -inf, -inf], [-inf, -inf, 3.0, -inf],
                     [inf, 1.0, 2.0, 3.0], [nan, 1.0, 2.0, 3.0], [0.5, 1.0, 2.0, 3.0]],
                    dtype=dtype)
    for dim, x in [(1, rows), (0, np.ascontiguousarray(rows.T)), (1, rows.T[None])]:
        assert_matches(f(x, dim), ref(x, dim), dtype, f"{name} dim {dim}")
    y = f(rows[[0, 2, 5]], 1)
    g = np.random.default_rng(0).standard_normal(y.shape).astype(dtype)
    assert_matches(df(g, y, 1), dref(g, y, 1), dtype, f"{name} backward with -inf")


@pytest.mark.parametrize("name", sorted(SOFTMAX))
def test_act_softmax_float32_large_logits(name):
    f, df, ref, dref = SOFTMAX[name]
    rng = np.random.default_rng(80)
    x = (rng.choice([-1e4, 1e4], size=(8, 50)) + rng.standard_normal((8, 50))).astype(np.float32)
    x[3] = 1e4 + np.arange(50, dtype=np.float32)
    y = f(x, 1)
    assert np.isfinite(y).all()
    assert_close(y, ref(x, 1), 1e-5, what=f"{name} forward")
    g = rng.standard_normal(x.shape).astype(np.float32)
    assert_close(df(g, y, 1), dref(g, y, 1), 1e-5, what=f"{name} backward")


@pytest.mark.parametrize("D", [1, 5, 16, 17, 64, 79, 1000, 1024])
def test_act_softmax_float32_rows_elementwise(D):
    """Contiguous float32 rows (the AVX-512 variant has its own loops for them), element by
    element: within a few ulp of the float64 softmax of the same float32 logits, plus what
    rounding x - max to float32 costs (|x - max| * 2^-24 relative); outputs that underflow
    into the subnormals within the smallest normal float32. Row lengths around the 16-lane
    vectors and the 64-element max loop."""
    x = (20 * np.random.default_rng(D).standard_normal((7, D))).astype(np.float32)
    y = F.softmax(x, 1).astype(np.float64)
    z = x.astype(np.float64) - x.max(axis=1, keepdims=True)
    want = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    eps, tiny = float(np.finfo(np.float32).eps), float(np.finfo(np.float32).tiny)
    bound = np.maximum(tiny, (8 * eps + np.abs(z) * 2.0**-24) * want)
    bad = np.abs(y - want) > bound
    assert not bad.any(), f"{int(bad.sum())} off, e.g. got {y[bad][:3]}, want {want[bad][:3]}"
    # The backward from these float32 outputs: sum(g * y) in float lanes of at most 8
    # products each, the lanes in float64, then y * (g - sum): within a few roundings of
    # y * (|g| + |sum|).
    y32 = y.astype(np.float32)
    g = np.random.default_rng(D + 1).standard_normal(x.shape).astype(np.float32)
    dx = F.softmax_backward(g, y32, 1).astype(np.float64)
    yd, gd = y32.astype(np.float64), g.astype(np.float64)
    st = (gd * yd).sum(axis=1, keepdims=True)
    bound = np.maximum(tiny, 4 * eps * yd * (np.abs(gd) + np.abs(st)))
    bad = np.abs(dx - yd * (gd - st)) > bound
    assert not bad.any(), f"backward: {int(bad.sum())} off"


@pytest.mark.parametrize("name", sorted(SOFTMAX))
def test_act_softmax_dtype_and_noncontiguous(name):
    f, _, ref, _ = SOFTMAX[name]
    x32 = np.random.default_rng(90).standard_normal((5, 6, 7)).astype(np.float32)
    y = f(x32, 1, dtype=np.float64)
    assert y.dtype == np.float64
    assert_close(y, ref(x32, 1), 1e-12)
    assert f(x32, 1, dtype="float32").dtype == np.float32
    xt = x32.astype(np.float64).transpose(2, 0, 1)[:, ::2]
    assert_close(f(xt, -1), ref(xt, -1), 1e-12)
    assert_close(f(x32.astype(np.float64), dim=2, _stacklevel=5), ref(x32, 2), 1e-12)


def test_act_softmax_sums_to_one():
    x = np.random.default_rng(91).standard_normal((3, 40, 5)) * 10
    np.testing.assert_allclose(F.softmax(x, 1).sum(axis=1), 1.0, rtol=1e-14)
    np.testing.assert_allclose(np.exp(F.log_softmax(x, 1)).sum(axis=1), 1.0, rtol=1e-13)


# ---------------------------------------------------------------------------
# argument validation: every rejection names the argument
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("op", OPS)
def test_act_errors_elementwise(op):
    f, df, _, _, kw = ELEMENTWISE[op]
    x = np.ones((2, 3))
    with pytest.raises(TypeError, match="input"):
        f(np.arange(6).reshape(2, 3), **kw)
    with pytest.raises(TypeError, match="input"):
        f([1.0, 2.0], **kw)
    with pytest.raises(TypeError, match="input"):
        df(np.ones(3), np.arange(3), **kw)
    with pytest.raises(ValueError, match=r"grad_output.*\(2, 3\).*\(3, 2\)"):
        df(np.ones((3, 2)), x, **kw)
    with pytest.raises(ValueError, match=r"grad_output.*\(2, 3\).*\(6,\)"):
        df(np.ones(6), x, **kw)
    with pytest.raises(TypeError, match="grad_output"):
        df(np.ones((2, 3), np.float32), x, **kw)
    with pytest.raises(TypeError, match="grad_output"):
        df(None, x, **kw)


@pytest.mark.parametrize("op,arg", [("leaky_relu", "negative_slope"), ("elu", "alpha"),
                                    ("softplus", "beta"), ("softplus", "threshold")])
@pytest.mark.parametrize("bad", ["0.1", None, True, [0.1], 1j])
def test_act_errors_scalar_types(op, arg, bad):
    f, df, _, _, _ = ELEMENTWISE[op]
    x = np.ones(3)
    with pytest.raises(TypeError, match=arg):
        f(x, **{arg: bad})
    with pytest.raises(TypeError, match=arg):
        df(x, x, **{arg: bad})


def test_act_scalar_types_accepted():
    x = np.linspace(-2, 2, 9)
    assert np.array_equal(F.leaky_relu(x, 1), F.leaky_relu(x, 1.0))
    assert np.array_equal(F.elu(x, np.float32(0.5)), F.elu(x, 0.5))
    assert np.array_equal(F.softplus(x, np.int64(2), 10), F.softplus(x, 2.0, 10.0))


def test_act_errors_softplus_beta_zero():
    x = np.ones(3)
    with pytest.raises(ValueError, match="beta"):
        F.softplus(x, beta=0)
    with pytest.raises(ValueError, match="beta"):
        F.softplus_backward(x, x, beta=0.0)


@pytest.mark.parametrize("op", ["sigmoid", "tanh"])
def test_act_errors_backward_from_output(op):
    df = ELEMENTWISE[op][1]
    x = np.ones((2, 3))
    with pytest.raises(ValueError, match="input or output"):
        df(x)
    with pytest.raises(ValueError, match="output"):
        df(x, x, output=np.ones((3, 2)))
    with pytest.raises(TypeError, match="output"):
        df(x, x, output=np.ones((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"grad_output.*output"):
        df(np.ones(6), output=x)


@pytest.mark.parametrize("name", sorted(SOFTMAX))
def test_act_errors_softmax(name):
    f, df, _, _ = SOFTMAX[name]
    x = np.ones((2, 3, 4))
    for dim in (3, -4, 100):
        with pytest.raises(ValueError, match=r"dim.*\[-3, 2\].*\(2, 3, 4\)"):
            f(x, dim)
        with pytest.raises(ValueError, match="dim"):
            df(x, x, dim)
    for dim in (1, -2):
        with pytest.raises(ValueError, match="dim"):
            f(np.array(1.0), dim)
    with pytest.raises(TypeError, match="dim"):
        f(x)
    with pytest.raises(TypeError, match="dim"):
        f(x, None)
    with pytest.raises(TypeError, match="dim"):
        f(x, 1.0)
    with pytest.raises(TypeError, match="dim"):
        df(x, x, None)
    with pytest.raises(TypeError, match="dtype"):
        f(x, 1, dtype=np.int64)
    with pytest.raises(TypeError, match="dtype"):
        f(x, 1, dtype=np.float16)
    with pytest.raises(TypeError, match="dtype"):
        f(x, 1, dtype="not a dtype")
    with pytest.raises(TypeError, match="input"):
        f(np.ones((2, 3), np.int32), 1)
    with pytest.raises(ValueError, match=r"grad_output.*\(2, 3, 4\)"):
        df(np.ones((2, 4, 3)), x, 1)
    with pytest.raises(TypeError, match="grad_output"):
        df(np.ones((2, 3, 4), np.float32), x, 1)
    with pytest.raises(TypeError, match="output"):
        df(x, np.ones((2, 3, 4), np.int64), 1)


def test_act_results_independent_of_thread_count():
    import fastconv

    x, g = _data((2, 64, 33, 17), np.float32, 95)
    ops = [lambda: F.elu(x), lambda: F.tanh(x), lambda: F.leaky_relu_backward(g, x),
           lambda: F.softmax(x, 1), lambda: F.log_softmax(x, 3),
           lambda: F.softmax_backward(g, F.softmax(x, 2), 2)]
    before = fastconv.get_num_threads()
    try:
        results = []
        for n in (1, 2, 3):
            fastconv.set_num_threads(n)
            results.append([op() for op in ops])
    finally:
        fastconv.set_num_threads(before)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert np.array_equal(a, b)
