"""Property tests of batch_norm, local_response_norm and dropout: batch norm in training and
evaluation mode with and without running statistics, weight or bias, against reference_norm.py
(the running statistics updated in place as PyTorch does); local response norm for any window
size; dropout's structure (a 0/1 mask, exact scaling, p = 0 and 1, evaluation mode, in place,
one mask per generator seed whatever the thread count) and statistics; and random invalid calls
rejected by name.
"""

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, strategies as st

import fastconv
import fastconv.functional as F

from _props import (Call, NOT_REALS, assert_close_nonfinite, bad_arrays, budget, data, dtypes,
                    layouts, readonly, relayout, seeds)
from _util import assert_close, rtol_for
from fastconv._opinfo.norm import (batch_norm_backward_ref, batch_norm_ref,
                                   local_response_norm_backward_ref, local_response_norm_ref)
from fastconv._opinfo.dropout import dropout2d_ref, dropout_ref

pytestmark = pytest.mark.usefixtures("poisoned_outputs")


@st.composite
def batch_norm_cases(draw):
    training = draw(st.booleans())
    C = draw(st.integers(1, 4))
    rest = tuple(draw(st.lists(st.integers(1, 4), max_size=3)))
    N = draw(st.integers(1, 3))
    if training and N * int(np.prod(rest)) < 2:  # one value per channel has no variance
        N = 2
    return dict(shape=(N, C) + rest, training=training, running=draw(st.booleans()) or not training,
                weight=draw(st.booleans()), bias=draw(st.booleans()),
                momentum=draw(st.sampled_from([0.1, 0.0, 1.0, 0.5, 0.01])),
                eps=draw(st.sampled_from([1e-5, 1e-3, 0.1])), mean=draw(st.sampled_from([0, 5])),
                dtype=draw(dtypes), layout=draw(layouts), seed=draw(seeds))


@given(batch_norm_cases(), st.lists(st.booleans(), min_size=3, max_size=3), st.booleans())
def test_batch_norm_matches_reference_with_running_stats(c, mask, accumulate):
    s, dt, C = c["seed"], c["dtype"], c["shape"][1]
    x = relayout((data(s, c["shape"], np.float64) + c["mean"]).astype(dt), c["layout"])
    rm = data(s + 1, (C,), dt) if c["running"] else None
    rv = (np.abs(data(s + 2, (C,), np.float64)) + 0.5).astype(dt) if c["running"] else None
    w = data(s + 3, (C,), dt) if c["weight"] else None
    b = data(s + 4, (C,), dt) if c["bias"] else None
    args = dict(training=c["training"], momentum=c["momentum"], eps=c["eps"])
    out_ref, mean_ref, invstd_ref, rm_ref, rv_ref = batch_norm_ref(x, rm, rv, w, b, **args)
    out, mean, invstd = F.batch_norm(x, rm, rv, w, b, **args, return_stats=True)
    n = x.size // C
    rtol = 10 * rtol_for(dt, n)  # two passes over n values, then a square root
    assert_close(out, out_ref, rtol, what="out")
    assert_close(mean, mean_ref, rtol, what="save_mean")
    assert_close(invstd, invstd_ref, rtol, what="save_invstd")
    if c["running"]:  # updated in place in training, untouched in evaluation
        assert_close(rm, rm_ref, rtol, what="running_mean")
        assert_close(rv, rv_ref, rtol, what="running_var")

    g = data(s + 5, c["shape"], dt, c["layout"])
    refs = list(batch_norm_backward_ref(g, x, w, mean_ref, invstd_ref, c["training"]))
    gw = gb = None
    if accumulate:
        gw, gb = data(s + 6, (C,), dt), data(s + 7, (C,), dt)
        refs[1], refs[2] = refs[1] + gw, refs[2] + gb
    got = F.batch_norm_backward(g, x, w, mean, invstd, c["training"], output_mask=tuple(mask),
                                grad_weight=gw, grad_bias=gb)
    # In training, grad_input = w * invstd * (g - mean(g) - xhat * mean(g * xhat)) cancels
    # (to exactly 0 for two values per channel): its error is measured against the terms.
    rtol = 10 * rtol_for(dt, n)
    scales = [rtol * float(np.abs(invstd_ref).max() * np.abs(g).max(initial=0)
                           * (1.0 if w is None else np.abs(w).max())), 0.0, 0.0]
    for a, r, need, atol, name in zip(got, refs, mask, scales,
                                      ("grad_input", "grad_weight", "grad_bias")):
        if need and not (name == "grad_weight" and w is None):  # no weight: no gradient
            assert_close(a, r, rtol, atol, what=name)
        else:
            assert a is None, name


