"""DistributedDataParallel: one model replica per rank, gradients reduced after each backward."""

import numpy as np

from .._arrays import module_of
from ..nn.module import Module
from . import _group as G


class DistributedDataParallel(Module):
    """Wraps `module` for data-parallel training, as torch.nn.parallel.DistributedDataParallel.

    At construction every parameter and buffer is overwritten with rank 0's, so all replicas
    start equal whatever each rank's initialisation drew. backward() runs the module's backward
    and then reduces the gradients of the trainable parameters (requires_grad, fixed at
    construction: freeze before wrapping) over the ranks in buckets of about bucket_cap_mb MB,
    in one fixed order on every rank. Each rank's gradient is weighted by its share of the
    global batch (its forward's batch size over the sum over ranks), so the result is the
    gradient of the loss averaged over every sample of the step, exact also for an uneven last
    batch, provided the loss is a per-sample mean (reduction="mean", the default). With
    broadcast_buffers=True, rank 0's buffers (batch-norm running statistics) are copied to every
    rank at each forward in training mode, as torch does. state_dict keys carry the "module."
    prefix, as torch's; the wrapped model is `.module`.
    """

    def __init__(self, module, bucket_cap_mb=25, broadcast_buffers=True):
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DistributedDataParallel: module must be a fastconv Module, got "
                            f"{type(module).__name__}")
        if isinstance(bucket_cap_mb, bool) or not isinstance(bucket_cap_mb, (int, float)) \
                or not bucket_cap_mb > 0:
            raise ValueError(f"DistributedDataParallel: bucket_cap_mb must be a positive number, "
                             f"got {bucket_cap_mb!r}")
        G._require("DistributedDataParallel")
        self.module = module
        object.__setattr__(self, "broadcast_buffers", bool(broadcast_buffers))
        object.__setattr__(self, "bucket_cap_mb", bucket_cap_mb)
        self._sync(dict(module.named_parameters()).values(), attr="data")
        self._sync_buffers()
        params = [p for p in module.parameters() if p.requires_grad]
        object.__setattr__(self, "_buckets", _buckets(params[::-1], bucket_cap_mb * 2**20))
        object.__setattr__(self, "_batch", None)
        object.__setattr__(self, "_flats", None)  # one reduction buffer per bucket, made once

    # Copies rank 0's arrays into every rank's, one broadcast per dtype and device.
    def _sync(self, owners, attr=None):
        arrays = [getattr(o, attr) if attr else o for o in owners]
        for group in _by_kind(arrays):
            xp = module_of(group[0])
            flat = xp.concatenate([a.ravel() for a in group])
            G.broadcast(flat, 0)
            _scatter(flat, group)

    def _sync_buffers(self):
        buffers = [b for _, b in self.module.named_buffers() if b is not None]
        if buffers:
            self._sync(buffers)

    def forward(self, x, *args, **kwargs):
        """The module's forward; the first input's leading dimension is this rank's batch."""
        if self.broadcast_buffers and self.training:
            self._sync_buffers()
        object.__setattr__(self, "_batch", int(x.shape[0]) if getattr(x, "ndim", 0) else 1)
        return self.module(x, *args, **kwargs)

    def backward(self, dout):
        if self._batch is None:
            raise RuntimeError("DistributedDataParallel.backward: call forward first")
        dx = self.module.backward(dout)
        self.reduce_gradients(self._batch)
        return dx

    def backward_params(self, dout):
        if self._batch is None:
            raise RuntimeError("DistributedDataParallel.backward_params: call forward first")
        self.module.backward_params(dout)
        self.reduce_gradients(self._batch)

    def reduce_gradients(self, batch_size):
        """Replace each trainable parameter's gradient with the global-batch gradient: the
        ranks' gradients weighted by batch_size / (sum of batch sizes) and summed. backward()
        calls it; a custom loop that runs the module's backward itself calls it once per step."""
        total = np.array([batch_size], np.float64)
        G.all_reduce(total)
        scale, inv_total = float(batch_size), 1.0 / float(total[0])
        if self._flats is None:
            object.__setattr__(self, "_flats", [
                module_of(b[0].data).empty(sum(p.data.size for p in b), b[0].data.dtype)
                for b in self._buckets])
        for bucket, flat in zip(self._buckets, self._flats):
            xp = module_of(flat)
            # Two passes over the gradients besides the reduction: scaled into the bucket,
            # then divided back out into each parameter's gradient.
            offset = 0
            for p in bucket:
                n = p.data.size
                part = flat[offset:offset + n]
                if p.grad is None:
                    part[...] = 0
                else:
                    xp.multiply(p.grad.reshape(-1), scale, out=part)
                offset += n
            G.all_reduce(flat)
            offset = 0
            for p in bucket:
                n = p.data.size
                part = flat[offset:offset + n].reshape(p.shape)
                if p.grad is None:
                    p.grad = part * inv_total
                else:
                    xp.multiply(part, inv_total, out=p.grad)
                offset += n


def _kind(a):
    return (str(a.dtype), getattr(a, "device", "cpu").__repr__())


def _by_kind(arrays):
    groups = {}
    for a in arrays:
        groups.setdefault(_kind(a), []).append(a)
    return list(groups.values())


def _scatter(flat, arrays):
    offset = 0
    for a in arrays:
        a[...] = flat[offset:offset + a.size].reshape(a.shape)
        offset += a.size


def _buckets(params, cap_bytes):
    """Consecutive parameters of one dtype and device, each bucket closed once it reaches
    cap_bytes (so a bucket holds at least one parameter)."""
    buckets, current, size = [], [], 0
    for p in params:
        if current and (_kind(p.data) != _kind(current[0].data) or size >= cap_bytes):
            buckets.append(current)
            current, size = [], 0
        current.append(p)
        size += p.data.nbytes
    if current:
        buckets.append(current)
    return buckets
