"""Property tests of every layer in fastconv.nn: random layers (and the residual / Inception
blocks built from them) run forward and backward and are compared with the float64 references
composed by a small interpreter below, which knows each layer's math from fastconv/_opinfo
and only reads the module's arguments, parameters and children. Parameter gradients must
accumulate over backward calls and skip frozen parameters; losses are checked the same way;
random wrong inputs must be rejected naming the layer.
"""

import numpy as np
from hypothesis import given, strategies as st

import fastconv
from fastconv import nn

from fastconv._opinfo import act as RA
from fastconv._opinfo import pool as RP
from _props import budget, dtypes, rejects, relayout, seeds, layouts
from _util import assert_close, rand, rtol_for
from fastconv._opinfo.conv import conv2d_backward_ref, conv2d_ref
from fastconv._opinfo.conv import conv_transpose2d_backward_ref, conv_transpose2d_ref
from fastconv._opinfo.dense import linear_ref, linear_backward_ref
from fastconv._opinfo.loss import (cross_entropy_backward_ref, cross_entropy_ref,
                                   mse_loss_backward_ref, mse_loss_ref,
                                   multi_margin_loss_backward_ref, multi_margin_loss_ref)
from fastconv._opinfo.norm import (batch_norm_backward_ref, batch_norm_ref,
                                   local_response_norm_backward_ref, local_response_norm_ref)
from fastconv._opinfo.dropout import dropout2d_ref, dropout_ref


# ---------------------------------------------------------------------------
# The reference interpreter. forward(m, x) -> (y, cache); backward(m, g, cache, grads) -> dx,
# adding each parameter's gradient into grads[id(parameter)].
# ---------------------------------------------------------------------------

def _p(param):
    return None if param is None else np.asarray(param.data, dtype=np.float64)


def _add(grads, param, value):
    if param is not None:
        grads[id(param)] = grads.get(id(param), 0.0) + value


def _pool_kw(m, dilation=True, padding=True, ceil=True):
    kw = dict(kernel_size=m.kernel_size, stride=m.stride)
    if padding:
        kw["padding"] = m.padding
    if dilation:
        kw["dilation"] = m.dilation
    if ceil:
        kw["ceil_mode"] = m.ceil_mode
    return kw


# module class -> (reference, reference backward, the module's keyword arguments), from the
# activations' specs
ELEMENTWISE = {getattr(nn, spec.module): (spec.reference, spec.reference_backward,
                                          lambda m, spec=spec: {k: getattr(m, k)
                                                                for k in spec.params})
               for spec in RA.ACTS}


# Batch norm's running statistics after the reference forward, by id of the module.
RUNNING = {}