@given(st.tuples(st.integers(1, 2), st.integers(1, 6)).flatmap(
           lambda nc: st.tuples(st.just(nc), st.lists(st.integers(1, 3), min_size=1, max_size=2))),
       st.integers(1, 8), st.sampled_from([1e-4, 0.1, 1.0]), st.sampled_from([0.75, 0.5, 2.0, 0.0]),
       st.sampled_from([1.0, 2.0, 0.5]), dtypes, layouts, seeds)
def test_local_response_norm_matches_reference(shape, size, alpha, beta, k, dt, layout, seed):
    (N, C), rest = shape
    x = data(seed, (N, C) + tuple(rest), dt, layout)
    rtol = 10 * rtol_for(dt, size)
    assert_close(F.local_response_norm(x, size, alpha, beta, k),
                 local_response_norm_ref(x, size, alpha, beta, k), rtol, what="forward")
    g = data(seed + 1, x.shape, dt, layout)
    assert_close(F.local_response_norm_backward(g, x, size, alpha, beta, k),
                 local_response_norm_backward_ref(g, x, size, alpha, beta, k), rtol,
                 what="backward")


# ---------------------------------------------------------------------------
# dropout
# ---------------------------------------------------------------------------

@st.composite
def dropout_cases(draw, min_dims=0, max_dims=4):
    return dict(shape=tuple(draw(st.lists(st.sampled_from([1, 2, 3, 7, 0]), min_size=min_dims,
                                          max_size=max_dims))),
                p=draw(st.sampled_from([0.0, 1.0, 0.5]) | st.floats(0, 1)),
                training=draw(st.sampled_from([True, True, False])), dtype=draw(dtypes),
                layout=draw(layouts), seed=draw(seeds), inplace=draw(st.booleans()),
                specials=draw(st.booleans()))


def _expected_dropout(x0, mask, c):
    """(p as the call applied it, its scale, the exact output): x * (1 / (1 - p)) with the
    scale rounded to the dtype where kept, as PyTorch, x * 0 where dropped (NaN for an inf);
    evaluation is dropout with p = 0, the identity."""
    p = c["p"] if c["training"] else 0.0
    if p == 0:
        assert mask.all()
    if p == 1:
        assert not mask.any()
    scale = x0.dtype.type(1 / (1 - p)) if p < 1 else x0.dtype.type(0)
    with np.errstate(invalid="ignore"):
        return p, scale, np.where(mask == 1, x0 * scale, x0 * x0.dtype.type(0))


