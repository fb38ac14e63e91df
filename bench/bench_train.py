"""Training and inference speed of the course networks, fastconv against PyTorch.

The same network in both, same batches, batch size, optimizer and thread count, in one process.

    python bench/bench_train.py [--data DIR] [--threads 2] [--markdown out.md]

One full epoch each (938 batches of 64); inference = the 10,000 test images in batches of 1000.
"""

import os
import time

import fastconv as fc
from fastconv import models, nn, optim
from fastconv.data import MNIST, DataLoader, FashionMNIST
from fastconv.train import evaluate, fit
from harness import main

CASES = [  # name, dataset, fastconv model, optimizer, lr
    ("fashion_cnn", FashionMNIST, lambda: models.fashion_cnn(), "adam", 2e-3),
    ("lenet5", MNIST, lambda: models.lenet5(input_size=28), "sgd", 0.05),
]


def torch_twin(torch, name):
    tnn = torch.nn
    if name == "fashion_cnn":
        def block(cin, cout):
            return tnn.Sequential(tnn.Conv2d(cin, cout, 5, 1, 2), tnn.BatchNorm2d(cout), tnn.ReLU(),
                                  tnn.MaxPool2d(2, 2))
        return tnn.Sequential(block(1, 16), block(16, 32), tnn.Flatten(), tnn.Linear(1568, 10))
    return tnn.Sequential(tnn.Conv2d(1, 6, 5, padding=2), tnn.Tanh(), tnn.AvgPool2d(2),
                          tnn.Conv2d(6, 16, 5), tnn.Tanh(), tnn.AvgPool2d(2), tnn.Conv2d(16, 120, 5),
                          tnn.Tanh(), tnn.Flatten(), tnn.Linear(120, 84), tnn.Tanh(),
                          tnn.Linear(84, 10))


def make_optimizer(lib, kind, params, lr):
    if kind == "adam":
        return lib.Adam(params, lr=lr)
    return lib.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4)


def torch_epoch(torch, model, opt, batches):
    loss_fn = torch.nn.CrossEntropyLoss()
    model.train()
    start = time.perf_counter()
    for x, y in batches:
        opt.zero_grad()
        loss_fn(model(torch.from_numpy(x)), torch.from_numpy(y)).backward()
        opt.step()
    return time.perf_counter() - start


def torch_inference(torch, model, images):
    model.eval()
    start = time.perf_counter()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(images[0]), 1000):
            logits = model(torch.from_numpy(images[0][i:i + 1000]))
            correct += int((logits.argmax(1).numpy() == images[1][i:i + 1000]).sum())
    return time.perf_counter() - start, correct / len(images[1])


def run(root, threads):
    try:
        import torch
    except ImportError:
        torch = None
    fc.set_num_threads(threads)
    if torch is not None:
        torch.set_num_threads(threads)
    rows = []
    for name, dataset, build, kind, lr in CASES:
        train, test = dataset(root, normalize=True), dataset(root, train=False, normalize=True)
        batches = list(DataLoader(train.images, train.labels, 64, shuffle=True, seed=0))
        fc.manual_seed(0)
        model = build()
        history = fit(model, nn.CrossEntropyLoss(), make_optimizer(optim, kind, model.parameters(), lr),
                      batches, 1, progress=False)
        start = time.perf_counter()
        acc = evaluate(model, DataLoader(test.images, test.labels, 1000))["accuracy"]
        row = {"name": name, "epoch": history[0]["time"], "infer": time.perf_counter() - start,
               "acc": acc}
        if torch is not None:
            torch.manual_seed(0)
            tmodel = torch_twin(torch, name)
            row["torch_epoch"] = torch_epoch(torch, tmodel, make_optimizer(
                torch.optim, kind, tmodel.parameters(), lr), batches)
            row["torch_infer"], row["torch_acc"] = torch_inference(torch, tmodel,
                                                                   (test.images, test.labels))
        rows.append(row)
    return rows, torch


def table(rows, threads, torch):
    head = ["network", "epoch s (images/s)", "test acc after 1 epoch", "inference images/s"]
    if torch is not None:
        head += ["torch epoch s", "torch test acc", "torch inference images/s", "epoch ratio",
                 "inference ratio"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["name"], f"{r['epoch']:.1f} ({60000 / r['epoch']:.0f})", f"{r['acc']:.4f}",
                 f"{10000 / r['infer']:.0f}"]
        if torch is not None:
            cells += [f"{r['torch_epoch']:.1f}", f"{r['torch_acc']:.4f}",
                      f"{10000 / r['torch_infer']:.0f}", f"{r['epoch'] / r['torch_epoch']:.2f}",
                      f"{r['infer'] / r['torch_infer']:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    foot = (f"\nOne epoch of 60,000 images in batches of 64 (same shuffled batches for both), "
            f"{threads} threads, float32; fashion_cnn with Adam 2e-3, lenet5 with SGD 0.05 "
            f"(momentum 0.9, Nesterov, weight decay 5e-4); ratio = fastconv / PyTorch time"
            + (f"; torch {torch.__version__}" if torch else "; torch not installed"))
    return "\n".join(lines) + foot


def render(args):
    rows, torch = run(args.data, args.threads)
    return table(rows, args.threads, torch)


if __name__ == "__main__":
    main(__doc__, render, lambda ap: ap.add_argument(
        "--data", default=os.environ.get("FASTCONV_DATA"), help="folder with the dataset files"))