def forward(m, x):
    t = type(m)
    if t in ELEMENTWISE:
        return ELEMENTWISE[t][0](x, **ELEMENTWISE[t][2](m)), x
    if t in (nn.Softmax, nn.LogSoftmax):
        y = (RA.softmax_ref if t is nn.Softmax else RA.log_softmax_ref)(x, m.dim)
        return y, y
    if t is nn.Conv2d:
        return conv2d_ref(x, _p(m.weight), _p(m.bias), m.stride, m.padding, m.dilation,
                          m.groups), x
    if t is nn.ConvTranspose2d:
        return conv_transpose2d_ref(x, _p(m.weight), _p(m.bias), m.stride, m.padding,
                                    m.output_padding, m.groups, m.dilation), x
    if t is nn.Linear:
        return linear_ref(x, _p(m.weight), _p(m.bias)), x
    if t in (nn.MaxPool2d, nn.MinPool2d):
        ref = RP.max_pool2d_ref if t is nn.MaxPool2d else RP.min_pool2d_ref
        return ref(x, **_pool_kw(m))[0], x
    if t is nn.AvgPool2d:
        return RP.avg_pool2d_ref(x, **_pool_kw(m, dilation=False),
                                 count_include_pad=m.count_include_pad,
                                 divisor_override=m.divisor_override), x
    if t is nn.LPPool2d:
        return RP.lp_pool2d_ref(x, m.norm_type, **_pool_kw(m, False, False)), x
    if t is nn.MixedPool2d:
        return RP.mixed_pool2d_ref(x, **_pool_kw(m, False, True, False), alpha=m.alpha), x
    if t is nn.AdaptiveAvgPool2d:
        return RP.adaptive_avg_pool2d_ref(x, m.output_size), x
    if t is nn.AdaptiveMaxPool2d:
        return RP.adaptive_max_pool2d_ref(x, m.output_size)[0], x
    if t in (nn.BatchNorm1d, nn.BatchNorm2d):
        training = m.training or not m.track_running_stats
        momentum = m.momentum
        if momentum is None and m.training and m.track_running_stats:  # cumulative average
            momentum = 1.0 / (float(m.num_batches_tracked) + 1)
        rm = None if m.running_mean is None else m.running_mean.astype(np.float64)
        rv = None if m.running_var is None else m.running_var.astype(np.float64)
        y, mean, invstd, new_rm, new_rv = batch_norm_ref(
            x, rm, rv, _p(m.weight), _p(m.bias), training, momentum or 0.0, m.eps)
        RUNNING[id(m)] = (new_rm, new_rv)
        return y, (x, mean, invstd, training)
    if t is nn.LocalResponseNorm:
        return local_response_norm_ref(x, m.size, m.alpha, m.beta, m.k), x
    if t is nn.Flatten:
        start, end = m.start_dim % x.ndim, m.end_dim % x.ndim
        return x.reshape(x.shape[:start] + (-1,) + x.shape[end + 1:]), x.shape
    if t is nn.Identity:
        return x, None
    if t in (nn.Sequential, nn.BasicConv2d):
        caches = []
        for child in m:
            x, cache = forward(child, x)
            caches.append(cache)
        return x, caches
    if t in (nn.BasicBlock, nn.Bottleneck):
        h, caches = x, []
        for layer in m._residual_layers():
            h, cache = forward(layer, h)
            caches.append(cache)
        sc, sc_cache = (x, None) if m.downsample is None else forward(m.downsample, x)
        pre = h + sc
        return RA.relu_ref(pre), (caches, sc_cache, pre)
    if t is nn.Inception:
        outs = [forward(b, x) for b in (m.branch1, m.branch2, m.branch3, m.branch4)]
        return (np.concatenate([o for o, _ in outs], axis=1),
                ([o.shape[1] for o, _ in outs], [c for _, c in outs]))
    raise NotImplementedError(t)


def backward(m, g, cache, grads):
    t = type(m)
    if t in ELEMENTWISE:
        return ELEMENTWISE[t][1](g, cache, **ELEMENTWISE[t][2](m))
    if t in (nn.Softmax, nn.LogSoftmax):
        ref = RA.softmax_backward_ref if t is nn.Softmax else RA.log_softmax_backward_ref
        return ref(g, cache, m.dim)
    if t in (nn.Conv2d, nn.ConvTranspose2d, nn.Linear):
        if t is nn.Conv2d:
            dx, dw, db = conv2d_backward_ref(g, cache, _p(m.weight), m.stride, m.padding,
                                             m.dilation, m.groups)
        elif t is nn.ConvTranspose2d:
            dx, dw, db = conv_transpose2d_backward_ref(g, cache, _p(m.weight), m.stride,
                                                       m.padding, m.output_padding, m.groups,
                                                       m.dilation)
        else:
            dx, dw, db = linear_backward_ref(g, cache, _p(m.weight))
        _add(grads, m.weight, dw)
        _add(grads, m.bias, db)
        return dx
    if t in (nn.MaxPool2d, nn.MinPool2d):
        ref = RP.max_pool2d_backward_ref if t is nn.MaxPool2d else RP.min_pool2d_backward_ref
        return ref(g, cache, **_pool_kw(m))
    if t is nn.AvgPool2d:
        return RP.avg_pool2d_backward_ref(g, cache, **_pool_kw(m, dilation=False),
                                          count_include_pad=m.count_include_pad,
                                          divisor_override=m.divisor_override)
    if t is nn.LPPool2d:
        return RP.lp_pool2d_backward_ref(g, cache, m.norm_type, **_pool_kw(m, False, False))
    if t is nn.MixedPool2d:
        return RP.mixed_pool2d_backward_ref(g, cache, **_pool_kw(m, False, True, False),
                                            alpha=m.alpha)
    if t is nn.AdaptiveAvgPool2d:
        return RP.adaptive_avg_pool2d_backward_ref(g, cache, m.output_size)
    if t is nn.AdaptiveMaxPool2d:
        return RP.adaptive_max_pool2d_backward_ref(g, cache, m.output_size)
    if t in (nn.BatchNorm1d, nn.BatchNorm2d):
        x, mean, invstd, training = cache
        dx, dw, db = batch_norm_backward_ref(g, x, _p(m.weight), mean, invstd, training)
        _add(grads, m.weight, dw)
        _add(grads, m.bias, db)
        return dx
    if t is nn.LocalResponseNorm:
        return local_response_norm_backward_ref(g, cache, m.size, m.alpha, m.beta, m.k)
    if t is nn.Flatten:
        return g.reshape(cache)
    if t is nn.Identity:
        return g
    if t in (nn.Sequential, nn.BasicConv2d):
        for child, c in reversed(list(zip(m, cache))):
            g = backward(child, g, c, grads)
        return g
    if t in (nn.BasicBlock, nn.Bottleneck):
        caches, sc_cache, pre = cache
        d = RA.relu_backward_ref(g, pre)
        dx = d if m.downsample is None else backward(m.downsample, d, sc_cache, grads)
        for layer, c in reversed(list(zip(m._residual_layers(), caches))):
            d = backward(layer, d, c, grads)
        return dx + d
    if t is nn.Inception:
        widths, caches = cache
        parts = np.split(g, np.cumsum(widths)[:-1], axis=1)
        return sum(backward(b, p, c, grads) for b, p, c in
                   zip((m.branch1, m.branch2, m.branch3, m.branch4), parts, caches))
    raise NotImplementedError(t)


