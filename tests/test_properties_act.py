"""Property tests of the activations: relu, leaky_relu, elu, sigmoid, tanh, softplus, softmax
and log_softmax with their backwards, against fastconv/_opinfo/act.py on random shapes (0-d and
empty included), scales that reach the overflow guards, NaN/inf, every parameter sign, in-place, every
softmax dim; and random invalid calls rejected by name.
"""

import numpy as np
import pytest
from hypothesis import given, strategies as st

import fastconv.functional as F

from fastconv._opinfo import act as R
from _props import (Call, assert_close_nonfinite, bad_arrays, budget, data, dtypes, layouts,
                    relayout, seeds)
from _util import rtol_for

pytestmark = pytest.mark.usefixtures("poisoned_outputs")

shapes = st.lists(st.sampled_from([1, 1, 2, 3, 5, 0]), max_size=4).map(tuple)
# Small values, values past exp's float32 range and softplus's threshold, and specials.
scales = st.sampled_from([1.0, 1.0, 30.0, 1000.0])


def _values(seed, shape, dtype, scale, specials, layout="c"):
    x = np.asarray(data(seed, shape, np.float64) * scale)  # 0-d stays an array
    if specials and x.size:
        rng = np.random.default_rng(seed + 7)
        flat = x.reshape(-1)
        for v in (np.nan, np.inf, -np.inf, 0.0):
            flat[rng.integers(flat.size)] = v
    return relayout(np.asarray(x.astype(dtype)), layout)


reals = st.floats(-3, 3, allow_nan=False).map(lambda v: round(v, 3))

# From the activations' specs: name -> (forward, backward, reference, reference backward,
# parameter strategies).
ELEMENTWISE = {spec.name: (spec.functional(), spec.functional_backward(), spec.reference,
                           spec.reference_backward,
                           {k: reals.map(f) for k, f in spec.params.items()})
               for spec in R.ACTS}
INPLACE = tuple(spec.name for spec in R.ACTS if spec.inplace)


@st.composite
def elementwise_cases(draw):
    name = draw(st.sampled_from(sorted(ELEMENTWISE)))
    params = {k: draw(v) for k, v in ELEMENTWISE[name][4].items()}
    return dict(name=name, params=params, shape=draw(shapes), dtype=draw(dtypes),
                scale=draw(scales), specials=draw(st.booleans()), layout=draw(layouts),
                seed=draw(seeds), inplace=name in INPLACE and draw(st.booleans()))


@given(elementwise_cases())
def test_elementwise_activations_match_reference(c):
    fwd, bwd, ref, ref_bwd, _ = ELEMENTWISE[c["name"]]
    dt, kw = c["dtype"], c["params"]
    x = _values(c["seed"], c["shape"], dt, c["scale"], c["specials"], c["layout"])
    want = ref(x, **kw)
    rtol = 4 * rtol_for(dt)  # one transcendental function per element
    # Results below the smallest normal number may be flushed to zero (sigmoid(-88) in float32).
    atol = 4 * float(np.finfo(dt).tiny)
    if c["inplace"]:
        y = np.array(x, order="C")  # a C-contiguous copy (0-d stays 0-d)
        assert fwd(y, inplace=True, **kw) is y
        out = y
    else:
        before = x.copy()
        out = fwd(x, **kw)
        np.testing.assert_array_equal(x, before)  # the input is left alone
    assert out.dtype == dt and out.shape == x.shape
    assert_close_nonfinite(out, want, rtol, what=c["name"], atol=atol)

    g = data(c["seed"] + 1, c["shape"], dt, c["layout"])
    want = ref_bwd(g, x, **kw)
    # PyTorch's formulas, such as g * (1 - y) * y for sigmoid, lose the relative precision of
    # derivatives near 0 to cancellation (y close to 1): errors are measured against the
    # largest the gradient can be, |g| times the largest slope.
    slope = max([1.0] + [abs(v) for v in kw.values()] if c["name"] != "softplus" else [1.0])
    atol += rtol * slope * float(np.abs(g).max(initial=0))
    assert_close_nonfinite(bwd(g, x, **kw), want, rtol, what=c["name"] + "_backward", atol=atol)
    if c["name"] in ("sigmoid", "tanh"):  # from the forward's output, as the layers call it
        assert_close_nonfinite(bwd(g, output=fwd(x)), want, rtol, what="from output", atol=atol)


@st.composite
def softmax_cases(draw):
    shape = draw(shapes)
    nd = max(len(shape), 1)
    return dict(shape=shape, dim=draw(st.integers(-nd, nd - 1)), dtype=draw(dtypes),
                cast=draw(st.sampled_from([None, None, np.float32, np.float64, "float64"])),
                scale=draw(scales), specials=draw(st.sampled_from([False, False, True])),
                layout=draw(layouts), seed=draw(seeds), log=draw(st.booleans()))


