"""One rank of a test job of fastconv.distributed: `mpiexec -n 2 python _dist_worker.py SCENARIO`
(tests/test_distributed.py launches it). Rank 0 prints one JSON line of results on stdout."""

import json
import os
import sys

import numpy as np

import fastconv
import fastconv.distributed as dist
from fastconv import nn, optim
from fastconv.distributed._sampler import randperm_like_torch


def _model(dtype):
    # No bias before the batch norm: its gradient is zero up to rounding, which Adam's
    # normalisation would turn into steps of size lr in the direction of the rounding.
    m = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1, bias=False), nn.BatchNorm2d(6), nn.ReLU(),
                      nn.MaxPool2d(2), nn.Flatten(), nn.Linear(6 * 4 * 4, 5))
    return m.to(np.dtype(dtype).type)


def _optimizer(name, params):
    if name == "sgd":
        return optim.SGD(params, lr=0.05, momentum=0.9)
    return optim.Adam(params, lr=0.01)


def _data(n, dtype):
    rng = np.random.default_rng(42)
    x = rng.standard_normal((n, 3, 8, 8)).astype(dtype)
    x[:, 1] += 0.5  # a channel with a non-zero mean
    return x, rng.integers(0, 5, n)


def _steps(model, opt, batches):
    loss_fn = nn.CrossEntropyLoss()
    for x, y in batches:
        loss_fn(model(x), y)
        model.backward(loss_fn.backward())
        opt.step()
        opt.zero_grad()


def _state(model):
    return {k: np.asarray(v, np.float64) for k, v in model.state_dict().items()}


def _exact_case(dtype, opt_name, bn_mode, n, per_rank, steps):
    """R ranks x batch per_rank against one process x batch R * per_rank on the same samples;
    returns the largest difference relative to each array's largest magnitude."""
    rank, world = dist.get_rank(), dist.get_world_size()
    x, y = _data(n, dtype)
    sampler = dist.DistributedSampler(n, shuffle=True, seed=7)
    loader = fastconv.data.DataLoader(x, y, per_rank, sampler=sampler)
    fastconv.manual_seed(100 + rank)  # different draws per rank: DDP must copy rank 0's
    model = _model(dtype)
    if bn_mode == "sync":
        model = dist.convert_sync_batchnorm(model)
    ddp = dist.DistributedDataParallel(model)
    ddp.train()
    if bn_mode == "eval":
        model[1].eval()
    opt = _optimizer(opt_name, model.parameters())
    done = 0
    while done < steps:
        for xb, yb in loader:
            _steps(ddp, opt, [(xb, yb)])
            done += 1
            if done == steps:
                break
        sampler.set_epoch(sampler.epoch + 1)
    mine = _state(model)
    if rank != 0:
        return None
    fastconv.manual_seed(100)
    ref = _model(dtype)
    if bn_mode == "eval":
        ref[1].eval()
    ref_opt = _optimizer(opt_name, ref.parameters())
    batch, done, epoch = world * per_rank, 0, 0
    while done < steps:
        order = randperm_like_torch(n, 7 + epoch)  # the sampler's order, one process
        for start in range(0, n, batch):
            idx = order[start:start + batch]
            _steps(ref, ref_opt, [(x[idx], y[idx])])
            done += 1
            if done == steps:
                break
        epoch += 1
    expect = _state(ref)
    return max(float(np.abs(mine[k] - expect[k]).max() / max(np.abs(expect[k]).max(), 1e-30))
               for k in expect)


def exact():
    results = {}
    for dtype in ("float64", "float32"):
        for opt_name in ("sgd", "adam"):
            for bn_mode in ("eval", "sync"):
                key = f"{dtype}-{opt_name}-{bn_mode}"
                results[key] = _exact_case(dtype, opt_name, bn_mode, 64 * 20, 32, 20)
        # 100 samples at 32 per rank: each rank's second batch has 18
        results[f"{dtype}-sgd-uneven"] = _exact_case(dtype, "sgd", "sync", 100, 32, 6)
    return results


