"""Property tests of the pooling family: max, min, avg, lp, adaptive avg/max and mixed pooling
with their backwards, against the float64 references in fastconv/_opinfo/pool.py on random valid
windows (3-D and 4-D input, ceil_mode, padding up to half the kernel, dilation, strides that do
not divide, ties and NaNs for max/min), and random invalid calls rejected by name.
"""

import math

import numpy as np
import pytest
from hypothesis import given, strategies as st

import fastconv.functional as F

from fastconv._opinfo import pool as R
from _props import (Call, bad_arrays, bad_pairs, budget, data, dtypes, layouts, pair_form,
                    rejects, relayout, seeds)
from _util import assert_close, rtol_for

pytestmark = pytest.mark.usefixtures("poisoned_outputs")


def _input(c):
    """The case's input: normals, or (values="ties") few distinct values so that windows hold
    ties, or (values="nan") normals with NaN and +-inf sprinkled in."""
    x = data(c["seed"], c["shape"], c["dtype"])
    if c["values"] == "ties":
        x = np.round(x).astype(c["dtype"])
    elif c["values"] == "nan" and x.size:
        rng = np.random.default_rng(c["seed"] + 9)
        flat = x.reshape(-1)
        for v in (np.nan, np.inf, -np.inf, np.nan):
            flat[rng.integers(flat.size)] = v
    return relayout(x, c["layout"])


