"""Property tests of the losses: cross_entropy (class indices with weights, ignore_index and
label smoothing; class probabilities), mse_loss and multi_margin_loss, every reduction, with
their backwards, against reference_loss.py; and random invalid calls rejected by name.
"""

import numpy as np
import pytest
from hypothesis import given, strategies as st

import fastconv.functional as F

from _props import (Call, assert_close_nonfinite, bad_arrays, budget, data, dtypes, layouts,
                    seeds)
from _util import rtol_for
from fastconv._opinfo.loss import (cross_entropy_backward_ref, cross_entropy_ref, loss_shape,
                                   mse_loss_backward_ref, mse_loss_ref,
                                   multi_margin_loss_backward_ref, multi_margin_loss_ref)

pytestmark = pytest.mark.usefixtures("poisoned_outputs")

reductions = st.sampled_from(["none", "mean", "sum"])


def _upstream(seed, shape, reduction, dtype, as_float):
    """grad_output: per element for "none", else a 0-d array or a Python float."""
    g = data(seed, shape if reduction == "none" else (), dtype)
    return float(g) if reduction != "none" and as_float else g


@st.composite
def cross_entropy_cases(draw):
    C = draw(st.integers(1, 6))
    form = draw(st.sampled_from(["unbatched", "2d", "2d", "nd"]))
    N = draw(st.sampled_from([1, 2, 5, 0]))
    spatial = tuple(draw(st.lists(st.integers(1, 3), min_size=1, max_size=2)))
    shape = (C,) if form == "unbatched" else (N, C) if form == "2d" else (N, C) + spatial
    return dict(shape=shape, C=C, probs=draw(st.booleans()), weight=draw(st.booleans()),
                ignore=draw(st.sampled_from([None, -100, 0, C - 1, 7])),
                smoothing=draw(st.sampled_from([0.0, 0.0, 0.1, 1.0]) | st.floats(0, 1)),
                reduction=draw(reductions), uint8=draw(st.booleans()),
                scale=draw(st.sampled_from([1.0, 3.0, 50.0])), dtype=draw(dtypes),
                layout=draw(layouts), seed=draw(seeds), as_float=draw(st.booleans()))


@given(cross_entropy_cases())
def test_cross_entropy_matches_reference(c):
    s, dt, C = c["seed"], c["dtype"], c["C"]
    x = data(s, c["shape"], dt, c["layout"]) * dt(c["scale"])
    rng = np.random.default_rng(s + 1)
    if c["probs"]:
        z = rng.random(c["shape"])
        axis = 0 if len(c["shape"]) == 1 else 1
        t = (z / z.sum(axis=axis, keepdims=True)).astype(dt)
    else:
        t = rng.integers(0, C, loss_shape(c["shape"]))
        if c["ignore"] is not None:
            t[rng.random(t.shape) < 0.3] = c["ignore"]
        if c["uint8"] and 0 <= t.min(initial=0) and t.max(initial=0) < 256:
            t = t.astype(np.uint8)  # torch's Byte targets
    ii = -100 if c["ignore"] is None else c["ignore"]
    if c["probs"] and ii >= 0:
        with pytest.raises(ValueError, match="ignore_index must be negative"):
            F.cross_entropy(x, t, ignore_index=ii)
        ii = -100  # probabilities take no class to ignore, as in torch
    w = (rng.random(C) + 0.2).astype(dt) if c["weight"] else None
    kw = dict(ignore_index=ii, reduction=c["reduction"], label_smoothing=c["smoothing"])
    out = F.cross_entropy(x, t, w, **kw)
    assert out.dtype == dt and out.shape == (loss_shape(c["shape"]) if c["reduction"] == "none"
                                             else ())
    rows = max(1, int(np.prod(loss_shape(c["shape"]))))
    if c["probs"]:
        divisor = rows
    else:
        kept = t[t != ii].astype(np.int64)
        divisor = float(np.sum(w[kept])) if w is not None else kept.size
    wmax = 1.0 if w is None else float(w.max())
    per_row = {"none": 1.0, "sum": rows, "mean": rows / divisor if divisor else 1.0}
    n = int(np.prod(c["shape"])) if c["reduction"] != "none" else C
    rtol = 10 * rtol_for(dt, n)  # log-sum-exp, then a weighted mean
    # A confident row's loss, log-sum-exp minus the target logit, cancels to far below the
    # logits (PyTorch's float32 gives 0): errors are measured against the logits' scale.
    atol = rtol * float(np.abs(x).max(initial=0)) * wmax * per_row[c["reduction"]]
    assert_close_nonfinite(out, cross_entropy_ref(x, t, w, **kw), rtol, what="forward",
                           atol=atol)
    g = _upstream(s + 2, loss_shape(c["shape"]), c["reduction"], dt, c["as_float"])
    # Each row's gradient is s_row * w * (softmax - target), with softmax - 1 cancelling for a
    # confident row: errors are measured against s_row * max(w).
    row = float(np.abs(g).max(initial=0)) * wmax
    if c["reduction"] == "mean" and divisor:
        row /= divisor
    rtol = 10 * rtol_for(dt, C)
    assert_close_nonfinite(F.cross_entropy_backward(g, x, t, w, **kw),
                           cross_entropy_backward_ref(g, x, t, w, **kw), rtol, what="backward",
                           atol=rtol * row)