def _all_bn(m):
    return [x for x in m.modules() if isinstance(x, (nn.BatchNorm1d, nn.BatchNorm2d))]


def check_layer(m, x, seed, rtol, training=True, atol=0.0):
    """Forward and backward of module m on x against the interpreter; then a second pass,
    whose parameter gradients must add to the first's; running statistics as the reference."""
    m.train(training)
    RUNNING.clear()
    want, cache = forward(m, np.asarray(x, dtype=np.float64))
    y = m(x)
    assert y.dtype == x.dtype, type(m).__name__
    assert_close(y, want, rtol, atol, what=f"{type(m).__name__} forward")
    for bn in _all_bn(m):  # updated in place in training, as the reference did
        if bn.running_mean is not None:
            rm, rv = RUNNING[id(bn)]
            assert_close(bn.running_mean, rm, rtol, what="running_mean")
            assert_close(bn.running_var, rv, rtol, what="running_var")

    g = rand(np.random.default_rng(seed + 1), want.shape, x.dtype)
    grads = {}
    dx_want = backward(m, g.astype(np.float64), cache, grads)
    dx = m.backward(g)
    assert dx.dtype == x.dtype and dx.shape == x.shape
    scale = atol * max(1.0, float(np.abs(g).max(initial=0)))
    assert_close(dx, dx_want, rtol, scale, what=f"{type(m).__name__} grad_input")
    params = list(m.named_parameters())
    for name, p in params:
        assert_close(p.grad, grads[id(p)], rtol, scale, what=f"{type(m).__name__}.{name}.grad")
    first = {name: p.grad.copy() for name, p in params}
    m(x)
    m.backward(g)
    for name, p in params:  # accumulated: the second backward adds the same gradient
        assert_close(p.grad, 2 * first[name], rtol, what=f"{name}.grad accumulated")
    if params:  # a frozen parameter gets no gradient, the others theirs
        m.zero_grad()
        frozen = params[0][1]
        frozen.requires_grad = False
        m(x)
        m.backward(g)
        assert frozen.grad is None
        for name, p in params[1:]:
            assert_close(p.grad, first[name], rtol, what=f"{name}.grad with {params[0][0]} frozen")
        frozen.requires_grad = True


# ---------------------------------------------------------------------------
# Random layers
# ---------------------------------------------------------------------------

# Every layer kind drawn; an activation with a spec joins by its module name.
LAYER_KINDS = ["Conv2d", "ConvTranspose2d", "Linear", "MaxPool2d", "MinPool2d", "AvgPool2d",
               "LPPool2d", "MixedPool2d", "AdaptiveAvgPool2d", "AdaptiveMaxPool2d", "ReLU",
               "LeakyReLU", "ELU", "Sigmoid", "Tanh", "Softplus", "Softmax", "LogSoftmax",
               "BatchNorm1d", "BatchNorm2d", "LocalResponseNorm", "Flatten", "Identity"]
