"""Shared pieces of the property tests (tests/test_properties_*.py), loaded as a pytest plugin.

Arrays are drawn as a seed plus a shape (not element by element), so an example costs little
to generate and shrinks to the smallest geometry that fails; values come from _util.rand
(float64 normals cast to the dtype, so the float64 references see exactly the same values).
`rejects` is the contract for invalid arguments: ValueError or TypeError, nothing else, with
the offending argument's name in the message.
"""

import importlib

import numpy as np
import pytest
from hypothesis import settings, strategies as st

from _util import assert_close, rand

DTYPES = (np.float32, np.float64)

seeds = st.integers(0, 2**32 - 1)
dtypes = st.sampled_from(DTYPES)
# How an array is laid out in memory: the functional ops copy non-contiguous input, so every
# layout must give the same result.
layouts = st.sampled_from(["c", "c", "fortran", "reversed", "strided"])


def budget(fraction):
    """Settings running `fraction` of the profile's max_examples (for slow or cheap tests), so
    the long profile scales them too."""
    return settings(max_examples=max(5, round(settings.default.max_examples * fraction)))


def data(seed, shape, dtype, layout="c"):
    """Standard normal values of `shape` and `dtype` from `seed`, laid out as `layout` asks."""
    a = rand(np.random.default_rng(seed), shape, dtype)
    return relayout(a, layout)