@given(st.lists(st.sampled_from([1, 2, 3, 5, 0]), max_size=4).map(tuple), reductions, dtypes,
       layouts, seeds, st.booleans())
def test_mse_loss_matches_reference(shape, reduction, dt, layout, seed, as_float):
    x, y = data(seed, shape, dt, layout), data(seed + 1, shape, dt, layout)
    out = F.mse_loss(x, y, reduction=reduction)
    assert out.dtype == dt and out.shape == (shape if reduction == "none" else ())
    n = max(1, int(np.prod(shape)))
    assert_close_nonfinite(out, mse_loss_ref(x, y, reduction), rtol_for(dt, n), what="forward")
    g = _upstream(seed + 2, shape, reduction, dt, as_float)
    assert_close_nonfinite(F.mse_loss_backward(g, x, y, reduction),
                           mse_loss_backward_ref(g, x, y, reduction), 4 * rtol_for(dt),
                           what="backward")


@st.composite
def multi_margin_cases(draw):
    C = draw(st.integers(1, 6))
    form = draw(st.sampled_from(["batched", "batched", "row", "row1"]))
    N = draw(st.sampled_from([1, 2, 5, 0])) if form == "batched" else 1
    return dict(C=C, N=N, form=form, p=draw(st.sampled_from([1, 2])),
                margin=draw(st.sampled_from([1.0, 0.0, 0.5, -1.0, 3.0])),
                weight=draw(st.booleans()), reduction=draw(reductions), dtype=draw(dtypes),
                layout=draw(layouts), seed=draw(seeds), as_float=draw(st.booleans()))


@given(multi_margin_cases())
def test_multi_margin_loss_matches_reference(c):
    s, dt, C, N = c["seed"], c["dtype"], c["C"], c["N"]
    x = data(s, (N, C) if c["form"] == "batched" else (C,), dt, c["layout"])
    rng = np.random.default_rng(s + 1)
    t = rng.integers(0, C, (N,) if c["form"] != "row" else ())
    w = (rng.random(C) + 0.2).astype(dt) if c["weight"] else None
    kw = dict(p=c["p"], margin=c["margin"], weight=w, reduction=c["reduction"])
    out = F.multi_margin_loss(x, t, **kw)
    assert out.dtype == dt and out.shape == (t.shape if c["reduction"] == "none" else ())
    rtol = 4 * rtol_for(dt, C * max(N, 1))
    assert_close_nonfinite(out, multi_margin_loss_ref(x, t, **kw), rtol, what="forward")
    g = _upstream(s + 2, t.shape, c["reduction"], dt, c["as_float"])
    assert_close_nonfinite(F.multi_margin_loss_backward(g, x, t, **kw),
                           multi_margin_loss_backward_ref(g, x, t, **kw), rtol, what="backward")


# ---------------------------------------------------------------------------
# Invalid calls
# ---------------------------------------------------------------------------

LOSSES = ["cross_entropy", "mse_loss", "multi_margin_loss"]


