"""Float64 NumPy references of the losses (cross_entropy, mse_loss, multi_margin_loss).

Written from the formulas in torch.nn.functional's documentation, independently of fastconv's
C++: whole-array NumPy for cross entropy and mse, a loop over rows for the margin loss. Backwards
are the analytic gradients with respect to input, checked against finite differences in
test_reference_loss.py. Results are float64 whatever the input dtype; NaN and Inf are computed,
never warned about.
"""

import numpy as np

from ._spec import OpSpec, Sample

__all__ = [
    "as_rows",
    "cross_entropy_ref",
    "cross_entropy_backward_ref",
    "mse_loss_ref",
    "mse_loss_backward_ref",
    "multi_margin_loss_ref",
    "multi_margin_loss_backward_ref",
]


def as_rows(a, class_axis=True):
    """(C,), (N, C) or (N, C, d1, ...) -> (M, C) rows (class_axis) or target (...) -> (M,)."""
    a = np.asarray(a, dtype=np.float64) if class_axis else np.asarray(a)
    if not class_axis:
        return a.reshape(-1)
    if a.ndim == 1:
        return a.reshape(1, -1)
    return np.moveaxis(a, 1, -1).reshape(-1, a.shape[1])


def _from_rows(rows, shape):
    """Inverse of as_rows for an array of the logits' shape."""
    if len(shape) == 1:
        return rows.reshape(shape)
    moved = rows.reshape((shape[0],) + tuple(shape[2:]) + (shape[1],))
    return np.moveaxis(moved, -1, 1)


def loss_shape(shape):
    """Shape of the per-element loss for logits of `shape`: (N, d1, ...) or () unbatched."""
    return () if len(shape) == 1 else (shape[0],) + tuple(shape[2:])


def _log_softmax(x):
    m = np.max(x, axis=1, keepdims=True)
    return x - m - np.log(np.sum(np.exp(x - m), axis=1, keepdims=True))


def _reduce(per_item, reduction, divisor):
    if reduction == "none":
        return per_item
    total = np.sum(per_item)
    return np.asarray(total / divisor if reduction == "mean" else total)


def _is_prob(input, target):
    return np.asarray(target).dtype.kind == "f" and np.shape(target) == np.shape(input)


def _targets(input, target, weight, ignore_index, label_smoothing):
    """Per row: the smoothed distribution q (rows, C) the loss is -sum_c w_c q_c logp_c over,
    the row's 'mean' weight, and a keep mask (False for ignored rows)."""
    x = as_rows(input)
    M, C = x.shape
    w = np.ones(C) if weight is None else np.asarray(weight, dtype=np.float64)
    eps = float(label_smoothing)
    if _is_prob(input, target):
        q = as_rows(target)
        if eps > 0:
            q = q * (1 - eps) + eps / C
        return x, w, q, np.ones(M), np.ones(M, dtype=bool)
    t = as_rows(target, class_axis=False).astype(np.int64)
    keep = t != ignore_index
    onehot = np.zeros((M, C))
    onehot[np.nonzero(keep)[0], t[keep]] = 1.0
    q = (1 - eps) * onehot + (eps / C if eps > 0 else 0.0)
    row_w = np.where(keep, w[np.where(keep, t, 0)], 0.0)
    return x, w, q, row_w, keep


def cross_entropy_ref(input, target, weight=None, ignore_index=-100, reduction="mean",
                      label_smoothing=0.0):
    """torch.nn.functional.cross_entropy for class indices or class probabilities."""
    shape = loss_shape(np.shape(input))
    with np.errstate(all="ignore"):
        x, w, q, row_w, keep = _targets(input, target, weight, ignore_index, label_smoothing)
        logp = _log_softmax(x)
        if _is_prob(input, target):
            return _reduce(-np.sum(logp * q * w, axis=1).reshape(shape), reduction, x.shape[0])
        t = as_rows(target, class_axis=False).astype(np.int64)
        tt = np.where(keep, t, 0)
        eps = float(label_smoothing)
        nll = np.where(keep, -w[tt] * logp[np.arange(len(t)), tt], 0.0).reshape(shape)
        if not eps > 0:
            return _reduce(nll, reduction, np.sum(row_w))
        # torch reduces the two terms separately, then takes (1 - eps) nll + eps / C smooth
        smooth = np.where(keep, -np.sum(logp * w, axis=1), 0.0).reshape(shape)
        nll = _reduce(nll, reduction, np.sum(row_w))
        smooth = _reduce(smooth, reduction, np.sum(row_w))
        return (1 - eps) * nll + smooth * (eps / x.shape[1])


def _row_scale(grad_output, reduction, M, divisor):
    g = np.asarray(grad_output, dtype=np.float64)
    if reduction == "none":
        return g.reshape(-1)
    return np.full(M, g / divisor if reduction == "mean" else g)


