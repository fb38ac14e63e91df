"""The training loop: fit() and evaluate(), metrics, early stopping and checkpoints.

A model is any fastconv Module; a loss is a loss Module whose call returns the loss value and
whose backward() returns d loss / d logits; a loader yields (images, labels) batches.
"""

import copy
import math
import time

import numpy as np

from ._arrays import to_device, to_numpy

__all__ = ["fit", "evaluate", "EarlyStopping", "Checkpoint", "Callback"]


def _predictions(logits):
    """Predicted classes as a NumPy array (argmax on the logits' device, then copied)."""
    return to_numpy(logits.argmax(axis=1))


def _scored(loss_fn, y):
    """Which items of a NumPy batch of targets count in the accuracy and the loss's mean: a
    class label (of an image, or of each pixel) that names a class and is not the loss's
    ignore_index (PyTorch's -100 by default); class probabilities (float targets, the class
    axis 1) all count."""
    if y.dtype.kind not in "iu":
        return np.ones(y.shape[:1] + y.shape[2:], bool)
    keep = y >= 0
    ignore = getattr(loss_fn, "ignore_index", None)
    return keep if ignore is None else keep & (y != ignore)


def _truth(y):
    """The true classes of a NumPy batch: the labels, or the most probable class of each item
    of class probabilities (class axis 1)."""
    return y if y.dtype.kind in "iu" else y.argmax(axis=1)


def _batch_loss(loss_fn, value, y, keep):
    """(the batch's part of the loss sum, its weight), added up over batches into torch's mean
    over the whole set: a "mean" value times the counted items, each by its class weight
    (probabilities: by the items, as torch's mean divides), a "sum" value as it is with the
    count; nothing from a batch with nothing counted, whose mean is 0/0."""
    summed = getattr(loss_fn, "reduction", "mean") == "sum"
    weight = getattr(loss_fn, "weight", None)
    if weight is None or summed or y.dtype.kind not in "iu":
        w = float(keep.sum())
    else:
        w = float(to_numpy(weight)[y[keep]].sum())
    if w == 0:
        return 0.0, 0.0
    return (value if summed else value * w), w


def _sharded(loader):
    """Whether loader yields this rank's shard (a DistributedSampler in a process group of
    more than one), so that its counts must be summed over the ranks."""
    from .distributed import _group, _sampler

    group = _group.group()
    return (group is not None and group.size > 1
            and isinstance(getattr(loader, "sampler", None), _sampler.DistributedSampler))


def evaluate(model, loader, loss_fn=None, num_classes=None):
    """Score a model on a loader, in eval mode (restored afterwards).

    Returns a dict: accuracy; loss (mean over samples) when loss_fn is given; macro precision,
    recall and F1; per-class precision, recall, f1 and support; the confusion matrix
    (rows: true class, columns: predicted class). Batches go to the model's device. When the
    loader draws from a DistributedSampler inside a process group, every rank scores its shard
    (without the sampler's padding) and the counts are summed over the ranks, so each rank
    returns the scores of the whole set, every sample once.
    """
    device = model.device
    was_training = model.training
    model.eval()
    preds, targets, loss_sum, loss_weight = [], [], 0.0, 0.0
    try:
        # A sharded loader's padding (repeated samples at the end of each shard) is not scored.
        remaining = loader.sampler.real_count if _sharded(loader) else None
        for x, y in loader:
            if remaining is not None:
                x, y, remaining = x[:remaining], y[:remaining], max(0, remaining - len(y))
                if len(y) == 0:
                    continue
            logits = model(to_device(x, device))
            y = to_numpy(y)
            keep = _scored(loss_fn, y)
            if loss_fn is not None:
                part, w = _batch_loss(loss_fn, float(loss_fn(logits, to_device(y, device))), y,
                                      keep)
                loss_sum, loss_weight = loss_sum + part, loss_weight + w
            preds.append(_predictions(logits)[keep])
            targets.append(_truth(y)[keep])
            classes = logits.shape[1] if logits.ndim >= 2 else 0
    finally:
        model.train(was_training)
    pred = np.concatenate(preds) if preds else np.zeros(0, np.int64)
    true = np.concatenate(targets) if targets else np.zeros(0, np.int64)
    # the model's classes (its logits' width), so that a class absent from the set still has
    # its row and column
    k = num_classes or max(classes if preds else 0,
                           int(max(pred.max(initial=-1), true.max(initial=-1)) + 1))
    sharded = _sharded(loader)
    if sharded:
        from . import distributed as dist

        top = np.array([k], np.int64)
        dist.all_reduce(top, "max")
        k = int(top[0])
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (true, pred), 1)
    if sharded:
        totals = np.array([loss_sum, loss_weight])
        dist.all_reduce(confusion)
        dist.all_reduce(totals)
        loss_sum, loss_weight = float(totals[0]), float(totals[1])
    true_count = int(confusion.sum())
    tp = np.diag(confusion).astype(np.float64)
    predicted, support = confusion.sum(axis=0), confusion.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    # Macro figures over the classes that occur among the targets or the predictions, as
    # scikit-learn's default: a class the set never mentions has no precision or recall to
    # average in.
    seen = (support > 0) | (predicted > 0)
    out = {
        "accuracy": float(tp.sum() / max(true_count, 1)),
        "precision": float(precision[seen].mean()), "recall": float(recall[seen].mean()),
        "f1": float(f1[seen].mean()),
        "per_class": {"precision": precision, "recall": recall, "f1": f1, "support": support},
        "confusion_matrix": confusion,
    }
    if loss_fn is not None:
        out["loss"] = loss_sum / loss_weight if loss_weight else float("nan")
    return out


