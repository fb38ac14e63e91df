"""Peak resident memory of a training step, fastconv beside PyTorch, each in a fresh process.

    PYTHONPATH=python python bench/peak_rss.py [--model fashion_cnn] [--batch 256] [--steps 5]
                                               [--threads 2]

Each framework runs in its own child process: imports, the network (the same weights: the
benchmark's PyTorch twin), and one batch of random images and labels; then the
kernel's peak-RSS mark is reset (`/proc/self/clear_refs`, 5) and `--steps` training steps
(forward, cross-entropy, backward, SGD with momentum: the benchmark's step) run, the first of
them included, so every buffer the step allocates and what each allocator keeps count. Printed
per framework: RSS before the steps, the peak during them, and the steps' own share (peak minus
before), which is the figure that compares the two; whole-process peaks also count each
library's code and import-time buffers (PyTorch's are several hundred MB). Linux only.
"""

import argparse
import json
import os
import subprocess
import sys


def _status_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def _reset_peak():
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _child(framework, model_name, batch, steps, threads):
    import numpy as np

    from fastconv.bench._cases.train import _fastconv_network, _fastconv_steps, _torch_steps

    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, batch)
    xi = x[:1]
    if framework == "fastconv":
        import fastconv

        fastconv.set_num_threads(threads)
        models = [_fastconv_network(model_name) for _ in range(2)]
        train = _fastconv_steps(*models, x, y, xi)["train"]
    else:
        import torch

        from fastconv.bench._twins import load_fastconv_weights, torch_model

        torch.set_num_threads(threads)
        weights = _fastconv_network(model_name).state_dict()
        models = [load_fastconv_weights(torch, torch_model(torch, model_name), weights)
                  for _ in range(2)]
        train = _torch_steps(torch, *models, torch.from_numpy(x), torch.from_numpy(y),
                             torch.from_numpy(xi))["train"]
    before = _status_kb("VmRSS")
    _reset_peak()
    for _ in range(steps):
        train()
    peak = _status_kb("VmHWM")
    print(json.dumps({"before_kb": before, "peak_kb": peak}))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="fashion_cnn")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--child", choices=("fastconv", "torch"), help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        _child(a.child, a.model, a.batch, a.steps, a.threads)
        return
    rows = {}
    for fw in ("fastconv", "torch"):
        out = subprocess.run([sys.executable, __file__, "--child", fw, "--model", a.model,
                              "--batch", str(a.batch), "--steps", str(a.steps),
                              "--threads", str(a.threads)],
                             check=True, capture_output=True, text=True, env=os.environ).stdout
        rows[fw] = json.loads(out.strip().splitlines()[-1])
    print(f"{a.model}, batch {a.batch}, {a.steps} training steps including the first, "
          f"{a.threads} threads; MB = 2**20 bytes")
    print(f"{'':10} {'RSS before':>11} {'peak':>9} {'step (peak - before)':>21}")
    for fw, r in rows.items():
        b, pk = r["before_kb"] / 1024, r["peak_kb"] / 1024
        print(f"{fw:10} {b:9.1f}MB {pk:7.1f}MB {pk - b:19.1f}MB")
    f, t = rows["fastconv"], rows["torch"]
    step = (f["peak_kb"] - f["before_kb"]) / max(1, t["peak_kb"] - t["before_kb"])
    print(f"fastconv/torch: step {step:.2f}, whole-process peak {f['peak_kb'] / t['peak_kb']:.2f}")


if __name__ == "__main__":
    main()
