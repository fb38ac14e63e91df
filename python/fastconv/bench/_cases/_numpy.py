"""The "numpy" peer: plain NumPy in the inputs' dtype (float32 when timed), the way one would
write these ops without a library: convolution as a sum over kernel taps, pooling as window
maxima and sums. Timed on the small cases only; its outputs are checked against the float64
references of fastconv._opinfo like every other side's. Layouts as PyTorch: NCHW, weights
(K, C/groups, R, S).
"""

import numpy as np


def _tap(xp, r, s, stride, P, Q):
    """The input pixels that kernel tap (r, s) meets, for every output pixel: (N, C, P, Q)."""
    return xp[:, :, r:r + stride * (P - 1) + 1:stride, s:s + stride * (Q - 1) + 1:stride]


def _out_size(H, W, R, S, stride, pad):
    return (H + 2 * pad - R) // stride + 1, (W + 2 * pad - S) // stride + 1


def _pad(x, pad):
    return np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))


def conv2d(x, w, b=None, stride=1, pad=0, groups=1):
    """out[n, k, p, q] = b[k] + sum over c, r, s of w[k, c, r, s] x[n, c, p*stride + r - pad,
    q*stride + s - pad], each group of channels on its own."""
    if groups > 1:
        xs, ws = np.split(x, groups, axis=1), np.split(w, groups, axis=0)
        y = np.concatenate([conv2d(xg, wg, None, stride, pad) for xg, wg in zip(xs, ws)], 1)
    else:
        N, C, H, W = x.shape
        K, _, R, S = w.shape
        P, Q = _out_size(H, W, R, S, stride, pad)
        xp = _pad(x, pad)
        acc = np.zeros((N, P, Q, K), dtype=x.dtype)
        for r in range(R):
            for s in range(S):
                acc += np.tensordot(_tap(xp, r, s, stride, P, Q), w[:, :, r, s], axes=([1], [1]))
        y = acc.transpose(0, 3, 1, 2)
    return y if b is None else y + b[None, :, None, None]


def conv2d_backward(dy, x, w, stride=1, pad=0, groups=1):
    """(dx, dw, db) of conv2d: each tap scatters dy through its weights into dx and gathers
    dy against the input pixels it met into dw."""
    if groups > 1:
        parts = [conv2d_backward(dyg, xg, wg, stride, pad) for dyg, xg, wg in
                 zip(np.split(dy, groups, 1), np.split(x, groups, 1), np.split(w, groups, 0))]
        return tuple(np.concatenate(p, axis=a) for p, a in zip(zip(*parts), (1, 0, 0)))
    N, C, H, W = x.shape
    K, _, R, S = w.shape
    P, Q = dy.shape[2:]
    xp = _pad(x, pad)
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    for r in range(R):
        for s in range(S):
            dw[:, :, r, s] = np.tensordot(dy, _tap(xp, r, s, stride, P, Q),
                                          axes=([0, 2, 3], [0, 2, 3]))
            _tap(dxp, r, s, stride, P, Q)[...] += np.tensordot(
                dy, w[:, :, r, s], axes=([1], [0])).transpose(0, 3, 1, 2)
    return dxp[:, :, pad:pad + H, pad:pad + W], dw, dy.sum(axis=(0, 2, 3))


def _windows(x, k, stride):
    N, C, H, W = x.shape
    P, Q = _out_size(H, W, k, k, stride, 0)
    return [_tap(x, i, j, stride, P, Q) for i in range(k) for j in range(k)], (P, Q)


def max_pool2d(x, k, stride):
    """(out, None): the indices fastconv and torch return are checked through the backward."""
    taps, _ = _windows(x, k, stride)
    return np.max(taps, axis=0), None


def max_pool2d_backward(dy, x, k, stride):
    """dy goes to the first maximum of each window."""
    taps, (P, Q) = _windows(x, k, stride)
    first = np.argmax(taps, axis=0)
    dx = np.zeros_like(x)
    for t, (i, j) in enumerate((i, j) for i in range(k) for j in range(k)):
        _tap(dx, i, j, stride, P, Q)[...] += np.where(first == t, dy, 0)
    return dx


def avg_pool2d(x, k, stride):
    taps, _ = _windows(x, k, stride)
    return np.sum(taps, axis=0) / (k * k)


def avg_pool2d_backward(dy, x, k, stride):
    _, (P, Q) = _windows(x, k, stride)
    dx = np.zeros_like(x)
    for i in range(k):
        for j in range(k):
            _tap(dx, i, j, stride, P, Q)[...] += dy / (k * k)
    return dx


def global_avg_pool(x):
    return x.mean(axis=(2, 3), keepdims=True)


def global_avg_pool_backward(dy, x):
    return np.broadcast_to(dy / (x.shape[2] * x.shape[3]), x.shape).copy()


def relu(x):
    return np.maximum(x, 0)


def relu_backward(dy, x):
    return np.where(x > 0, dy, 0)


def tanh_backward(dy, y):
    return dy * (1 - y * y)


def softmax(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def softmax_backward(dy, y):
    return y * (dy - (dy * y).sum(axis=1, keepdims=True))


def batch_norm_train(x, w, b, eps=1e-5):
    """(out, batch mean, 1/sqrt(biased variance + eps)) over (N, H, W) per channel."""
    mean = x.mean(axis=(0, 2, 3))
    invstd = 1 / np.sqrt(x.var(axis=(0, 2, 3)) + eps)
    xhat = (x - mean[:, None, None]) * invstd[:, None, None]
    return xhat * w[:, None, None] + b[:, None, None], mean, invstd


def batch_norm_train_backward(dy, x, w, eps=1e-5):
    """(dx, dw, db) with the batch statistics depending on x."""
    m = x.size // x.shape[1]
    _, mean, invstd = batch_norm_train(x, w, w, eps)
    xhat = (x - mean[:, None, None]) * invstd[:, None, None]
    db = dy.sum(axis=(0, 2, 3))
    dw = (dy * xhat).sum(axis=(0, 2, 3))
    scale = (w * invstd / m)[:, None, None]
    return scale * (m * dy - db[:, None, None] - xhat * dw[:, None, None]), dw, db


def batch_norm_eval(x, mean, var, w, b, eps=1e-5):
    return ((x - mean[:, None, None]) / np.sqrt(var[:, None, None] + eps) * w[:, None, None]
            + b[:, None, None])


def cross_entropy(x, target):
    """Mean over the batch of logsumexp(x) - x[target]."""
    m = x.max(axis=1, keepdims=True)
    lse = np.log(np.exp(x - m).sum(axis=1)) + m[:, 0]
    return (lse - x[np.arange(len(target)), target]).mean()


def cross_entropy_backward(x, target):
    g = softmax(x)
    g[np.arange(len(target)), target] -= 1
    return g / len(target)


def linear(x, w, b):
    return x @ w.T + b


def linear_backward(dy, x, w):
    return dy @ w, dy.T @ x, dy.sum(axis=0)
