"""Float64 NumPy references for the pooling ops (tests of fastconv.functional._pool).

Windows are enumerated explicitly: for every output position, the list of input rows and
columns it reads, in row-major scan order; the ops are then plain reductions over those
lists, vectorised over (N, C) only. Max/min follow PyTorch's CPU rule (padding never wins;
among NaNs the last one in scan order, since each NaN replaces the current maximum; otherwise
the first maximum). Inputs are (N, C, H, W) or (C, H, W); results are float64, indices int64.
"""

import numpy as np

from ._spec import OpSpec, Sample

from .conv import pair

__all__ = [
    "pool_output_size", "max_pool2d_ref", "max_pool2d_backward_ref", "min_pool2d_ref",
    "min_pool2d_backward_ref", "avg_pool2d_ref", "avg_pool2d_backward_ref", "lp_pool2d_ref",
    "lp_pool2d_backward_ref", "adaptive_windows", "adaptive_avg_pool2d_ref",
    "adaptive_avg_pool2d_backward_ref", "adaptive_max_pool2d_ref",
    "adaptive_max_pool2d_backward_ref", "mixed_pool2d_ref", "mixed_pool2d_backward_ref",
    "POOL_CASES", "POOL_CASE_IDS", "window_args", "undilated", "unpadded", "ids",
]