class Callback:
    """Hooks called by fit(); on_epoch_end returns True to stop training."""

    def on_train_begin(self, model, optimizer):
        pass

    def on_epoch_end(self, epoch, record, model, optimizer):
        return False

    def on_train_end(self, model, optimizer):
        pass


def _better(mode, value, best, min_delta):
    return value > best + min_delta if mode == "max" else value < best - min_delta


class EarlyStopping(Callback):
    """Stop when `monitor` (a key of the epoch record, e.g. "val_acc" or "val_loss") has not
    improved by min_delta for `patience` epochs; restore_best puts back the best weights."""

    def __init__(self, monitor="val_acc", mode="max", patience=3, min_delta=0.0,
                 restore_best=True):
        if mode not in ("min", "max"):
            raise ValueError(f"EarlyStopping: mode must be 'min' or 'max', got {mode!r}")
        self.monitor, self.mode, self.patience = monitor, mode, patience
        self.min_delta, self.restore_best = min_delta, restore_best

    def on_train_begin(self, model, optimizer):
        self.best = -math.inf if self.mode == "max" else math.inf
        self.best_epoch, self.best_state, self.wait = None, None, 0

    def on_epoch_end(self, epoch, record, model, optimizer):
        if self.monitor not in record:
            raise KeyError(f"EarlyStopping: the epoch record has no {self.monitor!r} "
                           f"(keys: {sorted(record)}); pass a val_loader to fit()")
        value = record[self.monitor]
        if _better(self.mode, value, self.best, self.min_delta):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best:
                self.best_state = copy.deepcopy(model.state_dict())
            return False
        self.wait += 1
        return self.wait >= self.patience

    def on_train_end(self, model, optimizer):
        if self.restore_best and self.best_state is not None:
            model.load_state_dict(self.best_state)


class Checkpoint(Callback):
    """Save the model's state_dict (fastconv.save, .npz) after each epoch, or only when
    `monitor` improves when best_only=True. Each save replaces the file atomically: training
    killed mid-save leaves the previous checkpoint whole."""

    def __init__(self, path, monitor="val_acc", mode="max", best_only=True):
        self.path, self.monitor, self.mode, self.best_only = path, monitor, mode, best_only

    def on_train_begin(self, model, optimizer):
        self.best = -math.inf if self.mode == "max" else math.inf

    def on_epoch_end(self, epoch, record, model, optimizer):
        from .distributed import is_main_process
        from .serialize import save

        if self.best_only and self.monitor not in record:  # it would never save
            raise KeyError(f"Checkpoint: the epoch record has no {self.monitor!r} (keys: "
                           f"{sorted(record)}); pass a val_loader to fit or another monitor")
        value = record.get(self.monitor)
        if not self.best_only or _better(self.mode, value, self.best, 0):
            if value is not None:
                self.best = value
            if is_main_process():  # data-parallel ranks hold the same model: one file
                save(model.state_dict(), self.path)
        return False


def _progress(total, desc, enabled):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="batch", leave=True, dynamic_ncols=True)


def _distributed(model, train_loader, device):
    """fit's data-parallel set-up: the process group (initialised if needed) and the model
    wrapped in DistributedDataParallel, after checking that the loader is sharded."""
    from . import distributed as dist

    sampler = getattr(train_loader, "sampler", None)
    if not isinstance(sampler, dist.DistributedSampler):
        raise ValueError("fit(distributed=True): train_loader must draw from a "
                         "fastconv.distributed.DistributedSampler (DataLoader(..., "
                         "sampler=DistributedSampler(len(images))))")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device == "cuda" else "mpi")
    if isinstance(model, dist.DistributedDataParallel):
        return model
    return dist.DistributedDataParallel(model)


def _reduced(values, how="sum"):
    from . import distributed as dist

    values = np.asarray(values, dtype=np.float64)
    dist.all_reduce(values, how)
    return values


