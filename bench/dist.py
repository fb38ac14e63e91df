"""Data-parallel costs on this machine: a 10 MB all_reduce, and training throughput on 1 process
against N ranks (fixed batch per rank, cores / ranks threads each), with the share of each step
spent reducing gradients.

    python bench/dist.py [--nproc 2] [--model fashion_cnn] [--batch 64] [--steps 30]

Run plainly it launches itself under this environment's mpiexec (1 process without
DistributedDataParallel as the baseline, then N ranks) and prints a markdown table. Times are
medians over steps after warm-up. On a cluster run the worker part with the cluster's launcher:
`srun -n 8 python bench/dist.py --worker` (rank 0 prints one JSON line).
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

import numpy as np


def _worker(args):
    import fastconv
    import fastconv.distributed as dist
    from fastconv import models, nn, optim

    distributed = args.nproc > 1
    threads = max(1, len(os.sched_getaffinity(0)) // args.nproc)
    fastconv.set_num_threads(threads)
    result = {"ranks": args.nproc, "threads_per_rank": threads, "model": args.model,
              "batch_per_rank": args.batch}
    if distributed:
        dist.init_process_group("mpi")
        # all_reduce of 10 MB of float32, in place
        buf = np.ones(10 * 2**20 // 4, np.float32)
        times = []
        for i in range(25):
            dist.barrier()
            start = time.perf_counter()
            dist.all_reduce(buf)
            if i >= 5:
                times.append(time.perf_counter() - start)
        t = statistics.median(times)
        n = dist.get_world_size()
        result["allreduce_10MB_ms"] = t * 1e3
        result["allreduce_algbw_GBs"] = buf.nbytes / t / 1e9
        result["allreduce_busbw_GBs"] = buf.nbytes * 2 * (n - 1) / n / t / 1e9
    fastconv.manual_seed(0)
    model = models.build_model(args.model)
    net = dist.DistributedDataParallel(model) if distributed else model
    comm = []
    if distributed:
        reduce = net.reduce_gradients

        def timed(batch_size):
            start = time.perf_counter()
            reduce(batch_size)
            comm.append(time.perf_counter() - start)

        net.reduce_gradients = timed
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, args.batch)
    steps = []
    for i in range(args.steps + 5):
        start = time.perf_counter()
        loss_fn(net(x), y)
        net.backward(loss_fn.backward())
        opt.step()
        opt.zero_grad()
        if i >= 5:
            steps.append(time.perf_counter() - start)
    if distributed:
        # the slowest rank sets the pace
        worst = np.array([statistics.median(steps), statistics.median(comm[5:])])
        dist.all_reduce(worst, "max")
        step, comm_t = float(worst[0]), float(worst[1])
    else:
        step, comm_t = statistics.median(steps), 0.0
    result["step_ms"] = step * 1e3
    result["comm_ms"] = comm_t * 1e3
    result["comm_share"] = comm_t / step
    result["images_per_s"] = args.nproc * args.batch / step
    result["gradient_MB"] = sum(p.data.nbytes for p in model.parameters()) / 2**20
    if not distributed or dist.get_rank() == 0:
        print(json.dumps(result), flush=True)
    if distributed:
        dist.destroy_process_group()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nproc", type=int, default=2)
    p.add_argument("--model", default="fashion_cnn")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        if "PMI_SIZE" in os.environ or "OMPI_COMM_WORLD_SIZE" in os.environ:
            args.nproc = int(os.environ.get("PMI_SIZE") or os.environ["OMPI_COMM_WORLD_SIZE"])
        return _worker(args)
    here = os.path.dirname(sys.executable)
    mpiexec = shutil.which("mpiexec", path=here + os.pathsep + os.environ.get("PATH", ""))
    if mpiexec is None:
        sys.exit("bench/dist.py needs mpiexec: pip install \"fastconv[mpi]\"")
    own = [sys.executable, os.path.abspath(__file__), "--worker", "--model", args.model,
           "--batch", str(args.batch), "--steps", str(args.steps)]
    rows = []
    for nproc in (1, args.nproc):
        cmd = own + ["--nproc", "1"] if nproc == 1 else [mpiexec, "-n", str(nproc), *own]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
    base = rows[0]["images_per_s"]
    print(f"model {args.model}, batch {args.batch} per rank, {rows[-1]['gradient_MB']:.2f} MB of "
          "gradients per step")
    if "allreduce_10MB_ms" in rows[-1]:
        r = rows[-1]
        print(f"all_reduce 10 MB float32 on {r['ranks']} ranks: {r['allreduce_10MB_ms']:.2f} ms, "
              f"{r['allreduce_algbw_GBs']:.2f} GB/s algorithm bandwidth, "
              f"{r['allreduce_busbw_GBs']:.2f} GB/s bus bandwidth")
    print("| ranks | threads/rank | step ms | reduce ms | reduce share | images/s | speed-up |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['ranks']} | {r['threads_per_rank']} | {r['step_ms']:.2f} | "
              f"{r['comm_ms']:.2f} | {100 * r['comm_share']:.1f}% | {r['images_per_s']:.0f} | "
              f"{r['images_per_s'] / base:.2f}x |")


if __name__ == "__main__":
    main()
