"""ONNX export of networks built from fastconv's layers, for ONNX Runtime, Netron and the rest.

    fastconv.onnx.export(model, example_input, "model.onnx")

The exporter walks the model's layers (it knows each layer's computation; a module with a
forward of its own that is not one of fastconv's is refused with a ValueError naming it) and
runs the model in eval mode on example_input beside the walk, so every node is emitted knowing
its input's shape: what torch semantics need beyond an ONNX operator's attributes (ceil_mode's
windows, "same" padding, adaptive pooling windows, an even LRN size) becomes explicit padding,
constant matrices or a composition of standard operators. Only `onnx` is needed
(pip install "fastconv[onnx]"); onnxruntime is what the tests check the files with.
"""

import math
from types import SimpleNamespace

import numpy as np

from ._arrays import to_numpy

__all__ = ["export", "DEFAULT_OPSET"]

DEFAULT_OPSET = 17


def _onnx():
    try:
        import onnx
    except ImportError:
        raise ImportError("fastconv.onnx needs the onnx package: pip install onnx "
                          "(or pip install \"fastconv[onnx]\")") from None
    return onnx


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def _pool_out(size, k, s, pad_lo, pad_hi, d, ceil):
    """torch's pooled length: floor or ceil of the window count, and with ceil_mode the last
    window must start inside the input or its left padding."""
    span = size + pad_lo + pad_hi - d * (k - 1) - 1
    out = (-(-span // s) if ceil else span // s) + 1
    if ceil and (out - 1) * s >= size + pad_lo:
        out -= 1
    return out


def _end_pad(size, k, s, pad_lo, pad_hi, d, out):
    """The right padding that makes ONNX's floor formula give `out` windows."""
    need = (out - 1) * s + d * (k - 1) + 1 - (size + pad_lo)
    return max(pad_hi, need)


class _Graph:
    def __init__(self, onnx, dtype, opset):
        self.onnx, self.helper = onnx, onnx.helper
        self.dtype, self.opset = np.dtype(dtype), opset
        self.nodes, self.inits, self.names = [], [], set()

    def name(self, hint):
        base, i = hint.replace("/", "_") or "t", 0
        name = base
        while name in self.names:
            i += 1
            name = f"{base}_{i}"
        self.names.add(name)
        return name

    def const(self, value, hint, dtype=None):
        arr = np.asarray(to_numpy(value), dtype=dtype or self.dtype)
        name = self.name(hint)
        self.inits.append(self.onnx.numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    def ints(self, values, hint):
        return self.const(np.asarray(values, np.int64), hint, np.int64)

    def node(self, op, inputs, hint, **attrs):
        out = self.name(hint)
        self.nodes.append(self.helper.make_node(op, list(inputs), [out], name=out, **attrs))
        return out


class _Exporter:
    def __init__(self, graph):
        self.g = graph
        # whether dim 0 of the value being emitted is still the input's batch
        self.batch_kept = True

    def refuse(self, path, module, why):
        raise ValueError(f"fastconv.onnx.export: cannot export {path or 'the model'} "
                         f"({type(module).__name__}): {why}")

    # Each emit returns (onnx name, fastconv value) of the module's output.
    def emit(self, module, path, name, x):
        from . import models, nn
        from .distributed import DistributedDataParallel, SyncBatchNorm
        from .nn import activation as act, blocks, containers, normalization as norm, pooling

        kind = type(module)
        if isinstance(module, DistributedDataParallel):
            return self.emit(module.module, _join(path, "module"), name, x)
        if isinstance(module, SyncBatchNorm):
            return self.batch_norm(module, path, name, x)
        handlers = {
            nn.Conv2d: self.conv, nn.ConvTranspose2d: self.conv_transpose, nn.Linear: self.linear,
            nn.MaxPool2d: self.max_pool, nn.MinPool2d: self.min_pool, nn.AvgPool2d: self.avg_pool,
            nn.LPPool2d: self.lp_pool, nn.MixedPool2d: self.mixed_pool,
            nn.AdaptiveAvgPool2d: self.adaptive_avg, nn.AdaptiveMaxPool2d: self.adaptive_max,
            nn.BatchNorm1d: self.batch_norm, nn.BatchNorm2d: self.batch_norm,
            nn.LocalResponseNorm: self.lrn, nn.Dropout: self.identity, nn.Dropout2d: self.identity,
            containers.Identity: self.identity, nn.Flatten: self.flatten,
            act.ReLU: self.unary("Relu"), act.Sigmoid: self.unary("Sigmoid"),
            act.Tanh: self.unary("Tanh"), act.LeakyReLU: self.leaky_relu, act.ELU: self.elu,
            act.Softplus: self.softplus, act.GELU: self.gelu, act.Softmax: self.softmax,
            act.LogSoftmax: self.softmax, act.SiLU: self.silu, act.Mish: self.mish,
            act.Hardswish: self.hardswish, act.Hardsigmoid: self.hardsigmoid,
            act.Hardtanh: self.hardtanh, act.ReLU6: self.hardtanh, act.SELU: self.selu,
            act.CELU: self.celu,
            blocks.BasicBlock: self.residual, blocks.Bottleneck: self.residual,
            blocks.Inception: self.inception, models.ResNet: self.resnet,
        }
        if kind in handlers:
            return handlers[kind](module, path, name, x)
        if isinstance(module, models._Chain) and kind.forward is models._Chain.forward:
            for child in module._order:
                name, x = self.emit(getattr(module, child), _join(path, child), name, x)
            return name, x
        if isinstance(module, nn.Sequential) and (kind.forward is nn.Sequential.forward
                                                  or kind is models.LeNet5):
            if kind is models.LeNet5:
                module(x)  # its input check
            for child_name, child in module._modules.items():
                name, x = self.emit(child, _join(path, child_name), name, x)
            return name, x
        if isinstance(module, pooling._Pool2d) or isinstance(module, norm._BatchNorm):
            self.refuse(path, module, "a subclass whose computation the exporter does not know")
        self.refuse(path, module, "the exporter knows fastconv's layers, Sequential and the "
                                  "models' blocks; a module with its own forward cannot be "
                                  "traced")

    def identity(self, module, path, name, x):
        return name, module(x)

    def unary(self, op):
        def emit(module, path, name, x):
            return self.g.node(op, [name], path or op), module(x)
        return emit

    # -- convolution, linear -----------------------------------------------------------------
    def conv(self, m, path, name, x):
        kh, kw = m.kernel_size
        dh, dw = m.dilation
        if isinstance(m.padding, str):
            if m.padding == "valid":
                pads = [0, 0, 0, 0]
            else:  # "same" (stride 1): the odd pixel of an even kernel goes bottom/right
                th, tw = dh * (kh - 1), dw * (kw - 1)
                pads = [th // 2, tw // 2, th - th // 2, tw - tw // 2]
        else:
            pads = [m.padding[0], m.padding[1], m.padding[0], m.padding[1]]
        inputs = [name, self.g.const(m.weight.data, _join(path, "weight"))]
        if m.bias is not None:
            inputs.append(self.g.const(m.bias.data, _join(path, "bias")))
        out = self.g.node("Conv", inputs, path or "conv", kernel_shape=[kh, kw],
                          strides=list(m.stride), pads=pads, dilations=[dh, dw], group=m.groups)
        return out, m(x)

    def conv_transpose(self, m, path, name, x):
        inputs = [name, self.g.const(m.weight.data, _join(path, "weight"))]
        ph, pw = m.padding
        attrs = dict(kernel_shape=list(m.kernel_size), strides=list(m.stride),
                     dilations=list(m.dilation), group=m.groups)
        if all(op < s for op, s in zip(m.output_padding, m.stride)):
            if m.bias is not None:
                inputs.append(self.g.const(m.bias.data, _join(path, "bias")))
            out = self.g.node("ConvTranspose", inputs, path or "conv_transpose",
                              pads=[ph, pw, ph, pw], output_padding=list(m.output_padding),
                              **attrs)
            return out, m(x)
        # ONNX Runtime refuses an output_padding of the stride or more (torch allows it below
        # the dilation), so its rows are spelled out: those the end padding would have cropped
        # hold products like any other row (a smaller end pad keeps them), those past the full
        # transposed convolution are zeros (a Pad), and the bias comes last to cover both.
        cut = [min(op, p) for op, p in zip(m.output_padding, m.padding)]
        extra = [op - c for op, c in zip(m.output_padding, cut)]
        out = self.g.node("ConvTranspose", inputs, _join(path, "conv_transpose"),
                          pads=[ph, pw, ph - cut[0], pw - cut[1]], **attrs)
        if any(extra):
            out = self.g.node("Pad", [out, self.g.ints([0, 0, 0, 0, 0, 0, *extra],
                                                       _join(path, "pads"))],
                              _join(path, "pad"), mode="constant")
        if m.bias is not None:
            bias = to_numpy(m.bias.data).reshape(-1, 1, 1)
            out = self.g.node("Add", [out, self.g.const(bias, _join(path, "bias"))],
                              path or "conv_transpose")
        return out, m(x)

    def linear(self, m, path, name, x):
        y = m(x)
        if x.ndim == 2:
            w = self.g.const(m.weight.data, _join(path, "weight"))
            inputs = [name, w] + ([self.g.const(m.bias.data, _join(path, "bias"))]
                                  if m.bias is not None else [])
            return self.g.node("Gemm", inputs, path or "linear", transB=1), y
        wt = self.g.const(to_numpy(m.weight.data).T, _join(path, "weight_t"))
        out = self.g.node("MatMul", [name, wt], _join(path, "matmul"))
        if m.bias is not None:
            out = self.g.node("Add", [out, self.g.const(m.bias.data, _join(path, "bias"))],
                              path or "linear")
        return out, y

    # -- pooling ------------------------------------------------------------------------------
    def _window(self, m, x, pad, dilation, ceil):
        """ONNX pads (begin h, w, end h, w) giving torch's output size without ceil_mode."""
        kh, kw = _pair(m.kernel_size)
        sh, sw = _pair(m.stride if m.stride is not None else m.kernel_size)
        ph, pw = _pair(pad)
        dh, dw = _pair(dilation)
        H, W = x.shape[-2:]
        P = _pool_out(H, kh, sh, ph, ph, dh, ceil)
        Q = _pool_out(W, kw, sw, pw, pw, dw, ceil)
        pads = [ph, pw, _end_pad(H, kh, sh, ph, ph, dh, P), _end_pad(W, kw, sw, pw, pw, dw, Q)]
        return dict(kernel_shape=[kh, kw], strides=[sh, sw], pads=pads), (dh, dw)

    def _max_pool(self, m, path, name, x, hint):
        attrs, dil = self._window(m, x, m.padding, m.dilation, m.ceil_mode)
        kernel, pads = attrs["kernel_shape"], attrs["pads"]
        if any(p >= k for p, k in zip(pads, kernel + kernel)):
            # ONNX Runtime wants every pad below the kernel, and the end pad that gives a
            # dilated window ceil_mode's count can reach it: that padding becomes a Pad node's
            # -inf, which no max picks over a value, as implicit max-pool padding.
            name = self.g.node("Pad", [name, self.g.ints([0, 0, pads[0], pads[1],
                                                          0, 0, pads[2], pads[3]],
                                                         _join(path, "pads")),
                                       self.g.const(-np.inf, _join(path, "neg_inf"))],
                               _join(path, "pad"), mode="constant")
            attrs["pads"] = [0, 0, 0, 0]
        return self.g.node("MaxPool", [name], hint, dilations=list(dil), **attrs)

    def _values_only(self, m, path):
        """A pooling layer that also returns indices has a second output the graph would drop."""
        if getattr(m, "return_indices", False):
            self.refuse(path, m, "return_indices=True: its indices would be left out (ONNX's "
                        "MaxPool counts them across the whole tensor, torch per plane)")

    def max_pool(self, m, path, name, x, hint=None):
        self._values_only(m, path)
        y = m(x)
        out = self._max_pool(m, path, name, x, hint or path or "max_pool")
        return out, (y[0] if isinstance(y, tuple) else y)

    def min_pool(self, m, path, name, x):
        # min = -max(-x), so any explicit padding of the max pooling is -inf too
        self._values_only(m, path)
        neg = self.g.node("Neg", [name], _join(path, "neg_in"))
        pooled = self._max_pool(m, path, neg, x, _join(path, "max"))
        y = m(x)
        return self.g.node("Neg", [pooled], path or "min_pool"), (y[0] if isinstance(y, tuple)
                                                                   else y)

    def _avg(self, path, name, x, kernel, stride, padding, ceil, include_pad, hint):
        """torch's average pooling: with count_include_pad the zero padding is made explicit
        (a Pad node), so windows hanging past it (ceil_mode) divide by what lies inside the
        padded input, as torch does, and not by the whole kernel."""
        attrs, _ = self._window(SimpleNamespace(kernel_size=kernel, stride=stride), x, padding,
                                1, ceil)
        ph, pw = _pair(padding)
        if include_pad and (ph or pw):
            name = self.g.node("Pad", [name, self.g.ints([0, 0, ph, pw, 0, 0, ph, pw],
                                                         _join(path, "pads"))],
                               _join(path, "pad"), mode="constant")
            attrs["pads"] = [0, 0, attrs["pads"][2] - ph, attrs["pads"][3] - pw]
        return self.g.node("AveragePool", [name], hint, count_include_pad=0, **attrs)

    def avg_pool(self, m, path, name, x):
        y = m(x)
        if m.divisor_override is not None:
            # sum / divisor: a depthwise convolution with constant weights
            kh, kw = _pair(m.kernel_size)
            C = x.shape[-3]
            attrs, _ = self._window(m, x, m.padding, 1, m.ceil_mode)
            w = np.full((C, 1, kh, kw), 1.0 / m.divisor_override)
            out = self.g.node("Conv", [name, self.g.const(w, _join(path, "ones"))],
                              path or "avg_pool", group=C, **attrs)
            return out, y
        return self._avg(path, name, x, m.kernel_size, m.stride, m.padding, m.ceil_mode,
                         m.count_include_pad, path or "avg_pool"), y

    def lp_pool(self, m, path, name, x):
        y = m(x)
        p = float(m.norm_type)
        if math.isinf(p):
            a = self.g.node("Abs", [name], _join(path, "abs"))
            attrs, _ = self._window(m, x, 0, 1, m.ceil_mode)
            return self.g.node("MaxPool", [a], path or "lp_pool", **attrs), y
        # torch: (sign(s) * relu(|s|))^(1/p) with s = avg_pool(x^p) * kh * kw, the root taken
        # of s itself, so a negative sum (odd p) is NaN there, as Pow makes it here
        kh, kw = _pair(m.kernel_size)
        xp = self.g.node("Pow", [name, self.g.const(p, _join(path, "p"))], _join(path, "pow"))
        avg = self._avg(path, xp, x, m.kernel_size, m.stride, 0, m.ceil_mode, True,
                        _join(path, "avg"))
        s = self.g.node("Mul", [avg, self.g.const(kh * kw, _join(path, "area"))],
                        _join(path, "sum"))
        return self.g.node("Pow", [s, self.g.const(1.0 / p, _join(path, "inv_p"))],
                           path or "lp_pool"), y

    def mixed_pool(self, m, path, name, x):
        if m.alpha is None:
            self.refuse(path, m, "alpha=None draws a new alpha at every forward; give a fixed "
                                 "alpha to export")
        y = m(x)
        mx = self.max_pool(_MaxLike(m), path, name, x, _join(path, "max"))[0]
        av = self._avg(path, name, x, m.kernel_size, m.stride, m.padding, False, True,
                       _join(path, "avg"))
        a = float(m.alpha)
        out = self.g.node("Add", [self.g.node("Mul", [mx, self.g.const(a, _join(path, "a"))],
                                              _join(path, "max_part")),
                                  self.g.node("Mul", [av, self.g.const(1 - a, _join(path, "b"))],
                                              _join(path, "avg_part"))], path or "mixed_pool")
        return out, y

    def _adaptive_windows(self, size, out):
        return [(i * size // out, -(-(i + 1) * size // out)) for i in range(out)]

    def adaptive_avg(self, m, path, name, x):
        y = m(x)
        P, Q = y.shape[-2:]
        H, W = x.shape[-2:]
        if (P, Q) == (1, 1):
            return self.g.node("GlobalAveragePool", [name], path or "adaptive_avg"), y
        # the mean over each window as two constant matrices: A_h (P, H) x X x A_w^T (W, Q)
        ah, aw = np.zeros((P, H)), np.zeros((Q, W))
        for a, wins in ((ah, self._adaptive_windows(H, P)), (aw, self._adaptive_windows(W, Q))):
            for i, (lo, hi) in enumerate(wins):
                a[i, lo:hi] = 1.0 / (hi - lo)
        t = self.g.node("MatMul", [name, self.g.const(aw.T, _join(path, "cols"))],
                        _join(path, "mean_cols"))
        return self.g.node("MatMul", [self.g.const(ah, _join(path, "rows")), t],
                           path or "adaptive_avg"), y

    def adaptive_max(self, m, path, name, x):
        self._values_only(m, path)
        y = m(x)
        y = y[0] if isinstance(y, tuple) else y
        P, Q = y.shape[-2:]
        H, W = x.shape[-2:]
        if H % P == 0 and W % Q == 0:
            return self.g.node("MaxPool", [name], path or "adaptive_max",
                               kernel_shape=[H // P, W // Q], strides=[H // P, W // Q]), y
        rows = []
        for i, (h0, h1) in enumerate(self._adaptive_windows(H, P)):
            cells = []
            for j, (w0, w1) in enumerate(self._adaptive_windows(W, Q)):
                cell = self.g.node("Slice", [name, self.g.ints([h0, w0], "starts"),
                                             self.g.ints([h1, w1], "ends"),
                                             self.g.ints([-2, -1], "axes")],
                                   _join(path, f"window_{i}_{j}"))
                cells.append(self._reduce_max(cell, _join(path, f"max_{i}_{j}")))
            rows.append(self.g.node("Concat", cells, _join(path, f"row_{i}"), axis=-1))
        return self.g.node("Concat", rows, path or "adaptive_max", axis=-2), y

    def _reduce_max(self, name, hint):
        # opset 18 moved ReduceMax's axes from an attribute to an input
        if self.g.opset >= 18:
            return self.g.node("ReduceMax", [name, self.g.ints([-2, -1], "axes")], hint,
                               keepdims=1)
        return self.g.node("ReduceMax", [name], hint, axes=[-2, -1], keepdims=1)

    # -- normalisation, activations -------------------------------------------------------
    def batch_norm(self, m, path, name, x):
        if not m.track_running_stats or m.running_mean is None:
            self.refuse(path, m, "without running statistics batch norm uses each batch's "
                                 "own, even in eval mode")
        C = m.num_features
        w = m.weight.data if m.weight is not None else np.ones(C)
        b = m.bias.data if m.bias is not None else np.zeros(C)
        out = self.g.node("BatchNormalization",
                          [name, self.g.const(w, _join(path, "weight")),
                           self.g.const(b, _join(path, "bias")),
                           self.g.const(m.running_mean, _join(path, "running_mean")),
                           self.g.const(m.running_var, _join(path, "running_var"))],
                          path or "batch_norm", epsilon=float(m.eps))
        return out, m(x)

    def lrn(self, m, path, name, x):
        y = m(x)
        if x.ndim == 4:
            return self._lrn(m, path, name, x.shape[1], path or "lrn"), y
        # ONNX's LRN and the band convolution take (N, C, H, W) only; the window runs across
        # channels alone, so (N, C, *) is that with every other dimension in H
        flat = self.g.node("Reshape", [name, self.g.ints([0, 0, -1, 1], _join(path, "shape_4d"))],
                           _join(path, "as_4d"))
        out = self._lrn(m, path, flat, x.shape[1], _join(path, "lrn_4d"))
        return self.g.node("Reshape", [out, self.g.ints([0, 0, *x.shape[2:]],
                                                        _join(path, "shape"))],
                           path or "lrn"), y

    def _lrn(self, m, path, name, C, hint):
        if m.size % 2 == 1:
            return self.g.node("LRN", [name], hint, size=m.size, alpha=float(m.alpha),
                               beta=float(m.beta), bias=float(m.k))
        # An even window is not centred the same way as ONNX's LRN (torch puts the extra
        # channel before): the window sums as a 1x1 convolution with a band of ones.
        band = np.zeros((C, C, 1, 1))
        for c in range(C):
            band[c, max(0, c - m.size // 2):min(C, c + (m.size - 1) // 2 + 1), 0, 0] = 1.0
        sq = self.g.node("Mul", [name, name], _join(path, "square"))
        s = self.g.node("Conv", [sq, self.g.const(band, _join(path, "band"))],
                        _join(path, "window_sum"), kernel_shape=[1, 1])
        den = self.g.node("Add", [self.g.const(float(m.k), _join(path, "k")),
                                  self.g.node("Mul", [s, self.g.const(m.alpha / m.size,
                                                                      _join(path, "scale"))],
                                              _join(path, "scaled"))], _join(path, "den"))
        powd = self.g.node("Pow", [den, self.g.const(float(m.beta), _join(path, "beta"))],
                           _join(path, "den_pow"))
        return self.g.node("Div", [name, powd], hint)

    def leaky_relu(self, m, path, name, x):
        return self.g.node("LeakyRelu", [name], path or "leaky_relu",
                           alpha=float(m.negative_slope)), m(x)

    def elu(self, m, path, name, x):
        return self.g.node("Elu", [name], path or "elu", alpha=float(m.alpha)), m(x)

    def softplus(self, m, path, name, x):
        # torch: log(1 + exp(beta x)) / beta, and x itself where beta x > threshold
        bx = self.g.node("Mul", [name, self.g.const(m.beta, _join(path, "beta"))],
                         _join(path, "bx"))
        soft = self.g.node("Div", [self.g.node("Softplus", [bx], _join(path, "softplus")),
                                   self.g.const(m.beta, _join(path, "beta_div"))],
                           _join(path, "scaled"))
        over = self.g.node("Greater", [bx, self.g.const(m.threshold, _join(path, "threshold"))],
                           _join(path, "linear"))
        return self.g.node("Where", [over, name, soft], path or "softplus"), m(x)

    def gelu(self, m, path, name, x):
        # exact form: x * (1 + erf(x / sqrt(2))) / 2; tanh form: x * (1 + tanh(sqrt(2 / pi) *
        # (x + 0.044715 x^3))) / 2 (ONNX's Gelu op arrived with opset 20)
        if m.approximate == "tanh":
            cube = self.g.node("Mul", [name, self.g.node("Mul", [name, name], _join(path, "sq"))],
                               _join(path, "cube"))
            inner = self.g.node("Add", [name, self.g.node(
                "Mul", [cube, self.g.const(0.044715, _join(path, "kappa"))],
                _join(path, "kappa_cube"))], _join(path, "inner"))
            e = self.g.node("Tanh", [self.g.node(
                "Mul", [inner, self.g.const(math.sqrt(2 / math.pi), _join(path, "beta"))],
                _join(path, "scaled"))], _join(path, "tanh"))
        else:
            e = self.g.node("Erf", [self.g.node(
                "Mul", [name, self.g.const(1 / math.sqrt(2), _join(path, "rsqrt2"))],
                _join(path, "scaled"))], _join(path, "erf"))
        one = self.g.node("Add", [e, self.g.const(1.0, _join(path, "one"))], _join(path, "1p"))
        half = self.g.node("Mul", [name, self.g.const(0.5, _join(path, "half"))],
                           _join(path, "half_x"))
        return self.g.node("Mul", [half, one], path or "gelu"), m(x)

    def silu(self, m, path, name, x):
        return self.g.node("Mul", [name, self.g.node("Sigmoid", [name], _join(path, "sigmoid"))],
                           path or "silu"), m(x)

    def mish(self, m, path, name, x):
        # x * tanh(softplus(x)) (ONNX's Mish op arrived with opset 18)
        t = self.g.node("Tanh", [self.g.node("Softplus", [name], _join(path, "softplus"))],
                        _join(path, "tanh"))
        return self.g.node("Mul", [name, t], path or "mish"), m(x)

    def _hard_sigmoid(self, path, name, hint):
        # relu6(x + 3) / 6 = clip(x / 6 + 1 / 2, 0, 1)
        return self.g.node("HardSigmoid", [name], hint, alpha=1 / 6, beta=0.5)

    def hardsigmoid(self, m, path, name, x):
        return self._hard_sigmoid(path, name, path or "hardsigmoid"), m(x)

    def hardswish(self, m, path, name, x):
        # x * hardsigmoid(x) (ONNX's HardSwish op arrived with opset 14)
        return self.g.node("Mul", [name, self._hard_sigmoid(path, name, _join(path, "gate"))],
                           path or "hardswish"), m(x)

    def hardtanh(self, m, path, name, x):
        return self.g.node("Clip", [name, self.g.const(float(m.min_val), _join(path, "min")),
                                    self.g.const(float(m.max_val), _join(path, "max"))],
                           path or "hardtanh"), m(x)

    def selu(self, m, path, name, x):
        return self.g.node("Selu", [name], path or "selu"), m(x)

    def celu(self, m, path, name, x):
        return self.g.node("Celu", [name], path or "celu", alpha=float(m.alpha)), m(x)

    def softmax(self, m, path, name, x):
        from .nn import activation as act

        y = m(x)
        op = "LogSoftmax" if isinstance(m, act.LogSoftmax) else "Softmax"
        return self.g.node(op, [name], path or op.lower(), axis=int(m._dim)), y

    def flatten(self, m, path, name, x):
        y = m(x)
        start, end = m._dim("start_dim", x), m._dim("end_dim", x)
        if start == 0 and math.prod(x.shape[1:end + 1]) != 1:
            self.batch_kept = False
        if start == 1 and end == x.ndim - 1:  # ONNX's Flatten always makes 2-D
            return self.g.node("Flatten", [name], path or "flatten", axis=1), y
        shape = [0] * start + [-1] + list(x.shape[end + 1:])
        return self.g.node("Reshape", [name, self.g.ints(shape, _join(path, "shape"))],
                           path or "flatten"), y

    # -- blocks and models ------------------------------------------------------------------
    def residual(self, m, path, name, x):
        h_name, h = name, x
        names = {id(child): key for key, child in m._modules.items()}
        for layer in m._residual_layers():
            h_name, h = self.emit(layer, _join(path, names[id(layer)]), h_name, h)
        if m.downsample is None:
            s_name = name
        else:
            s_name, _ = self.emit(m.downsample, _join(path, "downsample"), name, x)
        added = self.g.node("Add", [h_name, s_name], _join(path, "add"))
        return self.g.node("Relu", [added], _join(path, "relu_out")), m(x)

    def inception(self, m, path, name, x):
        outs = [self.emit(getattr(m, b), _join(path, b), name, x)[0]
                for b in ("branch1", "branch2", "branch3", "branch4")]
        return self.g.node("Concat", outs, path or "inception", axis=1), m(x)

    def resnet(self, m, path, name, x):
        for child in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3",
                      "layer4", "avgpool"):
            name, x = self.emit(getattr(m, child), _join(path, child), name, x)
        name = self.g.node("Flatten", [name], _join(path, "flatten"), axis=1)
        return self.emit(m.fc, _join(path, "fc"), name, x.reshape(x.shape[0], -1))


class _MaxLike:
    """MixedPool2d's window seen as a MaxPool2d's (no dilation, no ceil_mode)."""

    def __init__(self, m):
        self.kernel_size, self.stride, self.padding = m.kernel_size, m.stride, m.padding
        self.dilation, self.ceil_mode = 1, False

    def __call__(self, x):
        return x


def _join(path, name):
    return f"{path}.{name}" if path else name


def export(model, example_input, path, opset_version=None, input_names=None, output_names=None,
           dynamic_batch=True):
    """Write `model` (in eval mode; its mode is restored) as an ONNX file at `path`.

    example_input: a NumPy (or CuPy) array of the model's input, batch first; it fixes every
    dimension but the batch, which is symbolic ("batch") when dynamic_batch=True.
    opset_version: the ai.onnx opset (default DEFAULT_OPSET, 17). input_names/output_names: one
    name each (default "input", "output"). The file is checked with onnx.checker; returns the
    onnx.ModelProto written. A layer the exporter cannot express raises ValueError naming it.
    """
    onnx = _onnx()
    opset = DEFAULT_OPSET if opset_version is None else opset_version
    if isinstance(opset, bool) or not isinstance(opset, int) or not 13 <= opset \
            <= onnx.defs.onnx_opset_version():
        raise ValueError(f"export: opset_version must be an int in [13, "
                         f"{onnx.defs.onnx_opset_version()}], got {opset_version!r}")
    names = []
    for given, default, what in ((input_names, "input", "input_names"),
                                 (output_names, "output", "output_names")):
        given = [default] if given is None else list(given)
        if len(given) != 1 or not isinstance(given[0], str) or not given[0]:
            raise ValueError(f"export: {what} must hold one non-empty name, got {given!r}")
        names.append(given[0])
    if names[0] == names[1]:
        raise ValueError(f"export: output_names must differ from input_names, both are "
                         f"{names[0]!r}")
    x = np.ascontiguousarray(to_numpy(example_input))
    if x.dtype not in (np.float32, np.float64) or x.ndim < 1:
        raise ValueError(f"export: example_input must be a float32 or float64 array with a batch "
                         f"dimension, got {x.dtype} of shape {x.shape}")
    for path_name, m in model.named_modules():
        if m.__dict__.get("_forward_hooks") or m.__dict__.get("_forward_pre_hooks"):
            # a hook may change what flows on, which the graph of the layers would not say
            raise ValueError(f"export: {type(m).__name__} at {path_name or 'the top'!r} has "
                             "forward hooks; remove them (handle.remove()) before exporting")
    device = getattr(model, "device", "cpu")
    was_training = model.training
    model.eval()
    model.to("cpu")
    try:
        graph = _Graph(onnx, x.dtype, opset)
        graph.names.update(names)
        exporter = _Exporter(graph)
        out_name, y = exporter.emit(model, "", names[0], x)
    finally:
        model.train(was_training)
        model.to(device)
    elem = onnx.helper.np_dtype_to_tensor_dtype(x.dtype)
    batch = "batch" if dynamic_batch else x.shape[0]
    inp = onnx.helper.make_tensor_value_info(names[0], elem, [batch, *x.shape[1:]])
    out_shape = list(np.shape(y))
    if dynamic_batch and out_shape:
        # a layer that merged the batch into other dimensions leaves dim 0 a size ONNX can
        # compute but not name
        out_shape[0] = batch if exporter.batch_kept else None
    outp = onnx.helper.make_tensor_value_info(names[1], elem, out_shape)
    graph.nodes.append(onnx.helper.make_node("Identity", [out_name], [names[1]],
                                             name=names[1]))
    opset_id = onnx.helper.make_opsetid("", opset)
    proto = onnx.helper.make_model(
        onnx.helper.make_graph(graph.nodes, type(model).__name__, [inp], [outp], graph.inits),
        opset_imports=[opset_id], producer_name="fastconv")
    # the oldest IR version that carries the opset: the widest choice of runtimes
    proto.ir_version = onnx.helper.find_min_ir_version_for([opset_id])
    onnx.checker.check_model(proto, full_check=True)
    onnx.save(proto, str(path))
    return proto
