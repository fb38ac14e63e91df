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


def evaluate(model, loader, loss_fn=None, num_classes=None):
    """Score a model on a loader, in eval mode (restored afterwards).

    Returns a dict: accuracy; loss (mean over samples) when loss_fn is given; macro precision,
    recall and F1; per-class precision, recall, f1 and support; the confusion matrix
    (rows: true class, columns: predicted class). Batches go to the model's device.
    """
    device = model.device
    was_training = model.training
    model.eval()
    preds, targets, loss_sum = [], [], 0.0
    try:
        for x, y in loader:
            logits = model(to_device(x, device))
            if loss_fn is not None:
                loss_sum += float(loss_fn(logits, to_device(y, device))) * len(y)
            preds.append(_predictions(logits))
            targets.append(to_numpy(y))
    finally:
        model.train(was_training)
    pred = np.concatenate(preds) if preds else np.zeros(0, np.int64)
    true = np.concatenate(targets) if targets else np.zeros(0, np.int64)
    k = num_classes or int(max(pred.max(initial=-1), true.max(initial=-1)) + 1)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (true, pred), 1)
    tp = np.diag(confusion).astype(np.float64)
    predicted, support = confusion.sum(axis=0), confusion.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    out = {
        "accuracy": float(tp.sum() / max(len(true), 1)),
        "precision": float(precision.mean()), "recall": float(recall.mean()),
        "f1": float(f1.mean()),
        "per_class": {"precision": precision, "recall": recall, "f1": f1, "support": support},
        "confusion_matrix": confusion,
    }
    if loss_fn is not None:
        out["loss"] = loss_sum / max(len(true), 1)
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
        from .serialize import save

        value = record.get(self.monitor)
        if not self.best_only or (value is not None and _better(self.mode, value, self.best, 0)):
            if value is not None:
                self.best = value
            save(model.state_dict(), self.path)
        return False


def _progress(total, desc, enabled):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="batch", leave=True, dynamic_ncols=True)


def fit(model, loss_fn, optimizer, train_loader, epochs, val_loader=None, scheduler=None,
        callbacks=(), device="cpu", progress=True):
    """Train for `epochs` epochs and return the history: a list with one record per epoch
    (epoch, train_loss, train_acc, val_loss and val_acc with a val_loader, lr, time in seconds,
    images_per_s). A scheduler steps once per epoch (ReduceLROnPlateau with val_loss, or
    train_loss without a val_loader). A progress bar shows loss, accuracy and images/s.

    device="cuda" moves the model to the GPU first (create the optimizer before or after: its
    state is made on the parameters' device at the first step) and each batch as it comes.
    """
    if device not in ("cpu", "cuda"):
        raise ValueError(f"fit: device must be 'cpu' or 'cuda', got {device!r}")
    from .optim.lr_scheduler import ReduceLROnPlateau

    model.to(device)
    callbacks = list(callbacks)
    for cb in callbacks:
        cb.on_train_begin(model, optimizer)
    history = []
    for epoch in range(1, epochs + 1):
        model.train()
        start = time.perf_counter()
        loss_sum, correct, seen = 0.0, 0, 0
        bar = _progress(len(train_loader), f"epoch {epoch}/{epochs}", progress)
        for x, y in train_loader:
            x, y = to_device(x, device), to_device(y, device)
            logits = model(x)
            loss = float(loss_fn(logits, y))
            model.backward(loss_fn.backward())
            optimizer.step()
            optimizer.zero_grad()
            loss_sum += loss * len(y)
            correct += int((logits.argmax(axis=1) == y).sum())
            seen += len(y)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.4f}",
                                img_s=f"{seen / (time.perf_counter() - start):.0f}")
        if bar is not None:
            bar.close()
        elapsed = time.perf_counter() - start
        record = {"epoch": epoch, "train_loss": loss_sum / max(seen, 1),
                  "train_acc": correct / max(seen, 1),
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
    return history
