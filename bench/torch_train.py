"""PyTorch twin of `fastconv train`: the same network, recipe and batches, timed per epoch.

    python bench/torch_train.py --model resnet18 --augment --epochs 10 --batch-size 128 \
        --device cuda --data DIR

Mirrors fastconv's CLI recipes (optimizer, learning rate, cosine schedule per epoch, batch
size, augmentation from fastconv.data with the same seed), so the per-epoch times printed here
sit beside those of `fastconv train ... --device cuda` on the same machine. On the GPU it runs
cuDNN in FP32 (TF32 off, as fastconv's default) with cudnn.benchmark on.
"""

import argparse
import math
import os
import time

import numpy as np
import torch
from torch import nn

from fastconv import data
from fastconv.cli import RECIPES


def fashion_cnn():
    def block(cin, cout):
        return nn.Sequential(nn.Conv2d(cin, cout, 5, 1, 2), nn.BatchNorm2d(cout), nn.ReLU(),
                             nn.MaxPool2d(2, 2))
    return nn.Sequential(block(1, 16), block(16, 32), nn.Flatten(), nn.Linear(1568, 10))


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
        self.short = nn.Identity() if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        return torch.relu(self.body(x) + self.short(x))


def resnet18_small_input(classes=10):
    layers, cin = [nn.Conv2d(1, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU()], 64
    for i, width in enumerate((64, 128, 256, 512)):
        for j in range(2):
            layers.append(BasicBlock(cin, width, 2 if i > 0 and j == 0 else 1))
            cin = width
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, classes))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=["fashion_cnn", "resnet18"], default="fashion_cnn")
    ap.add_argument("--epochs", type=int)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--augment", action="store_true")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--data", default=os.environ.get("FASTCONV_DATA"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int,
                    help="train on the first LIMIT images only, as `fastconv train --limit`")
    args = ap.parse_args()
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    opt_name, lr, epochs = RECIPES[args.model]
    epochs = args.epochs or epochs
    train = data.FashionMNIST(args.data, train=True, normalize=True)
    test = data.FashionMNIST(args.data, train=False, normalize=True)
    if args.limit:
        train.images, train.labels = train.images[:args.limit], train.labels[:args.limit]
    transform = (data.Compose([data.RandomHorizontalFlip(), data.RandomShift(2)])
                 if args.augment else None)
    loader = data.DataLoader(train.images, train.labels, args.batch_size, shuffle=True,
                             seed=args.seed, transform=transform)
    torch.manual_seed(args.seed)
    dev = torch.device(args.device)
    model = (fashion_cnn() if args.model == "fashion_cnn" else resnet18_small_input()).to(dev)
    if opt_name == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True,
                              weight_decay=5e-4)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda e: 0.5 * (1 + math.cos(math.pi * e / epochs)))
    loss_fn = nn.CrossEntropyLoss()
    x_test = torch.from_numpy(test.images).to(dev)
    y_test = torch.from_numpy(test.labels.astype(np.int64)).to(dev)
    for epoch in range(1, epochs + 1):
        model.train()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for x, y in loader:
            x, y = torch.from_numpy(x).to(dev), torch.from_numpy(y.astype(np.int64)).to(dev)
            opt.zero_grad(set_to_none=True)
            loss_fn(model(x), y).backward()
            opt.step()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
        sched.step()
        model.eval()
        with torch.no_grad():
            correct = sum(int((model(x_test[i:i + 500]).argmax(1) == y_test[i:i + 500]).sum())
                          for i in range(0, len(y_test), 500))
        print(f"torch {args.model} epoch {epoch}: {elapsed:.1f} s "
              f"({len(train) / elapsed:.0f} images/s), test acc {correct / len(y_test):.4f}")


if __name__ == "__main__":
    main()