def sampler():
    """The shards of every rank cover the dataset once per epoch (drop_last=False pads)."""
    out = {}
    for n in (10, 11):
        for drop_last in (False, True):
            s = dist.DistributedSampler(n, shuffle=True, seed=3, drop_last=drop_last)
            s.set_epoch(1)
            mine = np.array(s.indices())
            every = dist.all_gather(np.resize(mine, 6).astype(np.int64))
            out[f"{n}-{drop_last}"] = [row[:len(mine)].tolist() for row in every]
    return out


def evaluate():
    """Sharded scoring of 11 samples on the ranks (one padded sample) against one process."""
    from fastconv import data, train

    x, y = _data(11, "float64")
    fastconv.manual_seed(5)
    model = _model("float64")
    loader = data.DataLoader(x, y, 4, sampler=dist.DistributedSampler(11, shuffle=False))
    got = train.evaluate(model, loader, nn.CrossEntropyLoss(), num_classes=5)
    want = train.evaluate(model, data.DataLoader(x, y, 4), nn.CrossEntropyLoss(), num_classes=5)
    return {"loss": [got["loss"], want["loss"]], "accuracy": [got["accuracy"], want["accuracy"]],
            "support": [got["per_class"]["support"].tolist(),
                        want["per_class"]["support"].tolist()]}


def collectives():
    rank, world = dist.get_rank(), dist.get_world_size()
    a = np.arange(5, dtype=np.float32) + rank
    dist.all_reduce(a)
    m = np.array([rank, -rank], np.int64)
    dist.all_reduce(m, dist.ReduceOp.MAX)
    avg = np.full(3, float(rank))
    dist.all_reduce(avg, "avg")
    b = np.full(4, rank, np.float64)
    dist.broadcast(b, src=world - 1)
    dist.barrier()

    class Scaled(nn.Module):  # a forward of several inputs, passed on by the wrapper
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 2).double()

        def forward(self, x, shift, scale=1.0):
            return self.lin(x) * scale + shift

    ddp = dist.DistributedDataParallel(Scaled())
    x = np.ones((4, 3))
    out = ddp(x, np.full((4, 2), 0.5), scale=2.0)
    inputs = bool(np.array_equal(out, ddp.module.lin(x) * 2.0 + 0.5)) and ddp._batch == 4
    return {"sum": a.tolist(), "max": m.tolist(), "avg": avg.tolist(), "bcast": b.tolist(),
            "world": world, "local_rank": dist.get_local_rank(), "backend": dist.get_backend(),
            "ddp_inputs": inputs}


def sync_bn_empty():
    """Rank 1's batch is empty: SyncBatchNorm on rank 0 must equal plain batch norm on rank 0's
    batch (the global one), and rank 1 gets empty results."""
    rank = dist.get_rank()
    x = np.random.default_rng(8).standard_normal((6, 3, 4, 5))
    dy = np.random.default_rng(9).standard_normal(x.shape)
    mine = slice(None) if rank == 0 else slice(0, 0)
    fastconv.manual_seed(1)
    sync = dist.SyncBatchNorm(3, momentum=0.3).double()
    sync.weight.data[:] = [0.5, 1.5, -2.0]
    out, dx = sync(x[mine]), sync.backward(dy[mine])
    if rank == 1:
        assert out.shape == dx.shape == (0, 3, 4, 5)
        return None
    plain = nn.BatchNorm2d(3, momentum=0.3).double()
    plain.weight.data[:] = sync.weight.data
    want, want_dx = plain(x), plain.backward(dy)
    return {k: float(np.abs(a - b).max()) for k, a, b in [
        ("out", out, want), ("dx", dx, want_dx), ("mean", sync.running_mean, plain.running_mean),
        ("var", sync.running_var, plain.running_var),
        ("dw", sync.weight.grad, plain.weight.grad), ("db", sync.bias.grad, plain.bias.grad)]}