@given(dropout_cases())
def test_dropout_structure_scaling_and_reproducibility(c):
    x = np.asarray(data(c["seed"], c["shape"], c["dtype"], c["layout"]))
    if c["specials"] and x.size:
        x.reshape(-1)[:: max(1, x.size // 3)] = np.inf  # inf * 0 is NaN where dropped
    x0 = x.copy()
    gen = np.random.default_rng(c["seed"])
    out, mask = F.dropout(x, c["p"], c["training"], c["inplace"], generator=gen, return_mask=True)
    assert out.dtype == x.dtype and out.shape == x.shape
    assert mask.dtype == np.uint8 and mask.shape == x.shape and set(np.unique(mask)) <= {0, 1}
    if c["inplace"]:
        assert out is x
    else:
        assert out is not x
        np.testing.assert_array_equal(x, x0)
    p, scale, want = _expected_dropout(x0, mask, c)
    np.testing.assert_array_equal(out, want)
    with np.errstate(invalid="ignore"):
        ref = dropout_ref(x0, mask, p)
    assert_close_nonfinite(out, ref, rtol_for(c["dtype"]))

    g = data(c["seed"] + 1, c["shape"], c["dtype"], c["layout"])
    dx = F.dropout_backward(g, mask, p)
    np.testing.assert_array_equal(dx, np.where(mask == 1, g * scale, g * x.dtype.type(0)))
    np.testing.assert_array_equal(F.dropout_backward(g, mask.astype(bool), p), dx)

    # One mask per generator state, whatever the thread count.
    before = fastconv.get_num_threads()
    try:
        fastconv.set_num_threads(1 if before > 1 else 2)
        again = F.dropout(x0, c["p"], c["training"], generator=np.random.default_rng(c["seed"]),
                          return_mask=True)[1]
    finally:
        fastconv.set_num_threads(before)
    np.testing.assert_array_equal(again, mask)


@given(dropout_cases(min_dims=2, max_dims=5))
def test_dropout2d_drops_whole_planes_with_exact_scaling(c):
    """Each (sample, channel) plane is kept, times 1 / (1 - p) rounded to the dtype, or zeroed
    (a dropped inf gives NaN); the mask is (N, C, 1, ...); one mask per generator state; the
    backward is grad_output times the same factor."""
    x = np.asarray(data(c["seed"], c["shape"], c["dtype"], c["layout"]))
    if c["specials"] and x.size:
        x.reshape(-1)[:: max(1, x.size // 3)] = np.inf
    x0 = x.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # PyTorch's warnings for 3-D and 5-D
        out, mask = F.dropout2d(x, c["p"], c["training"], c["inplace"],
                                generator=np.random.default_rng(c["seed"]), return_mask=True)
        again = F.dropout2d(x0, c["p"], c["training"],
                            generator=np.random.default_rng(c["seed"]), return_mask=True)[1]
    plane = x.shape[:2] + (1,) * (x.ndim - 2)
    assert out.dtype == x.dtype and out.shape == x.shape
    assert mask.dtype == np.uint8 and mask.shape == plane and set(np.unique(mask)) <= {0, 1}
    assert (out is x) == c["inplace"]
    if not c["inplace"]:
        np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(again, mask)
    p, scale, want = _expected_dropout(x0, mask, c)
    np.testing.assert_array_equal(out, want)
    with np.errstate(invalid="ignore"):
        assert_close_nonfinite(out, dropout2d_ref(x0, mask, p), rtol_for(c["dtype"]))
        g = data(c["seed"] + 1, c["shape"], c["dtype"], c["layout"])
        np.testing.assert_array_equal(F.dropout2d_backward(g, mask, p),
                                      np.where(mask == 1, g * scale, g * x.dtype.type(0)))


@budget(0.5)
@given(st.floats(0.02, 0.98), st.integers(2_000, 20_000), seeds)
def test_dropout_mask_statistics(p, n, seed):
    """The kept fraction is 1 - p and neighbours are independent, within 6 standard deviations
    (a false alarm about once in 10**8 examples)."""
    mask = F.dropout(np.ones(n), p, generator=np.random.default_rng(seed), return_mask=True)[1]
    assert abs(mask.mean() - (1 - p)) < 6 * math.sqrt(p * (1 - p) / n)
    both = (mask[1:] & mask[:-1]).mean()
    q = (1 - p) ** 2
    assert abs(both - q) < 6 * math.sqrt(q * (1 - q) / (n - 1)) * 2


# ---------------------------------------------------------------------------
# Invalid calls
# ---------------------------------------------------------------------------

NORM_OPS = ["batch_norm", "batch_norm_backward", "local_response_norm",
            "local_response_norm_backward", "dropout", "dropout_backward"]


@pytest.mark.parametrize("call, error, match", [
    (lambda: F.dropout2d([[1.0]], 0.5), TypeError, "input must be a numpy.ndarray"),
    (lambda: F.dropout2d(np.ones((2, 3), np.int64), 0.5), TypeError, "float32 or float64"),
    (lambda: F.dropout2d(np.ones(4), 0.5), ValueError, "at least 2 dimensions"),
    (lambda: F.dropout2d(np.ones((2, 3)), 1.5), ValueError, r"p \(the probability"),
    (lambda: F.dropout2d(np.ones((2, 3)), "0.5"), TypeError, "p must be"),
    (lambda: F.dropout2d_backward(np.ones((2, 3, 4, 4)), [1, 0], 0.5), TypeError, "mask"),
    (lambda: F.dropout2d_backward(np.ones((2, 3, 4, 4)), np.ones((2, 3), np.uint8), 0.5),
     ValueError, r"mask must have shape \(N, C, 1, ...\) \(2, 3, 1, 1\)"),
])
def test_dropout2d_refuses_bad_calls_by_name(call, error, match):
    with pytest.raises(error, match=match):
        call()


@st.composite
def norm_invalid_calls(draw):
    op = draw(st.sampled_from(NORM_OPS))
    dt, seed = draw(dtypes), draw(seeds)
    shape = draw(st.sampled_from([(3, 2), (2, 3, 4), (2, 2, 3, 3)]))
    C = shape[1]
    x = data(seed, shape, dt)
    vec = lambda k: data(seed + k, (C,), dt)
    if op == "batch_norm":
        kw = dict(input=x, running_mean=vec(1), running_var=np.abs(vec(2)) + 1, weight=vec(3),
                  bias=vec(4), training=draw(st.booleans()), momentum=0.1, eps=1e-5)
        arrays = ("running_mean", "running_var", "weight", "bias")
        scalars = ("momentum", "eps")
    elif op == "batch_norm_backward":
        kw = dict(grad_output=data(seed + 5, shape, dt), input=x, weight=vec(3),
                  save_mean=vec(1), save_invstd=np.abs(vec(2)) + 1, training=draw(st.booleans()))
        arrays = ("grad_output", "weight", "save_mean", "save_invstd")
        scalars = ()
    elif op.startswith("local_response_norm"):
        shape = shape if len(shape) >= 3 else shape + (2,)
        x = data(seed, shape, dt)
        kw = dict(input=x, size=2, alpha=1e-4, beta=0.75, k=1.0)
        if op.endswith("backward"):
            kw = dict(grad_output=data(seed + 5, shape, dt), **kw)
        arrays = ("grad_output",) if op.endswith("backward") else ()
        scalars = ("alpha", "beta", "k")
    elif op == "dropout":
        kw = dict(input=x, p=0.5, training=True, inplace=False)
        arrays, scalars = (), ()
    else:
        kw = dict(grad_output=x, mask=np.ones(shape, np.uint8), p=0.5)
        arrays, scalars = (), ()
    args = ["none", "input"] + list(arrays) + list(scalars) + [
        a for a in ("training", "size", "p", "mask", "generator", "inplace", "output_mask")
        if a in kw or (a == "generator" and op == "dropout")
        or (a == "output_mask" and op == "batch_norm_backward")]
    if op == "dropout_backward":
        args.remove("input")
        args.append("grad_output")
    arg = draw(st.sampled_from(args))
    names = (arg,)
    if arg == "none":
        exc = None
    elif arg == "input":
        kinds = ("nonarray", "dtype") + (("ndim",) if op != "dropout" else ())
        kw[arg], exc = draw(bad_arrays(shape, dt, kinds=kinds))
        if exc is ValueError:
            kw[arg] = data(seed, shape[:1] if op.startswith("batch") else shape[:2], dt)
        names = ("input", "grad_output")
    elif arg in arrays or (arg == "grad_output" and op == "dropout_backward"):
        ref_shape = shape if arg == "grad_output" else (C,)
        if op == "dropout_backward":  # any float dtype: nothing to mismatch
            kinds = ("nonarray", "dtype")
        elif arg in ("weight", "bias", "running_mean", "running_var"):  # None is valid
            kinds = ("dtype", "otherfloat", "shape")
        else:
            kinds = ("nonarray", "dtype", "otherfloat", "shape")
        kw[arg], exc = draw(bad_arrays(ref_shape, dt, kinds=kinds))
        if op == "dropout_backward":
            names = ("grad_output", "mask")
    elif arg == "training":
        kw[arg], exc = draw(st.sampled_from(["False", 1, None, 0.0])), TypeError
    elif arg == "output_mask":
        kw[arg], exc = (True, True), TypeError
    elif arg in ("momentum", "eps", "alpha", "beta", "k"):
        if arg == "eps" and draw(st.booleans()):
            kw.update(eps=draw(st.sampled_from([-1e-5, -1.0])), training=False)
            exc = ValueError
        else:
            kw[arg], exc = draw(st.sampled_from(NOT_REALS)), TypeError
    elif arg == "size":
        kw[arg], exc = draw(st.sampled_from([(0, ValueError), (-2, ValueError),
                                             (1.5, TypeError), (None, TypeError),
                                             (True, TypeError), (2**64, ValueError)]))
    elif arg == "p":
        kw[arg], exc = draw(st.sampled_from([(-0.1, ValueError), (1.01, ValueError),
                                             (float("nan"), ValueError), (float("inf"), ValueError),
                                             ("0.5", TypeError), (None, TypeError),
                                             (True, TypeError)]))
    elif arg == "mask":
        kw[arg], exc = draw(st.sampled_from([
            (np.ones(shape, np.float32), TypeError), (np.ones(shape, np.int64), TypeError),
            (np.ones(shape[:-1], np.uint8), ValueError), (None, TypeError),
            (np.ones(shape, np.uint8).tolist(), TypeError)]))
    elif arg == "generator":
        kw[arg], exc = draw(st.sampled_from([3, "seed", np.random.RandomState(0)])), TypeError
    else:  # inplace
        kw[arg], exc = draw(st.sampled_from(["no", 1, None])), TypeError
    if op == "batch_norm" and arg in ("running_mean", "running_var") and exc is ValueError:
        names = ("running_mean", "running_var")
    if op == "batch_norm" and kw["training"] and arg == "none" and draw(st.booleans()):
        kw["running_mean"], kw["running_var"] = readonly(kw["running_mean"]), kw["running_var"]
        exc, names = ValueError, ("running_mean",)  # updated in place: must be writable
    return Call(getattr(F, op), kw, exc, names)


@budget(4)
@given(norm_invalid_calls())
def test_norm_invalid_arguments_are_rejected_by_name(call):
    call.check()
