"""SyncBatchNorm: batch normalisation whose training statistics are those of the global batch."""

import numpy as np

from .._arrays import module_of
from ..nn.normalization import _BatchNorm
from ..nn.parameter import accumulating_grads
from . import _group as G


class SyncBatchNorm(_BatchNorm):
    """Batch norm over (N, C, *) input whose training-mode mean and variance are taken over
    the batches of every rank, as torch.nn.SyncBatchNorm; evaluation mode, and a process
    group of one (or none), is plain batch norm.

    In training the per-channel sums are reduced over the ranks (in float64, in two passes:
    the mean, then the squared deviations from it), the running statistics updated from the
    global ones, and backward reduces the sums of dy and dy * x_hat the same way. Those are
    weighted by each rank's share of the global batch, as DistributedDataParallel weights
    gradients, so a model trained on R ranks matches one process on the concatenated batch.
    """
    _dims = (2, 3, 4, 5)
    _layout = "(N, C, *) with 2 to 5 dimensions"

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, process_group=None, device=None, dtype=None, *,
                 bias=True):
        _default_group_only(process_group, "SyncBatchNorm")
        super().__init__(num_features, eps, momentum, affine, track_running_stats,
                         device=device, dtype=dtype, bias=bias)

    def _synced(self):
        group = G.group()
        return self.training and group is not None and group.size > 1

    def forward(self, x):
        if not self._synced():
            object.__setattr__(self, "_sync", None)
            return super().forward(x)
        momentum = self._step(x)
        xp = module_of(x)
        C = x.shape[1]
        # the spatial size spelled out: a rank's batch may be empty (NumPy cannot infer -1 then)
        x64 = x.astype(np.float64).reshape(x.shape[0], C, int(np.prod(x.shape[2:])))
        sums = xp.zeros(C + 2, np.float64)
        sums[:C] = x64.sum(axis=(0, 2))
        sums[C], sums[C + 1] = x64.shape[0] * x64.shape[2], x.shape[0]
        G.all_reduce(sums)
        count, batch = float(sums[C]), float(sums[C + 1])
        if count <= 1:
            raise ValueError(f"{self._name()}: expected more than 1 value per channel when "
                             f"training, got {int(count)} over all ranks")
        mean = sums[:C] / count
        centred = x64 - mean[None, :, None]
        var = (centred * centred).sum(axis=(0, 2))
        G.all_reduce(var)
        var /= count
        invstd = 1.0 / xp.sqrt(var + self.eps)
        xhat = centred * invstd[None, :, None]
        w = None if self.weight is None else self.weight.data.astype(np.float64)
        b = None if self.bias is None else self.bias.data.astype(np.float64)
        out = xhat * w[None, :, None] if w is not None else xhat.copy()
        if b is not None:
            out += b[None, :, None]
        if self.track_running_stats:
            m = 0.0 if momentum is None else float(momentum)
            rm, rv = self.running_mean, self.running_var
            rm[...] = (m * mean + (1 - m) * rm.astype(np.float64)).astype(rm.dtype)
            unbiased = var * count / (count - 1)
            rv[...] = (m * unbiased + (1 - m) * rv.astype(np.float64)).astype(rv.dtype)
        object.__setattr__(self, "_sync", (xhat, invstd, float(x.shape[0]), batch, count))
        return out.reshape(x.shape).astype(x.dtype)

    def backward(self, dout):
        if self._sync is None:
            return super().backward(dout)
        xhat, invstd, local, batch, count = self._sync
        xp = module_of(dout)
        C = xhat.shape[1]
        dy = dout.astype(np.float64).reshape(xhat.shape)
        sdy = dy.sum(axis=(0, 2))
        sdyx = (dy * xhat).sum(axis=(0, 2))
        gw, gb = accumulating_grads(self.weight, self.bias)
        if gw is not None:
            gw += sdyx.astype(gw.dtype)
        if gb is not None:
            gb += sdy.astype(gb.dtype)
        sums = xp.concatenate([sdy, sdyx]) * local
        G.all_reduce(sums)
        # A rank with an empty batch still takes part in the reduction; it has no dx to scale.
        sums *= (batch / local) / (batch * count) if local else 0.0
        w = 1.0 if self.weight is None else self.weight.data.astype(np.float64)[None, :, None]
        dx = (w * invstd[None, :, None]) * (dy - sums[None, :C, None]
                                            - xhat * sums[None, C:, None])
        return dx.reshape(dout.shape).astype(dout.dtype)


def _default_group_only(process_group, who):
    if process_group is not None:
        raise ValueError(f"{who}: process_group must be None (fastconv reduces over the default "
                         f"group only), got {process_group!r}")


def convert_sync_batchnorm(module, process_group=None):
    """Every BatchNorm1d/BatchNorm2d in `module` (the module itself included) replaced by a
    SyncBatchNorm that keeps its parameters, buffers and settings (the same arrays, so an
    optimizer made before still updates them); returns the converted module, as
    torch.nn.SyncBatchNorm.convert_sync_batchnorm. fastconv has one process group, the
    default: process_group must be None."""
    _default_group_only(process_group, "convert_sync_batchnorm")
    if isinstance(module, _BatchNorm) and not isinstance(module, SyncBatchNorm):
        converted = object.__new__(SyncBatchNorm)
        converted.__dict__.update(module.__dict__)
        return converted
    for name, child in list(module._modules.items()):
        if child is None:
            continue
        new = convert_sync_batchnorm(child)
        if new is not child:
            setattr(module, name, new)
    return module


SyncBatchNorm.convert_sync_batchnorm = staticmethod(convert_sync_batchnorm)
