"""Transfer learning as taught, on Fashion-MNIST.

Train the course CNN on classes 0-4 (T-shirt, Trouser, Pullover, Dress, Coat), then learn
classes 5-9 (Sandal, Shirt, Sneaker, Bag, Ankle boot) from only 100 labelled images per class,
three ways, and print their test accuracies:

  1. from scratch: a new network trained on the 500 images;
  2. feature extraction: the trained body frozen (eval mode), run once over the images, and a
     new linear head fitted on its 1568 features;
  3. fine-tuning: the trained body with a new head, the head trained first with the body
     frozen, then everything unfrozen and trained on with a small learning rate.

    python examples/transfer_learning.py --data ../shared/data
"""

import argparse
import copy
import time

import numpy as np

import fastconv as fc
from fastconv import models, nn, optim
from fastconv.data import DataLoader, FashionMNIST
from fastconv.train import evaluate, fit


def new_head(model, classes):
    """Replace fashion_cnn's last layer (child "3") by a fresh Linear for `classes` outputs."""
    setattr(model, "3", nn.Linear(7 * 7 * 32, classes))
    return model


def body_of(model):
    """The convolutional body of fashion_cnn (everything up to the flattened features)."""
    return nn.Sequential(model[0], model[1], model[2])


def adam(params, lr):
    return optim.Adam(params, lr=lr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", help="folder with the Fashion-MNIST files (default: $FASTCONV_DATA)")
    ap.add_argument("--per-class", type=int, default=100)
    ap.add_argument("--source-epochs", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=30, help="epochs on the small target set")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    fc.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    train, test = (FashionMNIST(args.data, train=t, normalize=True) for t in (True, False))
    loss_fn = nn.CrossEntropyLoss()

    # Source task: classes 0-4, all their training images.
    src = train.labels < 5
    source = new_head(models.fashion_cnn(), 5)
    start = time.perf_counter()
    fit(source, loss_fn, adam(source.parameters(), 2e-3),
        DataLoader(train.images[src], train.labels[src], 64, shuffle=True, seed=args.seed),
        args.source_epochs, progress=False)
    src_test = test.labels < 5
    src_acc = evaluate(source, DataLoader(test.images[src_test], test.labels[src_test], 500))
    print(f"source model (classes 0-4, {src.sum()} images, {args.source_epochs} epochs): test "
          f"accuracy {src_acc['accuracy']:.4f} ({time.perf_counter() - start:.0f} s)")

    # Target task: classes 5-9 relabelled 0-4, a few labelled images per class.
    picks = np.concatenate([rng.choice(np.flatnonzero(train.labels == c), args.per_class,
                                       replace=False) for c in range(5, 10)])
    x_small, y_small = train.images[picks], train.labels[picks] - 5
    tgt_test = test.labels >= 5
    x_test, y_test = test.images[tgt_test], test.labels[tgt_test] - 5
    small = DataLoader(x_small, y_small, 50, shuffle=True, seed=args.seed)
    test_loader = DataLoader(x_test, y_test, 500)
    results = {}

    scratch = new_head(models.fashion_cnn(), 5)
    fit(scratch, loss_fn, adam(scratch.parameters(), 1e-3), small, args.epochs, progress=False)
    results["from scratch"] = evaluate(scratch, test_loader)["accuracy"]

    # Feature extraction: the frozen body runs once, in eval mode (batch-norm statistics fixed).
    body = body_of(copy.deepcopy(source)).freeze().eval()
    features = lambda x: np.concatenate([body(x[i:i + 500]) for i in range(0, len(x), 500)])
    head = nn.Linear(7 * 7 * 32, 5)
    fit(head, loss_fn, adam(head.parameters(), 1e-3),
        DataLoader(features(x_small), y_small, 50, shuffle=True, seed=args.seed), args.epochs,
        progress=False)
    results["feature extraction"] = evaluate(head, DataLoader(features(x_test), y_test, 500))[
        "accuracy"]

    # Fine-tuning: new head on the trained body; head first with the body frozen, then all.
    tuned = new_head(copy.deepcopy(source), 5)
    body_of(tuned).freeze()
    fit(tuned, loss_fn, adam(tuned.parameters(), 1e-3), small, args.epochs // 2, progress=False)
    tuned.unfreeze()
    fit(tuned, loss_fn, adam(tuned.parameters(), 1e-4), small, args.epochs - args.epochs // 2,
        progress=False)
    results["fine-tuning"] = evaluate(tuned, test_loader)["accuracy"]

    print(f"target task (classes 5-9, {len(y_small)} labelled images, {len(y_test)} test images):")
    for name, acc in results.items():
        print(f"  {name:<20} test accuracy {acc:.4f}")


if __name__ == "__main__":
    main()
