"""Property tests of the convolution family: conv2d, conv_transpose2d, linear, unfold and fold
with their backwards, against the float64 references on random valid geometries, and random
invalid calls that must be rejected by name.
"""

import numpy as np
import pytest
from hypothesis import example, given, strategies as st

import fastconv.functional as F

from _props import (Call, bad_arrays, bad_ints, bad_pairs, budget, data, dtypes, layouts, pair_form,
                    rejects, seeds)
from _util import assert_close, rtol_for
from fastconv._opinfo.conv import conv2d_backward_ref, conv2d_ref, fold_ref, unfold_ref
from fastconv._opinfo.conv import conv_transpose2d_backward_ref, conv_transpose2d_ref
from fastconv._opinfo.dense import linear_ref, linear_backward_ref

pytestmark = pytest.mark.usefixtures("poisoned_outputs")


# ---------------------------------------------------------------------------
# conv2d
# ---------------------------------------------------------------------------

@st.composite
def conv2d_cases(draw):
    """A valid conv2d call: shapes, geometry in every accepted form, dtype, layout."""
    g = draw(st.integers(1, 3))
    C, K = g * draw(st.integers(1, 3)), g * draw(st.integers(1, 3))
    R, S = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    dh, dw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    mode = draw(st.sampled_from(["explicit", "explicit", "same", "valid"]))
    if mode == "same":
        sh = sw = 1
        ph, pw = dh * (R - 1) // 2, dw * (S - 1) // 2  # only to size the input below
        padding = "same"
    else:
        sh, sw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
        ph, pw = (0, 0) if mode == "valid" else (draw(st.integers(0, 4)), draw(st.integers(0, 4)))
        padding = "valid" if mode == "valid" else pair_form(draw, ph, pw)
    # The smallest input that still has one output row/column, and a few more.
    H = max(1, dh * (R - 1) + 1 - 2 * ph) + draw(st.integers(0, 6))
    W = max(1, dw * (S - 1) + 1 - 2 * pw) + draw(st.integers(0, 6))
    N = draw(st.sampled_from([1, 1, 2, 3, 0]))
    return dict(N=N, C=C, H=H, W=W, K=K, R=R, S=S, groups=g, bias=draw(st.booleans()),
                stride=pair_form(draw, sh, sw) if (sh, sw) != (1, 1) or draw(st.booleans())
                else 1,
                padding=padding, dilation=pair_form(draw, dh, dw), dtype=draw(dtypes),
                layout=draw(layouts), seed=draw(seeds))