def pool_output_size(n, k, pad, stride, dil, ceil_mode):
    """Outputs along one axis: windows of extent dil*(k-1)+1 stepping by stride over the input
    padded on both sides; in ceil mode a partial last window counts if it starts before the
    right padding."""
    extent = dil * (k - 1) + 1
    span = n + 2 * pad - extent
    if span < 0 and not ceil_mode:
        return 0
    if not ceil_mode:
        return span // stride + 1
    out = -(-span // stride) + 1
    while out > 0 and (out - 1) * stride >= n + pad:
        out -= 1
    return out


def _batched(x):
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 3:
        return x[None], True
    if x.ndim != 4:
        raise ValueError("input must be 3-D or 4-D")
    return x, False


def _unbatch(a, squeeze):
    return a[0] if squeeze else a


def _sliding(n, k, pad, stride, dil, ceil_mode):
    """Per output index: the valid input indices its window reads, in order."""
    out = pool_output_size(n, k, pad, stride, dil, ceil_mode)
    if out < 1:
        raise ValueError("empty output")
    return [[i for i in (o * stride - pad + r * dil for r in range(k)) if 0 <= i < n]
            for o in range(out)]


def _clipped_starts(n, k, pad, stride, dil, ceil_mode):
    """Per output index: PyTorch's CPU kernel's first window row, o*stride - pad stepped by dil
    past the padding. A dilated window can lie wholly in the padding (its start then lies past
    the input); PyTorch gives it -inf and the index start_h*W + start_w, which this reproduces."""
    starts = []
    for o in range(pool_output_size(n, k, pad, stride, dil, ceil_mode)):
        i = o * stride - pad
        while i < 0:
            i += dil
        starts.append(i)
    return starts


def adaptive_windows(n, out):
    """Output o reads [floor(o*n/out), ceil((o+1)*n/out))."""
    return [list(range((o * n) // out, -((-(o + 1) * n) // out))) for o in range(out)]


def _gather(x, rows, cols):
    """(N, C, len(rows)*len(cols)) values and their flat in-plane positions h*W + w."""
    W = x.shape[3]
    vals = x[:, :, rows][:, :, :, cols].reshape(x.shape[0], x.shape[1], len(rows) * len(cols))
    pos = (np.asarray(rows)[:, None] * W + np.asarray(cols)[None, :]).reshape(-1)
    return vals, pos


def _max_windows(x, row_lists, col_lists, starts=None):
    """Max and argmax per window; starts = (row starts, col starts) for windows that hold no
    input element (sliding windows only, see _clipped_starts)."""
    N, C = x.shape[:2]
    P, Q = len(row_lists), len(col_lists)
    out = np.empty((N, C, P, Q))
    idx = np.empty((N, C, P, Q), dtype=np.int64)
    for p, rows in enumerate(row_lists):
        for q, cols in enumerate(col_lists):
            if not rows or not cols:
                out[:, :, p, q] = -np.inf
                idx[:, :, p, q] = starts[0][p] * x.shape[3] + starts[1][q]
                continue
            vals, pos = _gather(x, rows, cols)
            nan = np.isnan(vals)
            first_max = np.argmax(np.where(nan, -np.inf, vals), axis=2)
            last_nan = vals.shape[2] - 1 - np.argmax(nan[:, :, ::-1], axis=2)
            k = np.where(nan.any(axis=2), last_nan, first_max)
            idx[:, :, p, q] = pos[k]
            out[:, :, p, q] = np.take_along_axis(vals, k[:, :, None], axis=2)[:, :, 0]
    return out, idx


def _scatter(grad_output, indices, in_shape):
    N, C, H, W = in_shape
    dx = np.zeros((N * C, H * W))
    P, Q = np.shape(indices)[-2:]
    g = np.asarray(grad_output, dtype=np.float64).reshape(N * C, P * Q)  # N may be 0
    plane = np.repeat(np.arange(N * C), g.shape[1])
    flat = np.asarray(indices).reshape(-1)
    # An empty window's index may lie outside its plane: it receives nothing (PyTorch's index
    # inside the plane, which an empty window can also have, receives the gradient as there).
    inside = (flat >= 0) & (flat < H * W)
    np.add.at(dx, (plane[inside], flat[inside]), g.reshape(-1)[inside])
    return dx.reshape(in_shape)


def _windows(x, kernel_size, stride, padding, dilation, ceil_mode):
    R, S = pair(kernel_size)
    sh, sw = pair(kernel_size if stride is None else stride)
    ph, pw = pair(padding)
    dh, dw = pair(dilation)
    return (_sliding(x.shape[2], R, ph, sh, dh, ceil_mode),
            _sliding(x.shape[3], S, pw, sw, dw, ceil_mode),
            (_clipped_starts(x.shape[2], R, ph, sh, dh, ceil_mode),
             _clipped_starts(x.shape[3], S, pw, sw, dw, ceil_mode)))


def max_pool2d_ref(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """(out, indices) as torch.nn.functional.max_pool2d(..., return_indices=True)."""
    x, sq = _batched(x)
    out, idx = _max_windows(x, *_windows(x, kernel_size, stride, padding, dilation, ceil_mode))
    return _unbatch(out, sq), _unbatch(idx, sq)


def max_pool2d_backward_ref(grad_output, x, kernel_size, stride=None, padding=0, dilation=1,
                            ceil_mode=False):
    xb, sq = _batched(x)
    _, idx = max_pool2d_ref(xb, kernel_size, stride, padding, dilation, ceil_mode)
    g = np.asarray(grad_output, dtype=np.float64).reshape(idx.shape)
    return _unbatch(_scatter(g, idx, xb.shape), sq)


def min_pool2d_ref(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """-max_pool2d(-x): the window minimum and its (argmin) indices."""
    out, idx = max_pool2d_ref(-np.asarray(x, dtype=np.float64), kernel_size, stride, padding,
                              dilation, ceil_mode)
    return -out, idx


def min_pool2d_backward_ref(grad_output, x, kernel_size, stride=None, padding=0, dilation=1,
                            ceil_mode=False):
    return max_pool2d_backward_ref(grad_output, -np.asarray(x, dtype=np.float64), kernel_size,
                                   stride, padding, dilation, ceil_mode)


def _avg_terms(x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
    """Per output (p, q): (valid rows, valid cols, divisor)."""
    H, W = x.shape[2:]
    R, S = pair(kernel_size)
    sh, sw = pair(kernel_size if stride is None else stride)
    ph, pw = pair(padding)
    P = pool_output_size(H, R, ph, sh, 1, ceil_mode)
    Q = pool_output_size(W, S, pw, sw, 1, ceil_mode)
    if P < 1 or Q < 1:
        raise ValueError("empty output")
    terms = {}
    for p in range(P):
        window_rows = [p * sh - ph + r for r in range(R)]
        for q in range(Q):
            window_cols = [q * sw - pw + s for s in range(S)]
            rows = [h for h in window_rows if 0 <= h < H]
            cols = [w for w in window_cols if 0 <= w < W]
            if divisor_override is not None:
                div = divisor_override
            elif count_include_pad:  # cells inside the padded input, padding included
                div = (sum(-ph <= h < H + ph for h in window_rows)
                       * sum(-pw <= w < W + pw for w in window_cols))
            else:
                div = len(rows) * len(cols)
            terms[p, q] = (rows, cols, div)
    return (P, Q), terms


def avg_pool2d_ref(x, kernel_size, stride=None, padding=0, ceil_mode=False,
                   count_include_pad=True, divisor_override=None):
    x, sq = _batched(x)
    (P, Q), terms = _avg_terms(x, kernel_size, stride, padding, ceil_mode, count_include_pad,
                               divisor_override)
    out = np.zeros(x.shape[:2] + (P, Q))
    for (p, q), (rows, cols, div) in terms.items():
        if rows and cols:
            vals, _ = _gather(x, rows, cols)
            out[:, :, p, q] = vals.sum(axis=2) / div
    return _unbatch(out, sq)


def avg_pool2d_backward_ref(grad_output, x, kernel_size, stride=None, padding=0,
                            ceil_mode=False, count_include_pad=True, divisor_override=None):
    xb, sq = _batched(x)
    (P, Q), terms = _avg_terms(xb, kernel_size, stride, padding, ceil_mode, count_include_pad,
                               divisor_override)
    g = np.asarray(grad_output, dtype=np.float64).reshape(xb.shape[:2] + (P, Q))
    dx = np.zeros_like(xb)
    for (p, q), (rows, cols, div) in terms.items():
        for h in rows:
            for w in cols:
                dx[:, :, h, w] += g[:, :, p, q] / div
    return _unbatch(dx, sq)


def _lp_terms(x, norm_type, kernel_size, stride, ceil_mode):
    """Per output: (rows, cols, window power sum s, mean a = s / divisor, divisor)."""
    (P, Q), terms = _avg_terms(x, kernel_size, stride, 0, ceil_mode, True, None)
    out = {}
    for (p, q), (rows, cols, div) in terms.items():
        vals, _ = _gather(x, rows, cols)
        with np.errstate(invalid="ignore", divide="ignore"):
            s = np.power(vals, norm_type).sum(axis=2)
        out[p, q] = (rows, cols, s, s / div, div)
    return (P, Q), out


def lp_pool2d_ref(x, norm_type, kernel_size, stride=None, ceil_mode=False):
    """torch's definition: (sign(a) * relu(|a|) * R*S) ** (1/p), a = avg_pool2d(x ** p)."""
    x, sq = _batched(x)
    R, S = pair(kernel_size)
    (P, Q), terms = _lp_terms(x, norm_type, kernel_size, stride, ceil_mode)
    out = np.empty(x.shape[:2] + (P, Q))
    for (p, q), (_, _, _, a, _) in terms.items():
        with np.errstate(invalid="ignore"):
            out[:, :, p, q] = np.power(np.sign(a) * np.maximum(np.abs(a), 0) * (R * S),
                                       1.0 / norm_type)
    return _unbatch(out, sq)


def lp_pool2d_backward_ref(grad_output, x, norm_type, kernel_size, stride=None, ceil_mode=False):
    """Chain rule through torch's composition; zero where a == 0 (relu's kink)."""
    xb, sq = _batched(x)
    R, S = pair(kernel_size)
    (P, Q), terms = _lp_terms(xb, norm_type, kernel_size, stride, ceil_mode)
    g = np.asarray(grad_output, dtype=np.float64).reshape(xb.shape[:2] + (P, Q))
    p_ = norm_type
    dx = np.zeros_like(xb)
    for (p, q), (rows, cols, _, a, div) in terms.items():
        z = a * (R * S)
        with np.errstate(invalid="ignore", divide="ignore"):
            f = np.where(a == 0, 0.0,
                         g[:, :, p, q] / p_ * np.power(z, 1.0 / p_ - 1) * (R * S) / div)
            for h in rows:
                for w in cols:
                    dx[:, :, h, w] += f * p_ * np.power(xb[:, :, h, w], p_ - 1)
    return _unbatch(dx, sq)


def _adaptive(x, output_size):
    H, W = x.shape[2:]
    P, Q = output_size if isinstance(output_size, (tuple, list)) else (output_size,) * 2
    P = H if P is None else P
    Q = W if Q is None else Q
    return adaptive_windows(H, P), adaptive_windows(W, Q)


def adaptive_avg_pool2d_ref(x, output_size):
    x, sq = _batched(x)
    row_lists, col_lists = _adaptive(x, output_size)
    out = np.empty(x.shape[:2] + (len(row_lists), len(col_lists)))
    for p, rows in enumerate(row_lists):
        for q, cols in enumerate(col_lists):
            out[:, :, p, q] = _gather(x, rows, cols)[0].mean(axis=2)
    return _unbatch(out, sq)


def adaptive_avg_pool2d_backward_ref(grad_output, x, output_size):
    xb, sq = _batched(x)
    row_lists, col_lists = _adaptive(xb, output_size)
    g = np.asarray(grad_output, dtype=np.float64).reshape(
        xb.shape[:2] + (len(row_lists), len(col_lists)))
    dx = np.zeros_like(xb)
    for p, rows in enumerate(row_lists):
        for q, cols in enumerate(col_lists):
            n = len(rows) * len(cols)
            dx[:, :, rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1] += g[:, :, p, q, None, None] / n
    return _unbatch(dx, sq)


def adaptive_max_pool2d_ref(x, output_size):
    """(out, indices) as torch.nn.functional.adaptive_max_pool2d(..., return_indices=True)."""
    x, sq = _batched(x)
    out, idx = _max_windows(x, *_adaptive(x, output_size))
    return _unbatch(out, sq), _unbatch(idx, sq)


def adaptive_max_pool2d_backward_ref(grad_output, x, output_size):
    xb, sq = _batched(x)
    _, idx = adaptive_max_pool2d_ref(xb, output_size)
    g = np.asarray(grad_output, dtype=np.float64).reshape(idx.shape)
    return _unbatch(_scatter(g, idx, xb.shape), sq)


def mixed_pool2d_ref(x, kernel_size, stride=None, padding=0, alpha=0.5):
    """alpha * max_pool2d + (1 - alpha) * avg_pool2d (padding counted)."""
    return (alpha * max_pool2d_ref(x, kernel_size, stride, padding)[0]
            + (1 - alpha) * avg_pool2d_ref(x, kernel_size, stride, padding))


def mixed_pool2d_backward_ref(grad_output, x, kernel_size, stride=None, padding=0, alpha=0.5):
    g = np.asarray(grad_output, dtype=np.float64)
    return (max_pool2d_backward_ref(alpha * g, x, kernel_size, stride, padding)
            + avg_pool2d_backward_ref((1 - alpha) * g, x, kernel_size, stride, padding))


# ---------------------------------------------------------------------------
# Shape table shared by the pooling tests: (N, C, H, W) or (C, H, W) input and window
# arguments. `dilated` cases are for max/min pooling only; `padded` ones not for lp_pool2d.
# ---------------------------------------------------------------------------

def _case(id, shape, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    return dict(id=id, shape=shape, kernel_size=kernel_size, stride=stride, padding=padding,
                dilation=dilation, ceil_mode=ceil_mode)


POOL_CASES = [
    _case("k2s2", (2, 3, 8, 8), 2),
    _case("k2s2_7x7_floor", (2, 3, 7, 7), 2, 2),
    _case("k2s2_7x7_ceil", (2, 3, 7, 7), 2, 2, ceil_mode=True),
    _case("k3s2p1_8x9_floor", (2, 2, 8, 9), 3, 2, 1),
    _case("k3s2p1_8x9_ceil", (2, 2, 8, 9), 3, 2, 1, ceil_mode=True),
    _case("k3s2p1_6x6_ceil_past_padding", (1, 2, 6, 6), 3, 2, 1, ceil_mode=True),
    _case("k3s2_overlap", (2, 4, 9, 9), 3, 2),
    _case("k3s1p1_overlap", (2, 2, 6, 7), 3, 1, 1),
    _case("nonsquare_2x3_s12_p01", (2, 3, 9, 10), (2, 3), (1, 2), (0, 1)),
    _case("stride3_kernel2", (2, 3, 11, 10), 2, 3),
    _case("k1s2_nonsquare", (2, 3, 7, 6), (1, 2), 2),
    _case("stride3_kernel2_ceil_pad", (2, 3, 11, 10), 2, 3, 1, ceil_mode=True),
    _case("batch1_odd", (1, 5, 13, 11), 3, 2, 1),
    _case("kernel_equals_input", (2, 2, 5, 4), (5, 4)),
    _case("input_3d", (3, 7, 7), 3, 2, 1, ceil_mode=True),
    _case("dilation2", (2, 3, 10, 11), 3, 1, 1, 2),
    _case("dilation_2_3_ceil", (2, 2, 12, 13), (2, 3), (2, 1), 1, (2, 3), ceil_mode=True),
    _case("dilation2_stride3_ceil", (1, 3, 9, 10), 3, 3, 1, 2, ceil_mode=True),
]
POOL_CASE_IDS = [c["id"] for c in POOL_CASES]


def window_args(case, dilation=True, ceil=True):
    """The case's window arguments as keywords."""
    kw = dict(kernel_size=case["kernel_size"], stride=case["stride"], padding=case["padding"])
    if dilation:
        kw["dilation"] = case["dilation"]
    if ceil:
        kw["ceil_mode"] = case["ceil_mode"]
    return kw


def undilated(cases=POOL_CASES):
    return [c for c in cases if c["dilation"] == 1]


def unpadded(cases=POOL_CASES):
    return [c for c in undilated(cases) if c["padding"] == 0]


def ids(cases):
    return [c["id"] for c in cases]


_WINDOWS = (
    Sample("k3s2p1_odd", {"x": (2, 3, 8, 9)}, {"kernel_size": 3, "stride": 2, "padding": 1}),
    Sample("batch1_nonsquare_stride3", {"x": (1, 2, 11, 10)},
           {"kernel_size": (2, 3), "stride": (3, 2)}),
)
_ADAPTIVE = (Sample("odd_to_3x2", {"x": (2, 3, 7, 9)}, {"output_size": (3, 2)}),
             Sample("batch1_to_1", {"x": (1, 4, 5, 5)}, {"output_size": 1}))

SPECS = (
    OpSpec("max_pool2d", "pool", max_pool2d_ref, max_pool2d_backward_ref, _WINDOWS + (
        Sample("dilated_ceil", {"x": (2, 2, 10, 11)},
               {"kernel_size": 3, "stride": 2, "padding": 1, "dilation": 2,
                "ceil_mode": True}),
    ), torch="torch.nn.functional.max_pool2d", module="MaxPool2d"),
    OpSpec("min_pool2d", "pool", min_pool2d_ref, min_pool2d_backward_ref, _WINDOWS,
           module="MinPool2d"),
    OpSpec("avg_pool2d", "pool", avg_pool2d_ref, avg_pool2d_backward_ref, _WINDOWS + (
        Sample("ceil_no_pad_count", {"x": (2, 3, 7, 7)},
               {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True,
                "count_include_pad": False}),
    ), torch="torch.nn.functional.avg_pool2d", module="AvgPool2d"),
    OpSpec("lp_pool2d", "pool", lp_pool2d_ref, lp_pool2d_backward_ref, (
        Sample("p2_odd", {"x": (2, 3, 7, 9)}, {"norm_type": 2, "kernel_size": 3, "stride": 2}),
        Sample("p1.5_batch1", {"x": (1, 2, 6, 5)},
               {"norm_type": 1.5, "kernel_size": (2, 3), "stride": (2, 1)}),
    ), torch="torch.nn.functional.lp_pool2d", module="LPPool2d", nonneg_inputs=True),
    OpSpec("adaptive_avg_pool2d", "pool", adaptive_avg_pool2d_ref,
           adaptive_avg_pool2d_backward_ref, _ADAPTIVE,
           torch="torch.nn.functional.adaptive_avg_pool2d", module="AdaptiveAvgPool2d"),
    OpSpec("adaptive_max_pool2d", "pool", adaptive_max_pool2d_ref,
           adaptive_max_pool2d_backward_ref, _ADAPTIVE,
           torch="torch.nn.functional.adaptive_max_pool2d", module="AdaptiveMaxPool2d"),
    OpSpec("mixed_pool2d", "pool", mixed_pool2d_ref, mixed_pool2d_backward_ref, (
        Sample("k3s2p1_alpha0.3", {"x": (2, 3, 8, 9)},
               {"kernel_size": 3, "stride": 2, "padding": 1, "alpha": 0.3}),
    ), module="MixedPool2d"),
)