@st.composite
def loss_invalid_calls(draw):
    op = draw(st.sampled_from(LOSSES))
    backward = draw(st.booleans())
    dt, seed = draw(dtypes), draw(seeds)
    N, C = draw(st.integers(1, 3)), 4
    x = data(seed, (N, C), dt)
    reduction = draw(reductions)
    if op == "mse_loss":
        kw = dict(input=x, target=data(seed + 1, (N, C), dt), reduction=reduction)
        per_item = (N, C)
    else:
        kw = dict(input=x, target=np.arange(N) % C, weight=data(seed + 2, (C,), dt) + 2,
                  reduction=reduction)
        per_item = (N,)
        if op == "cross_entropy":
            kw.update(ignore_index=-100, label_smoothing=0.1)
        else:
            kw.update(p=1, margin=1.0)
    args = ["none", "input", "target", "reduction"] + [
        a for a in ("weight", "ignore_index", "label_smoothing", "p", "margin") if a in kw]
    if backward:
        kw["grad_output"] = data(seed + 3, per_item if reduction == "none" else (), dt)
        args.append("grad_output")
    arg = draw(st.sampled_from(args))
    names = (arg,)
    if arg == "none":
        exc = None
    elif arg == "input":
        kinds = ("nonarray", "dtype") + (("ndim",) if op == "multi_margin_loss" else ())
        kw[arg], exc = draw(bad_arrays(x.shape, dt, kinds=kinds))
        if exc is ValueError:
            kw[arg] = data(seed, (N, C, 2, 1), dt)
        names = ("input", "target", "grad_output", "weight")
    elif arg == "target":
        if op == "mse_loss":
            kw[arg], exc = draw(bad_arrays((N, C), dt))
            names = ("target", "input")
        else:
            kind = draw(st.sampled_from(["range", "range", "shape", "dtype", "nonarray"]))
            if kind == "range":
                bad = draw(st.sampled_from([C, -1, 2**40, -(2**63)]))
                t = np.arange(N) % C
                t[draw(st.integers(0, N - 1))] = bad
                kw[arg], exc = t, ValueError
            elif kind == "shape":
                kw[arg], exc = np.zeros(draw(st.sampled_from([(N + 1,), (N, 1), (N, C + 1)])),
                                        np.int64), ValueError
            elif kind == "dtype":
                kw[arg], exc = np.zeros(N, draw(st.sampled_from(
                    [np.int32, np.float16, np.bool_, np.complex64]
                    + ([np.float32, np.float64] if op == "multi_margin_loss" else [])))), TypeError
            else:
                kw[arg], exc = draw(st.sampled_from([[0] * N, None, 0, "0"])), TypeError
    elif arg == "reduction":
        kw[arg], exc = draw(st.sampled_from([("avg", ValueError), ("Mean", ValueError),
                                             ("", ValueError), (None, TypeError),
                                             (0, TypeError)]))
    elif arg == "weight":
        kw[arg], exc = draw(bad_arrays((C,), dt, kinds=("nonarray", "dtype", "otherfloat", "ndim",
                                                        "shape")))
    elif arg == "ignore_index":
        kw[arg], exc = draw(st.sampled_from([(1.0, TypeError), ("x", TypeError), (None, TypeError),
                                             (True, TypeError), (2**64, ValueError)]))
    elif arg == "label_smoothing":
        kw[arg], exc = draw(st.sampled_from([(-0.1, ValueError), (1.5, ValueError),
                                             (float("nan"), ValueError), ("0.1", TypeError),
                                             (None, TypeError)]))
    elif arg == "p":
        kw[arg], exc = draw(st.sampled_from([(3, ValueError), (0, ValueError), (-1, ValueError),
                                             (2**40, ValueError), (2**64, ValueError),
                                             (1.5, ValueError), (True, TypeError),
                                             ("1", TypeError)]))
    elif arg == "margin":
        kw[arg], exc = draw(st.sampled_from(["1", None, True, [1.0]])), TypeError
    else:  # grad_output
        kw[arg], exc = draw(bad_arrays(per_item if reduction == "none" else (), dt,
                                       kinds=("dtype", "otherfloat", "ndim")))
    fn = getattr(F, op + "_backward" if backward else op)
    if backward:
        kw = dict(grad_output=kw.pop("grad_output"), **kw)
    return Call(fn, kw, exc, names)


@budget(4)
@given(loss_invalid_calls())
def test_loss_invalid_arguments_are_rejected_by_name(call):
    call.check()