def cross_entropy_backward_ref(grad_output, input, target, weight=None, ignore_index=-100,
                               reduction="mean", label_smoothing=0.0):
    """d loss / d input: a = d loss / d logp = -s w q per row, then dx = a - softmax * sum(a)."""
    with np.errstate(all="ignore"):
        x, w, q, row_w, keep = _targets(input, target, weight, ignore_index, label_smoothing)
        M, C = x.shape
        divisor = M if _is_prob(input, target) else np.sum(row_w)
        s = _row_scale(grad_output, reduction, M, divisor)
        s = np.where(keep, s, 0.0)
        a = -s[:, None] * q * w
        p = np.exp(_log_softmax(x))
        dx = a - p * np.sum(a, axis=1, keepdims=True)
        return _from_rows(dx, np.shape(input))


def mse_loss_ref(input, target, reduction="mean", weight=None):
    x = np.asarray(input, dtype=np.float64)
    y = np.asarray(target, dtype=np.float64)
    with np.errstate(all="ignore"):
        if weight is None:
            return _reduce((x - y) ** 2, reduction, x.size)
        w = np.asarray(weight, dtype=np.float64)
        return _reduce((x - y) ** 2 * w, reduction, np.sum(w))


def mse_loss_backward_ref(grad_output, input, target, reduction="mean", weight=None):
    x = np.asarray(input, dtype=np.float64)
    y = np.asarray(target, dtype=np.float64)
    g = np.asarray(grad_output, dtype=np.float64)
    w = np.ones_like(x) if weight is None else np.asarray(weight, dtype=np.float64)
    with np.errstate(all="ignore"):
        if reduction == "mean":
            g = g / (x.size if weight is None else np.sum(w))
        return 2.0 * (x - y) * g * w


def _margin_rows(input, target):
    x = np.asarray(input, dtype=np.float64)
    x = x.reshape(1, -1) if x.ndim == 1 else x
    return x, np.asarray(target).reshape(-1).astype(np.int64)


def multi_margin_loss_ref(input, target, p=1, margin=1.0, weight=None, reduction="mean"):
    """sum_{i != y} w_y max(0, margin - x_y + x_i)^p / C, one row at a time."""
    x, t = _margin_rows(input, target)
    N, C = x.shape
    per = np.zeros(N)
    with np.errstate(all="ignore"):
        for n in range(N):
            y = t[n]
            z = margin - x[n, y] + x[n]
            active = (z > 0) & (np.arange(C) != y)  # z > 0 is False for NaN, as in torch
            wy = 1.0 if weight is None else float(weight[y])
            per[n] = np.sum(z[active] ** p) * wy / C
        return _reduce(per.reshape(np.shape(target)), reduction, N)


def multi_margin_loss_backward_ref(grad_output, input, target, p=1, margin=1.0, weight=None,
                                   reduction="mean"):
    """d loss / d x_i = w_y p z^(p-1) / C for each active term (z > 0), minus their sum at y."""
    x, t = _margin_rows(input, target)
    N, C = x.shape
    g = np.asarray(grad_output, dtype=np.float64).reshape(-1)
    dx = np.zeros_like(x)
    with np.errstate(all="ignore"):
        for n in range(N):
            y = t[n]
            gn = g[n] if reduction == "none" else (g[0] / N if reduction == "mean" else g[0])
            wy = 1.0 if weight is None else float(weight[y])
            z = margin - x[n, y] + x[n]
            active = (z > 0) & (np.arange(C) != y)
            d = np.where(active, wy * p * z ** (p - 1) / C * gn, 0.0)
            dx[n] = d
            dx[n, y] = -np.sum(d)
        return dx.reshape(np.shape(input))


def _classes(shape, C):
    return lambda rng: rng.integers(0, C, shape)


SPECS = (
    OpSpec("cross_entropy", "loss", cross_entropy_ref, cross_entropy_backward_ref, (
        Sample("mean", {"input": (5, 7), "target": _classes((5,), 7)}),
        Sample("spatial_sum_smoothed", {"input": (2, 4, 3, 5), "target": _classes((2, 3, 5), 4)},
               {"reduction": "sum", "label_smoothing": 0.1}),
        Sample("batch1_none", {"input": (1, 3), "target": _classes((1,), 3)},
               {"reduction": "none"}),
    ), torch="torch.nn.functional.cross_entropy", module="CrossEntropyLoss"),
    OpSpec("mse_loss", "loss", mse_loss_ref, mse_loss_backward_ref, (
        Sample("mean_odd", {"input": (3, 5, 7), "target": (3, 5, 7)}),
        Sample("none_batch1", {"input": (1, 4), "target": (1, 4)}, {"reduction": "none"}),
    ), torch="torch.nn.functional.mse_loss", module="MSELoss"),
    OpSpec("multi_margin_loss", "loss", multi_margin_loss_ref, multi_margin_loss_backward_ref, (
        Sample("p1_mean", {"input": (6, 5), "target": _classes((6,), 5)}),
        Sample("p2_sum_margin", {"input": (4, 3), "target": _classes((4,), 3)},
               {"p": 2, "margin": 0.5, "reduction": "sum"}),
    ), torch="torch.nn.functional.multi_margin_loss", module="MultiMarginLoss"),
)