def errors():
    """Bad arguments are refused before any collective: (exception type, message) each."""
    calls = [lambda: dist.all_reduce([1.0, 2.0]),
             lambda: dist.all_reduce(np.zeros((3, 4))[:, 1]),
             lambda: dist.all_reduce(np.zeros(3), op="mean"),
             lambda: dist.all_reduce(np.zeros(3, np.int64), op="avg"),
             lambda: dist.all_reduce(np.zeros(3, np.complex64)),
             lambda: dist.broadcast(np.zeros(3), src=dist.get_world_size()),
             lambda: dist.init_process_group()]
    out = []
    for call in calls:
        try:
            call()
            out.append(["no error", ""])
        except Exception as e:
            out.append([type(e).__name__, str(e)])
    dist.barrier()  # the refused calls left the ranks in step
    return out


def exits_zero():
    """Rank 1 leaves with status 0 before the others finish (no exit handler runs)."""
    if dist.get_rank() == 1:
        sys.stdout.flush()
        os._exit(0)
    dist.all_reduce(np.zeros(3))
    return {}


def nccl():
    """The NCCL backend on one GPU per rank: collectives on CuPy arrays, and DistributedDataParallel
    steps of a model on the GPU against the same steps on the CPU (one rank per GPU, so on a
    one-GPU machine this is a job of one rank that still takes every NCCL path)."""
    import cupy as cp

    rank, world = dist.get_rank(), dist.get_world_size()
    a = cp.arange(5, dtype=cp.float32) + rank
    dist.all_reduce(a)
    b = cp.full(4, rank, cp.float64)
    dist.broadcast(b, src=world - 1)
    x, y = _data(64 * world, "float32")
    fastconv.manual_seed(3)
    cpu = _model("float32")
    fastconv.manual_seed(3)
    gpu = _model("float32").to("cuda")
    ddp = dist.DistributedDataParallel(gpu)
    mine = slice(rank * 64, (rank + 1) * 64)
    _steps(ddp, _optimizer("sgd", gpu.parameters()), [(cp.asarray(x[mine]), cp.asarray(y[mine]))])
    _steps(cpu, _optimizer("sgd", cpu.parameters()), [(x, y)])
    got = {k: np.asarray(cp.asnumpy(v), np.float64) for k, v in gpu.state_dict().items()}
    expect = _state(cpu)
    diff = max(float(np.abs(got[k] - expect[k]).max() / max(np.abs(expect[k]).max(), 1e-30))
               for k in expect)
    return {"sum": cp.asnumpy(a).tolist(), "bcast": cp.asnumpy(b).tolist(), "world": world,
            "backend": dist.get_backend(), "diff": diff}


def raises():
    dist.barrier()
    if dist.get_rank() == 1:
        raise ValueError("rank 1 broke on purpose")
    dist.all_reduce(np.zeros(3))
    return {}


def skips():
    if dist.get_rank() == 0:
        dist.all_reduce(np.zeros(3))
    dist.barrier()
    return {}


def shapes():
    dist.all_reduce(np.zeros(3 + dist.get_rank()))
    return {}


def reduce_ops():
    dist.all_reduce(np.zeros(3), op="sum" if dist.get_rank() == 0 else "max")
    return {}


def leaves():
    """Rank 1 returns early and exits normally: the final agreement must fail the job."""
    if dist.get_rank() == 1:
        sys.exit(0)
    dist.all_reduce(np.zeros(3))
    return {}


if __name__ == "__main__":
    fastconv.set_num_threads(1)
    dist.init_process_group("nccl" if sys.argv[1] == "nccl" else "mpi")
    result = globals()[sys.argv[1]]()
    if dist.get_rank() == 0:
        print(json.dumps(result), flush=True)
    dist.destroy_process_group()