@st.composite
def window_cases(draw, dilation=True, padding=True, ceil=True):
    """Input shape and window arguments for the sliding-window pools, in every accepted form
    (stride None or [] means the kernel size)."""
    R_, S_ = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    dh, dw = (draw(st.integers(1, 3)), draw(st.integers(1, 3))) if dilation else (1, 1)
    ph, pw = (draw(st.integers(0, R_ // 2)), draw(st.integers(0, S_ // 2))) if padding else (0, 0)
    stride = draw(st.one_of(st.none(), st.just([]), st.tuples(st.integers(1, 4),
                                                               st.integers(1, 4))))
    H = max(1, dh * (R_ - 1) + 1 - 2 * ph) + draw(st.integers(0, 5))
    W = max(1, dw * (S_ - 1) + 1 - 2 * pw) + draw(st.integers(0, 5))
    lead = draw(st.sampled_from([(), (1,), (2,), (0,)]))
    kw = dict(kernel_size=pair_form(draw, R_, S_),
              stride=pair_form(draw, *stride) if isinstance(stride, tuple) else stride)
    if padding:
        kw["padding"] = pair_form(draw, ph, pw)
    if dilation:
        kw["dilation"] = pair_form(draw, dh, dw)
    if ceil:
        kw["ceil_mode"] = draw(st.booleans())
    return dict(shape=lead + (draw(st.integers(1, 3)), H, W), kw=kw, dtype=draw(dtypes),
                layout=draw(layouts), seed=draw(seeds), values="normal")


def _ref_kw(kw):
    """The reference's spelling: stride None for the kernel size."""
    return dict(kw, stride=kw["stride"] if kw["stride"] not in (None, []) else None)


def _window_len(kw):
    k = kw["kernel_size"]
    return k * k if isinstance(k, int) else k[0] * k[1]


@given(window_cases(), st.sampled_from(["max", "min"]),
       st.sampled_from(["normal", "normal", "ties", "nan"]))
def test_max_min_pool2d_match_reference_with_ties_and_nans(c, kind, values):
    c["values"] = values
    x = _input(c)
    fwd, bwd = (F.max_pool2d, F.max_pool2d_backward) if kind == "max" else \
        (F.min_pool2d, F.min_pool2d_backward)
    ref, ref_bwd = (R.max_pool2d_ref, R.max_pool2d_backward_ref) if kind == "max" else \
        (R.min_pool2d_ref, R.min_pool2d_backward_ref)
    out, idx = fwd(x, **c["kw"], return_indices=True)
    want, want_idx = ref(x, **_ref_kw(c["kw"]))
    assert out.dtype == x.dtype and idx.dtype == np.int64
    np.testing.assert_array_equal(idx, want_idx)  # PyTorch's tie and NaN rules
    np.testing.assert_array_equal(out, want.astype(x.dtype))  # a selection: exact, NaN included
    np.testing.assert_array_equal(fwd(x, **c["kw"]), out)
    g = data(c["seed"] + 1, out.shape, c["dtype"], c["layout"])
    dx_ref = ref_bwd(g, x, **_ref_kw(c["kw"]))
    rtol = rtol_for(c["dtype"], _window_len(c["kw"]))  # overlapping windows add
    assert_close(bwd(g, x, **c["kw"]), dx_ref, rtol, what="recomputed argmax")
    assert_close(bwd(g, x, **c["kw"], indices=idx), dx_ref, rtol, what="given indices")


@given(window_cases(dilation=False), st.booleans(),
       st.one_of(st.none(), st.integers(-3, 5).filter(bool)))
def test_avg_pool2d_matches_reference(c, count_include_pad, divisor_override):
    x = _input(c)
    kw = dict(c["kw"], count_include_pad=count_include_pad, divisor_override=divisor_override)
    out = F.avg_pool2d(x, **kw)
    rtol = rtol_for(c["dtype"], _window_len(kw))
    assert_close(out, R.avg_pool2d_ref(x, **_ref_kw(kw)), rtol, what="avg_pool2d")
    g = data(c["seed"] + 1, out.shape, c["dtype"], c["layout"])
    assert_close(F.avg_pool2d_backward(g, x, **kw), R.avg_pool2d_backward_ref(g, x, **_ref_kw(kw)),
                 rtol, what="avg_pool2d_backward")


@given(window_cases(dilation=False, padding=False), st.sampled_from([1, 2, 3, 1.5, 0.75, math.inf]))
def test_lp_pool2d_matches_reference(c, norm_type):
    x = _input(c)
    if norm_type not in (1, 2, math.inf):
        # A negative power sum has no real root: keep windows positive (NaN is tested apart).
        x = (np.abs(x) + 0.25).astype(c["dtype"])
    out = F.lp_pool2d(x, norm_type, **c["kw"])
    kw = _ref_kw(c["kw"])
    rtol = 10 * rtol_for(c["dtype"], _window_len(kw))  # powers and roots: a few ulps each
    if norm_type == math.inf:
        want = R.max_pool2d_ref(np.abs(x), **kw)[0]
    else:
        want = R.lp_pool2d_ref(x, norm_type, **kw)
    assert_close(out, want, rtol, what="lp_pool2d")
    g = data(c["seed"] + 1, out.shape, c["dtype"], c["layout"])
    dx = F.lp_pool2d_backward(g, x, norm_type, **c["kw"])
    if norm_type == math.inf:
        want = R.max_pool2d_backward_ref(g, np.abs(x), **kw) * np.sign(x)
    else:
        want = R.lp_pool2d_backward_ref(g, x, norm_type, **kw)
    assert_close(dx, want, rtol, what="lp_pool2d_backward")


@st.composite
def adaptive_cases(draw):
    H, W = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    P = draw(st.one_of(st.none(), st.integers(1, H + 2)))
    Q = draw(st.one_of(st.none(), st.integers(1, W + 2)))
    form = draw(st.sampled_from(["int", "tuple", "list"]))
    size = (P if P is not None else 3) if form == "int" else (P, Q) if form == "tuple" else [P, Q]
    lead = draw(st.sampled_from([(), (1,), (2,), (0,)]))
    return dict(shape=lead + (draw(st.integers(1, 3)), H, W), output_size=size,
                dtype=draw(dtypes), layout=draw(layouts), seed=draw(seeds),
                values=draw(st.sampled_from(["normal", "ties", "nan"])))


@given(adaptive_cases())
def test_adaptive_pools_match_reference(c):
    x = _input(c)
    size = c["output_size"]
    out, idx = F.adaptive_max_pool2d(x, size, return_indices=True)
    want, want_idx = R.adaptive_max_pool2d_ref(x, size)
    np.testing.assert_array_equal(idx, want_idx)
    np.testing.assert_array_equal(out, want.astype(x.dtype))
    g = data(c["seed"] + 1, out.shape, c["dtype"], c["layout"])
    dx_ref = R.adaptive_max_pool2d_backward_ref(g, x, size)
    rtol = rtol_for(c["dtype"], 4)
    assert_close(F.adaptive_max_pool2d_backward(g, x, size), dx_ref, rtol, what="max recomputed")
    assert_close(F.adaptive_max_pool2d_backward(g, x, size, indices=idx), dx_ref, rtol,
                 what="max with indices")

    x = data(c["seed"], c["shape"], c["dtype"], c["layout"])  # finite: averages compared
    out = F.adaptive_avg_pool2d(x, size)
    H, W = x.shape[-2:]
    rtol = rtol_for(c["dtype"], H * W)
    assert_close(out, R.adaptive_avg_pool2d_ref(x, size), rtol, what="adaptive_avg_pool2d")
    assert_close(F.adaptive_avg_pool2d_backward(g, x, size),
                 R.adaptive_avg_pool2d_backward_ref(g, x, size), rtol,
                 what="adaptive_avg_pool2d_backward")


@given(window_cases(dilation=False, ceil=False),
       st.one_of(st.none(), st.floats(0, 1), st.sampled_from([0, 1, 0.5])))
def test_mixed_pool2d_matches_reference(c, alpha):
    x = _input(c)
    if alpha is None:  # drawn from the generator, returned, and reproducible from its seed
        out, used = F.mixed_pool2d(x, **c["kw"], alpha=None,
                                   generator=np.random.default_rng(c["seed"]))
        assert used == np.random.default_rng(c["seed"]).random()
    else:
        out, used = F.mixed_pool2d(x, **c["kw"], alpha=alpha), alpha
    kw = _ref_kw(c["kw"])
    rtol = rtol_for(c["dtype"], _window_len(kw))
    assert_close(out, R.mixed_pool2d_ref(x, **kw, alpha=used), rtol, what="mixed_pool2d")
    g = data(c["seed"] + 1, out.shape, c["dtype"], c["layout"])
    assert_close(F.mixed_pool2d_backward(g, x, **c["kw"], alpha=used),
                 R.mixed_pool2d_backward_ref(g, x, **kw, alpha=used), rtol,
                 what="mixed_pool2d_backward")


# ---------------------------------------------------------------------------
# Invalid calls
# ---------------------------------------------------------------------------

NOT_BOOLS = (0, 1, 2, "True", "", None, 1.0, [True])

POOLS = ["max_pool2d", "min_pool2d", "avg_pool2d", "lp_pool2d", "mixed_pool2d",
         "adaptive_avg_pool2d", "adaptive_max_pool2d"]
# The window arguments each sliding pool takes besides input (lp_pool2d: norm_type first).
WINDOW_ARGS = {
    "max_pool2d": ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices"),
    "min_pool2d": ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices"),
    "avg_pool2d": ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad",
                   "divisor_override"),
    "lp_pool2d": ("norm_type", "kernel_size", "stride", "ceil_mode"),
    "mixed_pool2d": ("kernel_size", "stride", "padding", "alpha", "generator"),
    "adaptive_avg_pool2d": ("output_size",),
    "adaptive_max_pool2d": ("output_size", "return_indices"),
}
BACKWARD_ONLY = {"indices", "grad_output"}


@st.composite
def pool_invalid_calls(draw):
    op = draw(st.sampled_from(POOLS))
    backward = draw(st.booleans())
    dt, seed = draw(dtypes), draw(seeds)
    lead = draw(st.sampled_from([(), (2,)]))
    x = data(seed, lead + (2, 6, 7), dt)
    adaptive = op.startswith("adaptive")
    kw = dict(input=x)
    if adaptive:
        kw["output_size"] = (3, 2)
        out_shape = lead + (2, 3, 2)
    else:
        if op == "lp_pool2d":
            kw["norm_type"] = 2
        kw.update(kernel_size=(3, 2), stride=2)
        if op != "lp_pool2d":
            kw["padding"] = 1
        out_shape = lead + ((2, 2, 3) if op == "lp_pool2d" else (2, 3, 4))
    names_all = [a for a in WINDOW_ARGS[op] if not (backward and a == "return_indices")]
    if backward:
        names_all += ["grad_output"] + (["indices"] if op in ("max_pool2d", "min_pool2d",
                                                             "adaptive_max_pool2d") else [])
    arg = draw(st.sampled_from(["none", "input"] + names_all))
    names = (arg,)
    if arg == "none":
        exc = None
    elif arg == "input":
        x_bad, exc = draw(bad_arrays(x.shape, dt, kinds=("nonarray", "dtype", "ndim")))
        if isinstance(x_bad, np.ndarray) and x_bad.ndim in (3, 4):
            x_bad, exc = data(seed, (2, 1, 6, 7)[-x_bad.ndim:-2] + (0, 7), dt), ValueError
        kw["input"] = x_bad
    elif arg in ("kernel_size", "dilation"):
        kw[arg], exc = draw(bad_pairs(1, single=True))
        names = (arg, "padding")  # padding 1 must stay at most half of kernel_size
    elif arg == "stride":  # None and [] mean the kernel size
        kw["stride"], exc = draw(bad_pairs(1, single=True).filter(
            lambda v: v[0] is not None and not (isinstance(v[0], (list, tuple)) and not v[0])))
    elif arg == "padding":
        kw["padding"], exc = draw(st.one_of(bad_pairs(0, single=True), st.sampled_from(
            [(2, ValueError), ((1, 2), ValueError)])))  # more than half of kernel_size (3, 2)
    elif arg in ("ceil_mode", "count_include_pad", "return_indices"):
        kw[arg], exc = draw(st.sampled_from(NOT_BOOLS)), TypeError
    elif arg == "divisor_override":
        kw[arg], exc = draw(st.one_of(st.just((0, ValueError)), st.sampled_from(
            [(1.5, TypeError), ("2", TypeError), (True, TypeError), (2**64, ValueError)])))
    elif arg == "norm_type":
        kw[arg], exc = draw(st.sampled_from([(0, ValueError), (-1.5, ValueError),
                                             (float("nan"), ValueError), (-math.inf, ValueError),
                                             ("2", TypeError), (None, TypeError),
                                             (True, TypeError)]))
    elif arg == "alpha":
        kw[arg], exc = draw(st.sampled_from([(-0.1, ValueError), (1.5, ValueError),
                                             (float("nan"), ValueError), ("0.5", TypeError),
                                             (True, TypeError), ([0.5], TypeError)]))
    elif arg == "generator":
        kw.update(alpha=None)
        kw[arg], exc = draw(st.sampled_from([(1, TypeError), ("rng", TypeError),
                                             (np.random.RandomState(0), TypeError)]))
    elif arg == "output_size":
        kw[arg], exc = draw(st.one_of(
            bad_pairs(1).filter(lambda v: v[0] is not None
                                and not (isinstance(v[0], (tuple, list)) and None in v[0])),
            st.sampled_from([((None, None, 1), ValueError), ("3", TypeError)])))
    elif arg == "grad_output":
        kw[arg], exc = draw(bad_arrays(out_shape, dt))
    else:  # indices
        kw[arg], exc = draw(st.one_of(
            bad_arrays(out_shape, np.int64, kinds=("nonarray", "ndim", "shape")),
            st.sampled_from([(np.zeros(out_shape, np.int32), TypeError),
                             (np.zeros(out_shape, np.float64), TypeError),
                             (np.full(out_shape, -1, np.int64), ValueError),
                             (np.full(out_shape, 42, np.int64), ValueError)])))
    fn = getattr(F, op + "_backward" if backward else op)
    if backward:
        kw.setdefault("grad_output", data(seed + 1, out_shape, dt))
        if arg != "generator":
            kw.pop("generator", None)
    return Call(fn, kw, exc, names)


@budget(5)
@given(pool_invalid_calls())
def test_pool_invalid_arguments_are_rejected_by_name(call):
    call.check()


LIMIT = 2**31 - 1
HUGE = (LIMIT, LIMIT + 1, 2**40, 2**62, 2**63 - 1)


def _geometry_pairs(low):
    return st.lists(st.one_of(st.integers(low, 3), st.sampled_from(HUGE)), min_size=2,
                    max_size=2)


@budget(2)
@given(st.sampled_from(["max_pool2d", "avg_pool2d", "adaptive_avg_pool2d"]), _geometry_pairs(1),
       _geometry_pairs(1), st.lists(st.integers(0, 1), min_size=2, max_size=2),
       _geometry_pairs(1), st.booleans())
def test_pool_huge_geometry_is_computed_exactly_or_rejected_by_name(op, kernel, stride, padding,
                                                                   dilation, ceil_mode):
    """Arguments beyond 2**31 - 1 are refused by name (int64 overflow made impossible
    geometries valid, see test_properties_conv); below, the output has PyTorch's size."""
    x = np.ones((1, 2, 5, 6))
    if op == "adaptive_avg_pool2d":
        args = dict(output_size=kernel)
        call = lambda: F.adaptive_avg_pool2d(x, kernel)
        sizes = list(kernel)
    else:
        padding = [min(p, k // 2) for p, k in zip(padding, kernel)]
        args = dict(kernel_size=kernel, stride=stride, dilation=dilation)
        if op == "avg_pool2d":
            dilation = [1, 1]
            del args["dilation"]
            call = lambda: F.avg_pool2d(x, kernel, stride, padding, ceil_mode)
        else:
            call = lambda: F.max_pool2d(x, kernel, stride, padding, dilation, ceil_mode)
        sizes = [R.pool_output_size(n, k, p, s, d, ceil_mode)
                 for n, k, p, s, d in zip(x.shape[2:], kernel, padding, stride, dilation)]
    over = [name for name, v in args.items() if max(v) > LIMIT]
    if over:
        rejects(call, *over, exc=ValueError)
    elif min(sizes) < 1:
        rejects(call, "kernel_size", "output size", "output_size", "dilation", exc=ValueError)
    elif sizes[0] * sizes[1] <= 10**4:
        assert call().shape == (1, 2) + tuple(sizes)