def relayout(a, layout):
    """The same values in another memory layout (a view or a copy that is not C-contiguous
    where the shape allows it)."""
    if layout == "c" or a.ndim == 0:
        return a
    if layout == "fortran":
        return np.asfortranarray(a)
    if layout == "reversed":
        return np.flip(np.flip(a).copy())
    big = np.empty(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
    big[..., ::2] = a
    return big[..., ::2]


def pair_form(draw, h, w):
    """(h, w) as the forms the ops accept: an int when equal, a tuple or a list, of Python or
    NumPy ints."""
    forms = ["tuple", "list", "numpy"] + (["int"] if h == w else [])
    form = draw(st.sampled_from(forms))
    if form == "numpy":
        return (np.int64(h), np.int32(w))
    return h if form == "int" else (h, w) if form == "tuple" else [h, w]


def rejects(call, *names, exc=(ValueError, TypeError)):
    """Assert call() raises ValueError or TypeError (narrowed by `exc`) whose message contains
    one of `names`; any other outcome -- a result, another exception -- fails the test."""
    try:
        result = call()
    except exc as e:
        msg = str(e)
        assert any(n in msg for n in names), (
            f"{type(e).__name__} should name one of {names}: {msg!r}")
        return e
    except Exception as e:
        raise AssertionError(f"expected {exc} naming one of {names}, got "
                             f"{type(e).__name__}: {e}") from e
    raise AssertionError(f"expected {exc} naming one of {names}; the call returned "
                         f"{type(result).__name__} {getattr(result, 'shape', '')}")


_FUNCTIONAL = ("_act", "_conv", "_dense", "_dropout", "_loss", "_norm", "_pool")


@pytest.fixture(scope="module")
def poisoned_outputs():
    """Every output fastconv.functional allocates starts as NaN (floats) or all ones bits
    (integers), so an element a kernel fails to write fails the comparison. Module-scoped, as
    Hypothesis reruns a test body many times within one function-scoped fixture."""
    def empty(like, shape, dtype=None):
        dt = np.dtype(like.dtype if dtype is None else dtype)
        # Refused dtypes reach here too: the output is allocated before the extension checks.
        fill = np.nan if dt.kind in "fc" else np.iinfo(dt).max if dt.kind in "iu" else 1
        return np.full(shape, fill, dtype=dt)

    with pytest.MonkeyPatch.context() as mp:
        for name in _FUNCTIONAL:
            mod = importlib.import_module(f"fastconv.functional.{name}")
            if hasattr(mod, "empty"):
                mp.setattr(mod, "empty", empty)
        yield


# ---------------------------------------------------------------------------
# Invalid arguments: each strategy gives (value, expected exception class).
# ---------------------------------------------------------------------------

NOT_ARRAYS = (1.5, 3, "x", b"x", [[1.0, 2.0]], (1.0,), {"a": 1}, object())
BAD_DTYPES = (np.int32, np.int64, np.uint8, np.float16, np.complex64, np.bool_, object,
              np.dtype(">f4"), np.dtype(">f8"))  # byte-swapped floats: not the machine's
# Not an int: floats (even integral ones), strings, None, bools (PyTorch rejects True for an int
# argument too), complex, containers.
NOT_INTS = (1.5, 2.0, np.float64(2.0), "2", b"2", None, True, False, np.True_, 1j, {2})
OUT_OF_INT64 = (2**63, 2**64, -(2**63) - 1, 10**30)


@st.composite
def bad_ints(draw, low):
    """An invalid value for an int argument that must be >= low."""
    kind = draw(st.sampled_from(["type", "value", "value", "huge"]))
    if kind == "type":
        return draw(st.sampled_from(NOT_INTS)), TypeError
    if kind == "huge":
        return draw(st.sampled_from(OUT_OF_INT64)), ValueError
    return draw(st.integers(low - 10, low - 1)), ValueError


@st.composite
def bad_pairs(draw, low, single=False):
    """An invalid value for an int-or-pair argument whose entries must be >= low (single: the
    op also takes a sequence of one int, as torch's convolution and max/avg pooling do)."""
    kind = draw(st.sampled_from(["scalar", "entry", "entry", "length"]))
    if kind == "scalar":
        return draw(bad_ints(low))
    if kind == "length":
        n = draw(st.sampled_from([0, 3, 4] if single else [0, 1, 3, 4]))
        return draw(st.sampled_from([tuple, list]))([low + 1] * n), ValueError
    bad, exc = draw(bad_ints(low))
    good = draw(st.integers(low, low + 2))
    pair = draw(st.sampled_from([(bad, good), (good, bad), (bad, bad)]))
    return draw(st.sampled_from([tuple, list]))(pair), exc


NOT_REALS = ("0.5", None, True, False, 1j, [0.5], np.array([0.5, 0.5]))


@st.composite
def bad_arrays(draw, shape, dtype, kinds=("nonarray", "dtype", "otherfloat", "ndim", "shape"),
               accept_dtypes=None):
    """An invalid replacement for a float array argument of `shape` and `dtype`: not an array,
    a dtype the op refuses, the other float dtype (mismatched with the input), another number of
    dimensions, one dimension changed, or (kind "readonly", for arrays written to) a read-only
    array. Returns (value, exception class)."""
    kind = draw(st.sampled_from(kinds))
    seed = draw(seeds)
    if kind == "nonarray":
        return draw(st.sampled_from(NOT_ARRAYS)), TypeError
    if kind == "readonly":  # for outputs and accumulation buffers
        return readonly(data(seed, shape, dtype)), ValueError
    if kind in ("dtype", "otherfloat"):
        if kind == "dtype":
            refused = [d for d in BAD_DTYPES if accept_dtypes is None or d not in accept_dtypes]
            bad = draw(st.sampled_from(refused))
        else:
            bad = np.float64 if np.dtype(dtype) == np.float32 else np.float32
        a = np.random.default_rng(seed).standard_normal(shape)
        if bad is object:
            return a.astype(object), TypeError
        with np.errstate(all="ignore"):
            return a.astype(bad), TypeError
    if kind == "ndim":
        ndims = [n for n in range(0, 6) if n != len(shape)]
        nd = draw(st.sampled_from(ndims))
        new = tuple(shape[:nd]) + (2,) * max(0, nd - len(shape))
        return data(seed, new, dtype), ValueError
    if not shape:
        return data(seed, (1,), dtype), ValueError
    axis = draw(st.integers(0, len(shape) - 1))
    new = list(shape)
    new[axis] = draw(st.sampled_from([d for d in (0, 1, 2, 3, 5) if d != shape[axis]]))
    return data(seed, tuple(new), dtype), ValueError


def readonly(a):
    a = a.copy()
    a.flags.writeable = False
    return a


def _short(v):
    if isinstance(v, np.ndarray):
        flags = "" if v.flags.writeable else ", read-only"
        return f"<{v.dtype} array {v.shape}{flags}>"
    if isinstance(v, (tuple, list)) and any(isinstance(e, np.ndarray) for e in v):
        return type(v)(_short(e) for e in v)
    return repr(v)


class Call:
    """fn(*args, **kwargs) that must be rejected with `exc` naming one of `names` (exc None: a
    valid call, which must succeed); its repr (what Hypothesis prints for a failing example)
    shows arrays by dtype and shape."""

    def __init__(self, fn, kwargs, exc, names, args=()):
        self.fn, self.kwargs, self.exc, self.names, self.args = fn, kwargs, exc, names, args

    def __repr__(self):
        parts = [_short(a) for a in self.args]
        parts += [f"{k}={_short(v)}" for k, v in self.kwargs.items()]
        if self.exc is None:
            return f"{self.fn.__name__}({', '.join(parts)}) -> valid"
        return (f"{self.fn.__name__}({', '.join(parts)}) -> {self.exc.__name__} naming "
                f"{' or '.join(self.names)}")

    def check(self):
        if self.exc is None:  # the unchanged call, which every invalid one is derived from
            return self.fn(*self.args, **self.kwargs)
        return rejects(lambda: self.fn(*self.args, **self.kwargs), *self.names, exc=self.exc)


def assert_close_nonfinite(actual, expected, rtol, what="", atol=0.0):
    """NaN and +-inf exactly where the reference has them; the finite entries within rtol."""
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    assert a.shape == e.shape, f"{what}: shape {a.shape} vs {e.shape}"
    for name, test in (("NaN", np.isnan), ("+inf", np.isposinf), ("-inf", np.isneginf)):
        differ = test(a) != test(e)
        assert not differ.any(), (f"{what}: {name} differs at {np.argwhere(differ)[:3].tolist()}: "
                                  f"actual {a[differ][:3]}, expected {e[differ][:3]}")
    fin = np.isfinite(e)
    assert_close(a[fin], e[fin], rtol, atol, what=what)