def _check_replicas(model):
    """Every rank must end with the same parameters: compares a digest of them."""
    import hashlib

    from . import distributed as dist

    digest = hashlib.sha256()
    for p in model.parameters():
        digest.update(np.ascontiguousarray(to_numpy(p.data)).tobytes())
    mine = np.frombuffer(digest.digest()[:8], np.int64).copy()
    every = dist.all_gather(mine)
    if not (every == mine).all():
        raise dist.DistributedError("fit: the ranks' models differ after training "
                                    f"(parameter digests {every.ravel().tolist()})")


def fit(model, loss_fn, optimizer, train_loader, epochs, val_loader=None, scheduler=None,
        callbacks=(), device="cpu", progress=True, distributed=False):
    """Train for `epochs` epochs and return the history: a list with one record per epoch
    (epoch, train_loss, train_acc, val_loss and val_acc with a val_loader, lr, time in seconds,
    images_per_s). A scheduler steps once per epoch (ReduceLROnPlateau with val_loss, or
    train_loss without a val_loader). A progress bar shows loss, accuracy and images/s.

    device="cuda" moves the model to the GPU first (create the optimizer before or after: its
    state is made on the parameters' device at the first step) and each batch as it comes.

    distributed=True trains data-parallel, one process per rank (fastconv.distributed; the group
    is initialised if it is not, over NCCL for device="cuda", else MPI): the model is wrapped in
    DistributedDataParallel (rank 0's initial weights everywhere, gradients averaged over the
    global batch), train_loader must draw from a DistributedSampler (set_epoch is called each
    epoch), the history's losses, accuracies and images/s are those of the global batch on
    every rank, only rank 0 shows progress and Checkpoint writes only there, and the ranks'
    final parameters are checked to be identical. A val_loader with a DistributedSampler is
    scored shard by shard (see evaluate); one without is scored whole on every rank.
    """
    if device not in ("cpu", "cuda"):
        raise ValueError(f"fit: device must be 'cpu' or 'cuda', got {device!r}")
    from .optim.lr_scheduler import ReduceLROnPlateau

    model.to(device)
    net = _distributed(model, train_loader, device) if distributed else model
    if distributed:
        from .distributed import is_main_process

        progress = progress and is_main_process()
    callbacks = list(callbacks)
    for cb in callbacks:
        cb.on_train_begin(model, optimizer)
    history = []
    for epoch in range(1, epochs + 1):
        net.train()
        if distributed:
            train_loader.sampler.set_epoch(epoch)
        start = time.perf_counter()
        loss_sum, loss_weight, correct, counted, seen = 0.0, 0.0, 0, 0, 0
        bar = _progress(len(train_loader), f"epoch {epoch}/{epochs}", progress)
        for x, y in train_loader:
            y_host = to_numpy(y)
            x, y = to_device(x, device), to_device(y, device)
            logits = net(x)
            loss = float(loss_fn(logits, y))
            net.backward_params(loss_fn.backward())
            optimizer.step()
            optimizer.zero_grad()
            keep = _scored(loss_fn, y_host)
            part, w = _batch_loss(loss_fn, loss, y_host, keep)
            loss_sum, loss_weight = loss_sum + part, loss_weight + w
            correct += int((_predictions(logits) == _truth(y_host))[keep].sum())
            counted += int(keep.sum())
            seen += len(y_host)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss_sum / max(loss_weight, 1e-300):.4f}",
                                acc=f"{correct / max(counted, 1):.4f}",
                                img_s=f"{seen / (time.perf_counter() - start):.0f}")
        if bar is not None:
            bar.close()
        elapsed = time.perf_counter() - start
        if distributed:
            loss_sum, loss_weight, correct, counted, seen = _reduced(
                [loss_sum, loss_weight, correct, counted, seen])
            correct, counted, seen = int(correct), int(counted), int(seen)
            elapsed = float(_reduced([elapsed], "max")[0])
        record = {"epoch": epoch,
                  "train_loss": loss_sum / loss_weight if loss_weight else float("nan"),
                  "train_acc": correct / max(counted, 1),
                  "lr": optimizer.param_groups[0]["lr"], "time": elapsed,
                  "images_per_s": seen / elapsed if elapsed > 0 else float("nan")}
        if val_loader is not None:
            scores = evaluate(model, val_loader, loss_fn)
            record["val_loss"], record["val_acc"] = scores["loss"], scores["accuracy"]
        history.append(record)
        if scheduler is not None:
            if isinstance(scheduler, ReduceLROnPlateau):
                scheduler.step(record.get("val_loss", record["train_loss"]))
            else:
                scheduler.step()
        stop = False
        for cb in callbacks:
            stop = cb.on_epoch_end(epoch, record, model, optimizer) or stop
        if stop:
            break
    for cb in callbacks:
        cb.on_train_end(model, optimizer)
    if distributed:
        _check_replicas(model)
    return history