@given(softmax_cases())
def test_softmax_log_softmax_match_reference(c):
    fwd, bwd = (F.log_softmax, F.log_softmax_backward) if c["log"] else (F.softmax,
                                                                         F.softmax_backward)
    ref, ref_bwd = (R.log_softmax_ref, R.log_softmax_backward_ref) if c["log"] else \
        (R.softmax_ref, R.softmax_backward_ref)
    x = _values(c["seed"], c["shape"], c["dtype"], c["scale"], c["specials"], c["layout"])
    dt = np.dtype(c["dtype"] if c["cast"] is None else c["cast"])
    y = fwd(x, dim=c["dim"], dtype=c["cast"])
    assert y.dtype == dt
    D = c["shape"][c["dim"]] if c["shape"] else 1
    rtol = rtol_for(dt, D) * (4 if c["log"] else 1)
    want = ref(x.astype(dt), c["dim"])
    assert_close_nonfinite(y, want, rtol, what="forward")
    if c["specials"]:
        return  # NaN rows make the backward's NaN pattern the kernel's choice of order
    g = data(c["seed"] + 1, c["shape"], dt, c["layout"])
    # The backward takes the output; the reference gets fastconv's output too, as the math is
    # a function of it (the forward was checked just above). The gradient is a difference of
    # terms as large as |g| (D |g| for log_softmax's sum): near one-hot rows cancel to far
    # below that, so the error is measured against it.
    atol = rtol_for(dt, D) * float(np.abs(g).max(initial=0)) * (D if c["log"] else 1)
    assert_close_nonfinite(bwd(g, y, c["dim"]), ref_bwd(g, y, c["dim"]), rtol_for(dt, D),
                           what="backward", atol=atol)


# ---------------------------------------------------------------------------
# Invalid calls
# ---------------------------------------------------------------------------

@st.composite
def act_invalid_calls(draw):
    name = draw(st.sampled_from(sorted(ELEMENTWISE) + ["softmax", "log_softmax"]))
    backward = draw(st.booleans())
    dt, seed = draw(dtypes), draw(seeds)
    shape = draw(st.sampled_from([(3,), (2, 4), (2, 1, 3)]))
    x = data(seed, shape, dt)
    soft = name in ("softmax", "log_softmax")
    params = ["dim"] if soft else list(ELEMENTWISE[name][4])
    if backward:
        fn = getattr(F, name + "_backward")
        kw = dict(grad_output=data(seed + 1, shape, dt))
        kw["output" if soft else "input"] = x
        args = ["grad_output", "output" if soft else "input"] + params
    else:
        fn = getattr(F, name)
        kw = dict(input=x)
        args = ["input"] + params + (["inplace"] if name in INPLACE else []) + \
            (["dtype"] if soft else [])
    if soft:
        kw["dim"] = 1 if len(shape) > 1 else 0
    arg = draw(st.sampled_from(["none"] + args))
    names = (arg,)
    if arg == "none":
        exc = None
    elif arg in ("input", "output"):
        kind = draw(st.sampled_from(["nonarray", "dtype", "strided_readonly_inplace",
                                     "readonly_inplace"]
                                    if "inplace" in args else ["nonarray", "dtype"]))
        if kind == "strided_readonly_inplace":  # a writable strided view is written through
            strided = data(seed, shape + (2,), dt)
            strided.flags.writeable = False
            kw.update(input=strided[..., 0], inplace=True)
            exc = ValueError
        elif kind == "readonly_inplace":
            x.flags.writeable = False
            kw.update(inplace=True)
            exc = ValueError
        else:
            kw[arg], exc = draw(bad_arrays(shape, dt, kinds=(kind,)))
            names = (arg, "grad_output")  # a refused dtype may be seen on either first
    elif arg == "grad_output":
        kw[arg], exc = draw(bad_arrays(shape, dt, kinds=("nonarray", "dtype", "otherfloat",
                                                         "ndim", "shape")))
    elif arg == "dim":
        nd = len(shape)
        kw[arg], exc = draw(st.sampled_from(
            [(nd, ValueError), (-nd - 1, ValueError), (nd + 5, ValueError), (None, TypeError),
             (1.0, TypeError), (True, TypeError), ("0", TypeError), ((0,), TypeError),
             (2**63, ValueError)]))
    elif arg == "dtype":
        kw[arg], exc = draw(st.sampled_from([(np.int32, TypeError), (np.float16, TypeError),
                                             ("float16", TypeError), ("floaty", TypeError),
                                             (np.complex64, TypeError), (3, TypeError)]))
    elif arg == "inplace":
        kw[arg], exc = draw(st.sampled_from([(1, TypeError), ("yes", TypeError),
                                             (None, TypeError)]))
    elif arg == "beta" and draw(st.booleans()):
        kw[arg], exc = draw(st.sampled_from([0, 0.0, -0.0])), ValueError
    else:  # a real-valued parameter
        kw[arg], exc = draw(st.sampled_from(["0.1", None, True, 1j, [0.1], np.ones(2)])), TypeError
    return Call(fn, kw, exc, names)


@budget(3)
@given(act_invalid_calls())
def test_act_invalid_arguments_are_rejected_by_name(call):
    call.check()