LAYER_KINDS += [spec.module for spec in RA.ACTS if spec.module not in LAYER_KINDS]


@st.composite
def simple_layers(draw):
    """(layer, input shape): one random layer of each kind and an input it accepts. The
    initial weights come from fastconv's generator, seeded here, so that Hypothesis rebuilds
    the same layer when it replays an example."""
    fastconv.manual_seed(draw(seeds))
    kind = draw(st.sampled_from(LAYER_KINDS))
    N = draw(st.sampled_from([1, 2, 3]))
    C = draw(st.integers(1, 4))
    # At least the largest window drawn below: kernel 3 with dilation 2.
    H, W = draw(st.integers(5, 8)), draw(st.integers(5, 8))
    ints = lambda lo, hi: draw(st.integers(lo, hi))  # noqa: E731
    if kind == "Conv2d":
        g = draw(st.sampled_from([1, 1, C]))
        k = ints(1, 3)
        padding = draw(st.sampled_from([0, 1, "same", "valid", (1, 0)]))
        stride = 1 if padding == "same" else ints(1, 2)
        return nn.Conv2d(C, g * ints(1, 2), k, stride=stride, padding=padding,
                         dilation=ints(1, 2), groups=g, bias=draw(st.booleans())), (N, C, H, W)
    if kind == "ConvTranspose2d":
        g = draw(st.sampled_from([1, C]))
        s = ints(1, 2)
        return nn.ConvTranspose2d(C, g * ints(1, 2), ints(1, 3), stride=s, padding=ints(0, 1),
                                  output_padding=ints(0, s - 1), groups=g,
                                  bias=draw(st.booleans()), dilation=ints(1, 2)), (N, C, H, W)
    if kind == "Linear":
        lead = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
        IN = ints(1, 6)
        return nn.Linear(IN, ints(1, 5), bias=draw(st.booleans())), lead + (IN,)
    shape4 = draw(st.sampled_from([(N, C, H, W), (C, H, W)]))
    if kind in ("MaxPool2d", "MinPool2d"):
        k = ints(1, 3)
        return getattr(nn, kind)(k, stride=draw(st.sampled_from([None, 1, 2])),
                                 padding=ints(0, k // 2), dilation=ints(1, 2),
                                 ceil_mode=draw(st.booleans())), shape4
    if kind == "AvgPool2d":
        k = ints(1, 3)
        return nn.AvgPool2d(k, stride=draw(st.sampled_from([None, 1, 2])), padding=ints(0, k // 2),
                            ceil_mode=draw(st.booleans()),
                            count_include_pad=draw(st.booleans()),
                            divisor_override=draw(st.sampled_from([None, 2, 5]))), shape4
    if kind == "LPPool2d":
        return nn.LPPool2d(draw(st.sampled_from([1, 2])), ints(1, 3),
                           stride=draw(st.sampled_from([None, 1, 2])),
                           ceil_mode=draw(st.booleans())), shape4
    if kind == "MixedPool2d":
        k = ints(1, 3)
        return nn.MixedPool2d(k, stride=draw(st.sampled_from([None, 1, 2])),
                              padding=ints(0, k // 2),
                              alpha=draw(st.sampled_from([0.0, 0.3, 1.0]))), shape4
    if kind.startswith("Adaptive"):
        size = draw(st.sampled_from([1, 2, (2, 3), (None, 2), (4, 1)]))
        return getattr(nn, kind)(size), shape4
    if kind in ("ReLU", "Sigmoid", "Tanh", "Identity"):
        return getattr(nn, kind)(), shape4
    if kind == "LeakyReLU":
        return nn.LeakyReLU(draw(st.sampled_from([0.01, 0.2, -0.5]))), shape4
    if kind == "ELU":
        return nn.ELU(draw(st.sampled_from([1.0, 0.5, 2.0]))), shape4
    if kind == "Softplus":
        return nn.Softplus(draw(st.sampled_from([1.0, 2.0, -1.0])),
                           draw(st.sampled_from([20.0, 1.0]))), shape4
    if kind in ("Softmax", "LogSoftmax"):
        return getattr(nn, kind)(dim=ints(-len(shape4), len(shape4) - 1)), shape4
    if kind in ELEMENTWISE_NAMES:  # an activation with no case of its own above: defaults
        return getattr(nn, kind)(), shape4
    if kind == "BatchNorm1d":
        shape = draw(st.sampled_from([(N + 1, C), (N, C, W)]))
        return nn.BatchNorm1d(C, momentum=draw(st.sampled_from([0.1, None])),
                              affine=draw(st.booleans()),
                              track_running_stats=draw(st.booleans())), shape
    if kind == "BatchNorm2d":
        return nn.BatchNorm2d(C, eps=draw(st.sampled_from([1e-5, 1e-3])),
                              momentum=draw(st.sampled_from([0.1, None, 0.5])),
                              affine=draw(st.booleans()), bias=draw(st.booleans()),
                              track_running_stats=draw(st.booleans())), (N, C, H, W)
    if kind == "LocalResponseNorm":
        return nn.LocalResponseNorm(ints(1, 5), alpha=draw(st.sampled_from([1e-4, 0.5])),
                                    beta=0.75, k=draw(st.sampled_from([1.0, 2.0]))), (N, C, H, W)
    start = ints(0, 2)
    return nn.Flatten(start, draw(st.sampled_from([-1, start, 3]))), (N, C, H, W)


def _tolerance(layer, dtype):
    n = max([p.size for p in layer.parameters()] + [9])
    return 10 * rtol_for(dtype, n)


@budget(2)  # two dozen kinds of layer
@given(simple_layers(), dtypes, st.booleans(), layouts, seeds)
def test_layer_forward_backward_match_reference(made, dtype, training, layout, seed):
    layer, shape = made
    fastconv.manual_seed(seed)
    layer = layer.to(np.dtype(dtype))
    x = relayout(rand(np.random.default_rng(seed), shape, dtype), layout)
    # sigmoid/tanh-type gradients cancel near saturation (see test_properties_act)
    check_layer(layer, x, seed, _tolerance(layer, dtype), training,
                atol=_tolerance(layer, dtype))


@st.composite
def blocks(draw):
    fastconv.manual_seed(draw(seeds))  # reproducible weights, as in simple_layers
    kind = draw(st.sampled_from(["BasicBlock", "Bottleneck", "Inception", "Sequential",
                                 "BasicConv2d"]))
    C = draw(st.integers(1, 4))
    N = draw(st.integers(1, 3))
    # H, W >= 4: on a 3x3 input, Inception's 3x3 max pool (stride 1, padding 1) can give every
    # window the same maximum, a constant channel that batch norm maps to exactly 0, ReLU's
    # kink, where the gradient depends on rounding (PyTorch's as much as fastconv's).
    shape = (N, C, draw(st.integers(4, 6)), draw(st.integers(4, 6)))
    if kind == "BasicBlock":
        return nn.BasicBlock(C, draw(st.sampled_from([C, C + 1, 2 * C])),
                             stride=draw(st.integers(1, 2))), shape
    if kind == "Bottleneck":
        return nn.Bottleneck(C, draw(st.integers(1, 3)), stride=draw(st.integers(1, 2)),
                             expansion=draw(st.sampled_from([1, 2, 4]))), shape
    if kind == "Inception":
        chans = [draw(st.integers(1, 3)) for _ in range(6)]
        return nn.Inception(C, *chans, five_by_five=draw(st.sampled_from(["5x5",
                                                                           "double3x3"]))), shape
    if kind == "BasicConv2d":
        return nn.BasicConv2d(C, draw(st.integers(1, 3)), kernel_size=draw(st.integers(1, 3)),
                              padding=1), shape
    K = draw(st.integers(1, 3))
    return nn.Sequential(nn.Conv2d(C, K, 3, padding=1), nn.BatchNorm2d(K), nn.ReLU(),
                         nn.MaxPool2d(2, ceil_mode=True), nn.Flatten(),
                         nn.Linear(K * ((shape[2] + 1) // 2) * ((shape[3] + 1) // 2), 3),
                         nn.Tanh()), shape


@budget(0.5)
@given(blocks(), dtypes, st.booleans(), seeds)
def test_block_forward_backward_match_reference(made, dtype, training, seed):
    block, shape = made
    fastconv.manual_seed(seed)
    block = block.to(np.dtype(dtype))
    x = rand(np.random.default_rng(seed), shape, dtype)
    # Several layers deep, each adding float32 rounding of its own scale.
    rtol = 100 * rtol_for(dtype, 200)
    check_layer(block, x, seed, rtol, training, atol=rtol)


@given(st.sampled_from([(nn.Dropout, dropout_ref, 1), (nn.Dropout2d, dropout2d_ref, 2)]),
       st.sampled_from(["train", "eval"]), st.sampled_from([0.0, 0.3, 1.0]) | st.floats(0, 1),
       st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple), dtypes, seeds)
def test_dropout_layers_use_one_mask_for_forward_and_backward(layer, mode, p, shape, dtype,
                                                             seed):
    """Dropout (a mask of the input's shape) and Dropout2d ((N, C, 1, 1): shape made 4-D)."""
    cls, ref, planes = layer
    shape = shape if planes == 1 else (shape + (2, 3, 1))[:4]
    d = cls(p).train(mode == "train")
    x = rand(np.random.default_rng(seed), shape, dtype)
    fastconv.manual_seed(seed)
    y = d(x)
    g = rand(np.random.default_rng(seed + 1), shape, dtype)
    if mode == "eval":
        assert y is x and d.backward(g) is g
        return
    mask = d._mask
    assert mask.shape == (shape if planes == 1 else shape[:2] + (1, 1))
    assert_close(y, ref(x, mask, p), rtol_for(dtype), what="forward")
    assert_close(d.backward(g), ref(g, mask, p), rtol_for(dtype), what="backward")
    fastconv.manual_seed(seed)
    np.testing.assert_array_equal(cls(p)(x), y)  # reproducible from fastconv's seed


# ---------------------------------------------------------------------------
# Loss modules
# ---------------------------------------------------------------------------

@given(st.sampled_from(["CrossEntropyLoss", "MSELoss", "MultiMarginLoss"]),
       st.sampled_from(["none", "mean", "sum"]), st.integers(1, 4), st.integers(1, 5),
       st.booleans(), dtypes, seeds, st.booleans())
def test_loss_modules_match_reference(kind, reduction, N, C, weighted, dtype, seed, upstream):
    rng = np.random.default_rng(seed)
    x = rand(rng, (N, C), dtype)
    w = rng.random(C) + 0.2 if weighted else None
    if kind == "CrossEntropyLoss":
        ii, eps = int(rng.integers(0, C)), float(rng.choice([0.0, 0.1]))
        t = rng.integers(0, C, N)
        loss_fn = nn.CrossEntropyLoss(w, ignore_index=ii, reduction=reduction,
                                      label_smoothing=eps)
        w_ = None if w is None else w.astype(dtype)
        ref = lambda: cross_entropy_ref(x, t, w_, ii, reduction, eps)  # noqa: E731
        ref_bwd = lambda g: cross_entropy_backward_ref(g, x, t, w_, ii, reduction, eps)  # noqa
    elif kind == "MSELoss":
        t = rand(rng, (N, C), dtype)
        loss_fn = nn.MSELoss(reduction=reduction)
        ref = lambda: mse_loss_ref(x, t, reduction)  # noqa: E731
        ref_bwd = lambda g: mse_loss_backward_ref(g, x, t, reduction)  # noqa: E731
    else:
        t = rng.integers(0, C, N)
        p, margin = int(rng.choice([1, 2])), float(rng.choice([1.0, 0.5]))
        loss_fn = nn.MultiMarginLoss(p, margin, w, reduction=reduction)
        w_ = None if w is None else w.astype(dtype)
        ref = lambda: multi_margin_loss_ref(x, t, p, margin, w_, reduction)  # noqa: E731
        ref_bwd = lambda g: multi_margin_loss_backward_ref(g, x, t, p, margin, w_,  # noqa
                                                           reduction)
    loss = loss_fn(x, t)
    want = ref()
    rtol = 10 * rtol_for(dtype, N * C)
    if reduction == "none":
        assert loss.dtype == dtype
    else:
        assert isinstance(loss, float)
    if np.isnan(want).any():  # every target ignored: mean over nothing
        assert np.isnan(loss).any()
        return
    assert_close(loss, want, rtol, what="loss")
    shape = np.shape(want)
    if upstream:
        g = rand(rng, shape, dtype) if reduction == "none" else float(rng.standard_normal())
        dx = loss_fn.backward(g)
    else:  # d sum(loss) / d input
        g = np.ones(shape) if reduction == "none" else 1.0
        dx = loss_fn.backward()
    assert dx.dtype == dtype
    assert_close(dx, ref_bwd(np.asarray(g, dtype=np.float64)), rtol, what="backward")


# ---------------------------------------------------------------------------
# Wrong inputs name the layer
# ---------------------------------------------------------------------------

# The functional op each layer calls: its name may come instead of the layer's where the
# functional checks the input (e.g. a pooled size below 1).
OPS_OF = {"Conv2d": "conv2d", "ConvTranspose2d": "conv_transpose2d", "Linear": "linear",
          "MaxPool2d": "max_pool2d", "MinPool2d": "min_pool2d", "AvgPool2d": "avg_pool2d",
          "LPPool2d": "lp_pool2d", "MixedPool2d": "mixed_pool2d",
          "AdaptiveAvgPool2d": "adaptive_avg_pool2d", "AdaptiveMaxPool2d": "adaptive_max_pool2d",
          "ReLU": "relu", "LeakyReLU": "leaky_relu", "ELU": "elu", "Sigmoid": "sigmoid",
          "Tanh": "tanh", "Softplus": "softplus", "Softmax": "softmax",
          "LogSoftmax": "log_softmax", "BatchNorm1d": "batch_norm", "BatchNorm2d": "batch_norm",
          "LocalResponseNorm": "local_response_norm", "Flatten": "Flatten",
          "Identity": "Identity"}

ELEMENTWISE_NAMES = {spec.module for spec in RA.ACTS}
OPS_OF.update({spec.module: spec.name for spec in RA.ACTS})
POOL_NAMES = {"MaxPool2d", "MinPool2d", "AvgPool2d", "LPPool2d", "MixedPool2d",
              "AdaptiveAvgPool2d", "AdaptiveMaxPool2d"}


@budget(2)
@given(simple_layers(), st.sampled_from(["ndim", "channels", "dtype", "int", "list", "tiny"]),
       seeds)
def test_layer_wrong_input_is_rejected_naming_the_layer(made, wrong, seed):
    layer, shape = made
    name = type(layer).__name__
    if name in ("Identity", "Flatten"):
        return  # shape-agnostic: any array is a valid input
    layer = layer.double()
    rng = np.random.default_rng(seed)
    if wrong == "ndim":
        x = rand(rng, shape + (2,) if len(shape) < 5 else shape[:1], np.float64)
        if name in ELEMENTWISE_NAMES or name == "Linear" or (name.startswith("BatchNorm1d")
                                                             and x.ndim in (2, 3)):
            return  # any rank is valid for these
        if name in POOL_NAMES and x.ndim in (3, 4):
            return
        if name == "LocalResponseNorm" and x.ndim >= 3:
            return
        if name in ("Softmax", "LogSoftmax"):
            return  # dim stays in range for a larger rank
    elif wrong == "channels":
        if len(shape) < 2 or name in ELEMENTWISE_NAMES or name in POOL_NAMES or name in (
                "Softmax", "LogSoftmax", "LocalResponseNorm"):
            return
        bad = list(shape)
        axis = -1 if name == "Linear" else 1
        bad[axis] += 1
        x = rand(rng, tuple(bad), np.float64)
    elif wrong == "dtype":
        x = rand(rng, shape, np.float64).astype(rng.choice([np.int64, np.float16, np.complex64]))
    elif wrong == "int":
        x = 3
    elif wrong == "list":
        x = rand(rng, shape, np.float64).tolist()
    else:  # a spatial size too small for the window
        if name not in ("Conv2d", "MaxPool2d", "MinPool2d", "AvgPool2d", "LPPool2d",
                        "MixedPool2d") or len(shape) < 3:
            return
        x = rand(rng, shape[:-2] + (1, 1), np.float64)
        try:
            layer(x)  # a 1x1 window, or padding, may still fit
            return
        except (ValueError, TypeError) as e:
            assert name in str(e) or OPS_OF[name] in str(e), str(e)
            return
    rejects(lambda: layer(x), name, OPS_OF[name])