def _conv2d_data(c):
    s, dt = c["seed"], c["dtype"]
    x = data(s, (c["N"], c["C"], c["H"], c["W"]), dt, c["layout"])
    w = data(s + 1, (c["K"], c["C"] // c["groups"], c["R"], c["S"]), dt, c["layout"])
    b = data(s + 2, (c["K"],), dt) if c["bias"] else None
    return x, w, b


def _geo(c):
    return dict(stride=c["stride"], padding=c["padding"], dilation=c["dilation"],
                groups=c["groups"])


@given(conv2d_cases(), st.lists(st.booleans(), min_size=3, max_size=3), st.booleans())
def test_conv2d_forward_backward_match_reference(c, mask, accumulate):
    x, w, b = _conv2d_data(c)
    geo = _geo(c)
    fwd_len = c["C"] // c["groups"] * c["R"] * c["S"]
    out = F.conv2d(x, w, b, **geo)
    want = conv2d_ref(x, w, b, **geo)
    assert out.dtype == c["dtype"]
    assert_close(out, want, rtol_for(c["dtype"], fwd_len), what="conv2d")

    dout = data(c["seed"] + 3, want.shape, c["dtype"], c["layout"])
    dx_ref, dw_ref, db_ref = conv2d_backward_ref(dout, x, w, **geo)
    gw = gb = None
    if accumulate:  # the accumulation contract: the gradients are added into given arrays
        gw = data(c["seed"] + 4, w.shape, c["dtype"])
        gb = data(c["seed"] + 5, (c["K"],), c["dtype"])
        dw_ref, db_ref = dw_ref + gw, db_ref + gb
    dx, dw, db = F.conv2d_backward(dout, x, w, **geo, output_mask=tuple(mask), grad_weight=gw,
                                   grad_bias=gb)
    P, Q = want.shape[2:]
    lengths = (c["K"] // c["groups"] * c["R"] * c["S"], c["N"] * P * Q + 1, c["N"] * P * Q + 1)
    for got, ref, need, n, name in zip((dx, dw, db), (dx_ref, dw_ref, db_ref), mask, lengths,
                                       ("grad_input", "grad_weight", "grad_bias")):
        if need:
            assert_close(got, ref, rtol_for(c["dtype"], n), what=name)
        else:
            assert got is None, name
    if accumulate and mask[1]:
        assert dw is gw
    if accumulate and mask[2]:
        assert db is gb


# ---------------------------------------------------------------------------
# unfold / fold
# ---------------------------------------------------------------------------

@st.composite
def window_cases(draw):
    """A valid unfold/fold geometry: (N, C, H, W) and window arguments."""
    R, S = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    dh, dw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    sh, sw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    ph, pw = draw(st.integers(0, 4)), draw(st.integers(0, 4))
    H = max(1, dh * (R - 1) + 1 - 2 * ph) + draw(st.integers(0, 5))
    W = max(1, dw * (S - 1) + 1 - 2 * pw) + draw(st.integers(0, 5))
    return dict(shape=(draw(st.sampled_from([1, 2, 0])), draw(st.integers(1, 3)), H, W),
                kernel_size=pair_form(draw, R, S), dilation=pair_form(draw, dh, dw),
                padding=pair_form(draw, ph, pw), stride=pair_form(draw, sh, sw),
                dtype=draw(dtypes), layout=draw(layouts), seed=draw(seeds))


def _window(c):
    return {k: c[k] for k in ("kernel_size", "dilation", "padding", "stride")}


@given(window_cases())
def test_unfold_fold_match_reference_and_are_adjoint(c):
    x = data(c["seed"], c["shape"], c["dtype"], c["layout"])
    cols = F.unfold(x, **_window(c))
    assert_close(cols, unfold_ref(x, **_window(c)), 0.0, what="unfold")  # a pure copy
    y = data(c["seed"] + 1, cols.shape, c["dtype"], c["layout"])
    folded = F.fold(y, c["shape"][2:], **_window(c))
    R, S = (c["kernel_size"],) * 2 if isinstance(c["kernel_size"], int) else c["kernel_size"]
    assert_close(folded, fold_ref(y, c["shape"][2:], **_window(c)), rtol_for(c["dtype"], R * S),
                 what="fold")
    # <unfold(x), y> == <x, fold(y)>: fold is unfold's transpose.
    lhs = np.vdot(unfold_ref(x, **_window(c)), y.astype(np.float64))
    rhs = np.vdot(x.astype(np.float64), fold_ref(y, c["shape"][2:], **_window(c)))
    assert abs(lhs - rhs) <= 1e-9 * max(1.0, abs(lhs))


# ---------------------------------------------------------------------------
# conv_transpose2d
# ---------------------------------------------------------------------------

@st.composite
def conv_transpose2d_cases(draw):
    g = draw(st.integers(1, 3))
    Cin, Cout = g * draw(st.integers(1, 3)), g * draw(st.integers(1, 3))
    R, S = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    dh, dw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    H, W = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    # output_padding below stride or dilation (PyTorch's rule), padding as large as still
    # leaves one output row/column.
    oh, ow = draw(st.integers(0, max(sh, dh) - 1)), draw(st.integers(0, max(sw, dw) - 1))
    ph = draw(st.integers(0, ((H - 1) * sh + dh * (R - 1) + oh) // 2))
    pw = draw(st.integers(0, ((W - 1) * sw + dw * (S - 1) + ow) // 2))
    return dict(N=draw(st.sampled_from([1, 1, 2, 0])), Cin=Cin, Cout=Cout, H=H, W=W, R=R, S=S,
                groups=g, bias=draw(st.booleans()), stride=pair_form(draw, sh, sw),
                padding=pair_form(draw, ph, pw), output_padding=pair_form(draw, oh, ow),
                dilation=pair_form(draw, dh, dw), dtype=draw(dtypes), layout=draw(layouts),
                seed=draw(seeds))


@given(conv_transpose2d_cases(), st.lists(st.booleans(), min_size=3, max_size=3), st.booleans())
def test_conv_transpose2d_forward_backward_match_reference(c, mask, accumulate):
    s, dt = c["seed"], c["dtype"]
    x = data(s, (c["N"], c["Cin"], c["H"], c["W"]), dt, c["layout"])
    w = data(s + 1, (c["Cin"], c["Cout"] // c["groups"], c["R"], c["S"]), dt, c["layout"])
    b = data(s + 2, (c["Cout"],), dt) if c["bias"] else None
    geo = {k: c[k] for k in ("stride", "padding", "output_padding", "groups", "dilation")}
    out = F.conv_transpose2d(x, w, b, **geo)
    want = conv_transpose2d_ref(x, w, b, **geo)
    n_taps = c["R"] * c["S"] * c["Cin"] // c["groups"]
    assert_close(out, want, rtol_for(dt, n_taps), what="conv_transpose2d")

    dout = data(s + 3, want.shape, dt, c["layout"])
    refs = list(conv_transpose2d_backward_ref(dout, x, w, **geo))
    gw = gb = None
    if accumulate:
        gw, gb = data(s + 4, w.shape, dt), data(s + 5, (c["Cout"],), dt)
        refs[1], refs[2] = refs[1] + gw, refs[2] + gb
    got = F.conv_transpose2d_backward(dout, x, w, **geo, output_mask=tuple(mask),
                                      grad_weight=gw, grad_bias=gb)
    lengths = (c["Cout"] // c["groups"] * c["R"] * c["S"], c["N"] * c["H"] * c["W"] + 1,
               c["N"] * want.shape[2] * want.shape[3] + 1)
    for a, r, need, n, name in zip(got, refs, mask, lengths,
                                   ("grad_input", "grad_weight", "grad_bias")):
        if need:
            assert_close(a, r, rtol_for(dt, n), what=name)
        else:
            assert a is None, name


# ---------------------------------------------------------------------------
# linear
# ---------------------------------------------------------------------------

@st.composite
def linear_cases(draw):
    lead = draw(st.lists(st.sampled_from([1, 1, 2, 3, 5, 0]), max_size=3))
    IN, OUT = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    return dict(shape=tuple(lead) + (IN,), OUT=OUT, bias=draw(st.booleans()), dtype=draw(dtypes),
                layout=draw(layouts), seed=draw(seeds))


@given(linear_cases(), st.lists(st.booleans(), min_size=3, max_size=3), st.booleans())
def test_linear_forward_backward_match_reference(c, mask, accumulate):
    s, dt = c["seed"], c["dtype"]
    IN = c["shape"][-1]
    x = data(s, c["shape"], dt, c["layout"])
    w = data(s + 1, (c["OUT"], IN), dt, c["layout"])
    b = data(s + 2, (c["OUT"],), dt) if c["bias"] else None
    out = F.linear(x, w, b)
    assert_close(out, linear_ref(x, w, b), rtol_for(dt, IN), what="linear")
    dout = data(s + 3, out.shape, dt, c["layout"])
    refs = list(linear_backward_ref(dout, x, w))
    gw = gb = None
    if accumulate:
        gw, gb = data(s + 4, w.shape, dt), data(s + 5, (c["OUT"],), dt)
        refs[1], refs[2] = refs[1] + gw, refs[2] + gb
    got = F.linear_backward(dout, x, w, output_mask=tuple(mask), grad_weight=gw, grad_bias=gb)
    rows = int(np.prod(c["shape"][:-1]))
    for a, r, need, n, name in zip(got, refs, mask, (c["OUT"], rows + 1, rows + 1),
                                   ("grad_input", "grad_weight", "grad_bias")):
        if need:
            assert_close(a, r, rtol_for(dt, n), what=name)
        else:
            assert a is None, name


# ---------------------------------------------------------------------------
# Invalid calls: one argument made invalid, the rest a valid call.
# ---------------------------------------------------------------------------

@st.composite
def _bad_weight(draw, shape, dtype, channel_axis):
    """A 4-D weight that is not an array, of a refused or mismatched dtype, of another rank, with
    an empty dimension, or whose input-channel count (axis channel_axis) disagrees."""
    kind = draw(st.sampled_from(["array", "array", "empty", "channels"]))
    if kind == "array":
        return draw(bad_arrays(shape, dtype, kinds=("nonarray", "dtype", "otherfloat", "ndim")))
    bad = list(shape)
    if kind == "empty":
        bad[draw(st.integers(0, 3))] = 0
    else:
        bad[channel_axis] += draw(st.sampled_from([-1, 1, 2]))
    return data(draw(seeds), tuple(bad), dtype), ValueError


# What a grad_weight= / grad_bias= accumulation buffer can get wrong (None means "allocate").
ACCUMULATOR_KINDS = ("dtype", "otherfloat", "ndim", "shape", "readonly")


@st.composite
def conv2d_invalid_calls(draw):
    backward = draw(st.booleans())
    g = draw(st.integers(1, 2))
    N, C, K, R, S = draw(st.integers(1, 2)), 2 * g, 2 * g, 3, 2
    dt, seed = draw(dtypes), draw(seeds)
    x, w = data(seed, (N, C, 6, 5), dt), data(seed + 1, (K, C // g, R, S), dt)
    kw = dict(input=x, weight=w, stride=1, padding=1, dilation=1, groups=g)
    out_shape = (N, K, 6, 6)
    arg = draw(st.sampled_from(
        ["none", "input", "weight", "stride", "dilation", "padding", "groups", "geometry"]
        + (["grad_output", "output_mask", "grad_weight", "grad_bias"] if backward else ["bias"])))
    names = (arg,)
    if arg == "none":
        exc = None
    elif arg == "input":
        kw["input"], exc = draw(bad_arrays(x.shape, dt, kinds=("nonarray", "dtype", "ndim")))
        if exc is TypeError and isinstance(kw["input"], np.ndarray):
            names = ("input", "weight")  # an int input against a float weight: either is named
    elif arg == "weight":
        kw["weight"], exc = draw(_bad_weight(w.shape, dt, channel_axis=1))
        names = ("weight", "input", "groups")  # a channel count that disagrees names all three
    elif arg == "bias":
        kw["bias"], exc = draw(bad_arrays((K,), dt))
        if kw["bias"] is None:
            kw["bias"], exc = np.zeros(K + 1, dt), ValueError
    elif arg in ("stride", "dilation"):
        kw[arg], exc = draw(bad_pairs(1, single=True))
    elif arg == "padding":
        kw["padding"], exc = draw(st.one_of(
            bad_pairs(0, single=True), st.sampled_from([("full", ValueError), ("SAME", ValueError),
                                           ("", ValueError)])))
        if isinstance(kw["padding"], str):  # a str is a padding mode: an unknown one
            exc = ValueError
        if draw(st.booleans()) and not backward:  # 'same' needs stride 1, as in PyTorch
            kw.update(padding="same", stride=draw(st.sampled_from([2, (1, 2), (3, 1)])))
            exc, names = ValueError, ("padding", "stride")
    elif arg == "groups":
        kw["groups"], exc = draw(st.one_of(bad_ints(1), st.sampled_from(
            [(3, ValueError), (4 * g, ValueError), (5, ValueError)])))
        names = ("groups",) if exc is TypeError or not isinstance(kw["groups"], int) \
            or kw["groups"] < 1 else ("groups", "weight")
    elif arg == "geometry":  # a kernel larger than the padded input, or an empty input
        kw["input"] = data(seed, (N, C, draw(st.integers(0, 2)), 5), dt)
        kw["padding"], exc = 0, ValueError
        names = ("input", "kernel")
    elif arg == "grad_output":
        kw["grad_output"], exc = draw(bad_arrays(out_shape, dt))
    elif arg == "output_mask":
        kw["output_mask"], exc = draw(st.sampled_from(
            [(True, TypeError), ((True, True), TypeError), ((1, 1, 1), TypeError),
             ((True, None, True), TypeError), ("yes", TypeError),
             ((True, True, True, True), TypeError)]))
    elif arg == "grad_weight":
        kw["grad_weight"], exc = draw(bad_arrays(w.shape, dt, kinds=ACCUMULATOR_KINDS))
    else:
        kw["grad_bias"], exc = draw(bad_arrays((K,), dt, kinds=ACCUMULATOR_KINDS))
    if backward:
        kw.setdefault("grad_output", data(seed + 2, out_shape, dt))
        fn = F.conv2d_backward
    else:
        fn = F.conv2d
    return Call(fn, kw, exc, names)


@budget(4)
@given(conv2d_invalid_calls())
def test_conv2d_invalid_arguments_are_rejected_by_name(call):
    call.check()


@st.composite
def conv_transpose2d_invalid_calls(draw):
    backward = draw(st.booleans())
    g = draw(st.integers(1, 2))
    N, Cin, Cout = draw(st.integers(1, 2)), 2 * g, 2 * g
    dt, seed = draw(dtypes), draw(seeds)
    x, w = data(seed, (N, Cin, 4, 5), dt), data(seed + 1, (Cin, Cout // g, 3, 2), dt)
    kw = dict(input=x, weight=w, stride=2, padding=1, output_padding=1, groups=g, dilation=1)
    out_shape = (N, Cout, 8, 9)  # (4-1)*2 - 2 + 2 + 1 + 1, (5-1)*2 - 2 + 1 + 1 + 1
    arg = draw(st.sampled_from(
        ["none", "input", "weight", "stride", "dilation", "padding", "output_padding", "groups"]
        + (["grad_output", "output_mask", "grad_weight", "grad_bias"] if backward else ["bias"])))
    names = (arg,)
    if arg == "none":
        exc = None
    elif arg == "input":
        kw["input"], exc = draw(bad_arrays(x.shape, dt, kinds=("nonarray", "dtype", "ndim")))
        names = ("input", "weight")
    elif arg == "weight":
        kw["weight"], exc = draw(_bad_weight(w.shape, dt, channel_axis=0))
        names = ("weight", "input", "groups")
    elif arg == "bias":
        kw["bias"], exc = draw(bad_arrays((Cout,), dt))
    elif arg in ("stride", "dilation"):
        kw[arg], exc = draw(bad_pairs(1, single=True))
        # output_padding 1 must stay below stride or dilation: with the other one at 1, a
        # valid-looking 1 here is an output_padding error.
        names = (arg, "output_padding")
    elif arg == "padding":
        kw["padding"], exc = draw(st.one_of(bad_pairs(0, single=True), st.just(("same", TypeError)),
                                            st.just((5, ValueError))))  # output size below 1
        names = ("padding", "output size")
    elif arg == "output_padding":
        kw["output_padding"], exc = draw(st.one_of(bad_pairs(0, single=True), st.sampled_from(
            [(2, ValueError), ((0, 3), ValueError)])))  # not below stride 2 nor dilation 1
    elif arg == "groups":
        kw["groups"], exc = draw(st.one_of(bad_ints(1), st.sampled_from(
            [(3, ValueError), (4 * g, ValueError)])))
        names = ("groups", "weight")
    elif arg == "grad_output":
        kw["grad_output"], exc = draw(bad_arrays(out_shape, dt))
    elif arg == "output_mask":
        kw["output_mask"], exc = (True, False), TypeError
    elif arg == "grad_weight":
        kw["grad_weight"], exc = draw(bad_arrays(w.shape, dt, kinds=ACCUMULATOR_KINDS))
    else:
        kw["grad_bias"], exc = draw(bad_arrays((Cout,), dt, kinds=ACCUMULATOR_KINDS))
    if backward:
        kw.setdefault("grad_output", data(seed + 2, out_shape, dt))
    return Call(F.conv_transpose2d_backward if backward else F.conv_transpose2d, kw, exc, names)


@budget(3)
@given(conv_transpose2d_invalid_calls())
def test_conv_transpose2d_invalid_arguments_are_rejected_by_name(call):
    call.check()


@st.composite
def linear_invalid_calls(draw):
    backward = draw(st.booleans())
    dt, seed = draw(dtypes), draw(seeds)
    lead = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    x, w = data(seed, lead + (4,), dt), data(seed + 1, (3, 4), dt)
    kw = dict(input=x, weight=w)
    arg = draw(st.sampled_from(["none", "input", "weight"] + (
        ["grad_output", "output_mask", "grad_weight", "grad_bias"] if backward else ["bias"])))
    names = (arg,)
    if arg == "none":
        exc = None
    elif arg == "input":
        kind = draw(st.sampled_from(["nonarray", "dtype", "features", "0-d"]))
        if kind == "features":
            kw["input"], exc = data(seed, lead + (draw(st.sampled_from([0, 1, 3, 5])),), dt), \
                ValueError
            names = ("input", "weight")
        elif kind == "0-d":
            kw["input"], exc = np.asarray(1.0, dt), ValueError
        else:
            kw["input"], exc = draw(bad_arrays(x.shape, dt, kinds=(kind,)))
            names = ("input", "weight")
    elif arg == "weight":
        kw["weight"], exc = draw(bad_arrays(w.shape, dt, kinds=("nonarray", "dtype", "otherfloat",
                                                                 "ndim")))
        names = ("weight", "input")
        if draw(st.booleans()):  # in_features that disagree with the input's
            kw["weight"], exc = data(seed, (3, draw(st.sampled_from([1, 3, 5]))), dt), ValueError
    elif arg == "bias":
        kw["bias"], exc = draw(bad_arrays((3,), dt))
    elif arg == "grad_output":
        kw["grad_output"], exc = draw(bad_arrays(lead + (3,), dt))
    elif arg == "output_mask":
        kw["output_mask"], exc = [1, 0, 1], TypeError
    elif arg == "grad_weight":
        kw["grad_weight"], exc = draw(bad_arrays(w.shape, dt, kinds=ACCUMULATOR_KINDS))
    else:
        kw["grad_bias"], exc = draw(bad_arrays((3,), dt, kinds=ACCUMULATOR_KINDS))
    if backward:
        kw.setdefault("grad_output", data(seed + 2, lead + (3,), dt))
    return Call(F.linear_backward if backward else F.linear, kw, exc, names)


@budget(3)
@given(linear_invalid_calls())
def test_linear_invalid_arguments_are_rejected_by_name(call):
    call.check()


@st.composite
def unfold_fold_invalid_calls(draw):
    dt, seed = draw(dtypes), draw(seeds)
    is_fold = draw(st.booleans())
    kw = dict(kernel_size=(2, 3), dilation=1, padding=1, stride=2)
    # unfold: (1, 2, 5, 6) -> (1, 12, 3 * 3); fold takes that back
    kw["input"] = data(seed, (1, 12, 9) if is_fold else (1, 2, 5, 6), dt)
    if is_fold:
        kw["output_size"] = (5, 6)
    arg = draw(st.sampled_from(["none", "input", "kernel_size", "dilation", "padding", "stride"]
                               + (["output_size"] if is_fold else [])))
    names = (arg,)
    if arg == "none":
        exc = None
    elif arg == "input":
        shape = kw["input"].shape
        kw["input"], exc = draw(bad_arrays(shape, dt, kinds=("nonarray", "dtype", "ndim")))
        if draw(st.booleans()):  # a size that no longer fits the geometry (any N is valid)
            axis = draw(st.integers(1, len(shape) - 1))
            bad = list(shape)
            bad[axis] = draw(st.sampled_from([0, 1, 7])) if is_fold else 0
            kw["input"], exc = data(seed, tuple(bad), dt), ValueError
            names = ("input", "kernel", "output")
    elif arg in ("kernel_size", "stride", "dilation", "output_size"):
        kw[arg], exc = draw(bad_pairs(1))
        # a kernel too large for the input, a geometry that no longer gives the input's L
        names = (arg, "input", "kernel", "output")
    else:
        kw["padding"], exc = draw(bad_pairs(0))
        names = ("padding", "input")
    return Call(F.fold if is_fold else F.unfold, kw, exc, names)


@budget(3)
@given(unfold_fold_invalid_calls())
def test_unfold_fold_invalid_arguments_are_rejected_by_name(call):
    call.check()


# ---------------------------------------------------------------------------
# Geometry arguments anywhere in int64: an argument beyond 2**31 - 1 is a ValueError naming it;
# below that, a result of the exact output size (computed here with Python's unbounded ints) or,
# where that size is below 1, a ValueError naming an argument. Before the bound, int64 overflow
# in the geometry accepted impossible geometries (garbage results, a segfault in conv2d).
# ---------------------------------------------------------------------------

LIMIT = 2**31 - 1
HUGE = (LIMIT, LIMIT + 1, 2**32 + 1, 2**40, 2**62, 2**63 - 1)
GEOMETRY_NAMES = ("stride", "padding", "dilation", "kernel", "output_padding", "output_size",
                  "input", "weight")


def geometry_pairs(low):
    return st.lists(st.one_of(st.integers(low, 3), st.sampled_from(HUGE)), min_size=2,
                    max_size=2)


@budget(3)
# Found by this test: a segfault, a result for an impossible geometry, NumPy's "array is too
# big" naming no argument, and fold's output_size overflowing.
@example("conv2d", [2, 2**63 - 1], [2, 2**40], [1, 2**62], [0, 0], 4, 3, ())
@example("conv2d", [2**40, 3], [0, 2], [2**62, 2**63 - 1], [0, 0], 4, 2, ())
@example("conv_transpose2d", [1, 1], [0, 0], [2**63 - 1, 1], [2**62, 0], 3, 4, ())
@example("fold", [1, 1], [0, 0], [1, 1], [0, 0], 1, 1, 2**62)
@given(st.sampled_from(["conv2d", "conv_transpose2d", "unfold", "fold"]), geometry_pairs(1),
       geometry_pairs(0), geometry_pairs(1), geometry_pairs(0), st.integers(1, 4),
       st.integers(1, 4), st.sampled_from([(), LIMIT + 1, 2**40]))
def test_conv_huge_geometry_is_computed_exactly_or_rejected_by_name(op, stride, padding,
                                                                   dilation, extra, R, H, huge):
    """`extra` is output_padding for conv_transpose2d; `huge` replaces fold's output_size."""
    x = np.ones((1, 2, H, H + 1))
    kernel = (R, R + 1)
    args = dict(stride=stride, padding=padding, dilation=dilation)
    if op == "conv_transpose2d":
        args["output_padding"] = extra
        w = np.ones((2, 1) + kernel)
        sizes = [(n - 1) * s - 2 * p + d * (k - 1) + o + 1
                 for n, s, p, d, k, o in zip(x.shape[2:], stride, padding, dilation, kernel,
                                             extra)]
        valid = all(o < s or o < d for o, s, d in zip(extra, stride, dilation))
        call = lambda: F.conv_transpose2d(x, w, None, stride, padding, extra, 1, dilation)
        expect = (1, 1) + tuple(sizes)
    else:
        image = x.shape[2:]
        if op == "fold" and huge:
            image = (huge, H)
            args["output_size"] = image
        sizes = [(n + 2 * p - d * (k - 1) - 1) // s + 1
                 for n, s, p, d, k in zip(image, stride, padding, dilation, kernel)]
        valid = True
        if op == "conv2d":
            w = np.ones((1, 2) + kernel)
            call = lambda: F.conv2d(x, w, None, stride, padding, dilation)
            expect = (1, 1) + tuple(sizes)
        elif op == "unfold":
            call = lambda: F.unfold(x, kernel, dilation, padding, stride)
            expect = (1, 2 * R * (R + 1), sizes[0] * sizes[1])
        else:
            L = sizes[0] * sizes[1] if min(sizes) >= 1 and sizes[0] * sizes[1] < 10**5 else 1
            y = np.ones((1, 2 * R * (R + 1), L))
            call = lambda: F.fold(y, image, kernel, dilation, padding, stride)
            expect = (1, 2) + tuple(image)
    over = [name for name, v in args.items() if max(v) > LIMIT]
    if over:
        rejects(call, *over, exc=ValueError)
    elif not valid or min(sizes) < 1:
        rejects(call, *GEOMETRY_NAMES, exc=ValueError)
    elif np.prod([float(s) for s in sizes]) <= 1e5:
        out = call()
        assert out.shape == expect
        assert np.isfinite(out).all()
