"""Pictures of training, each written as a PNG: learning curves, the confusion matrix, the
first layer's filters and the feature maps of any convolution for one image.

matplotlib is an optional dependency (``pip install "fastconv[viz]"``); every function says so
plainly when it is missing.
"""

import math

import numpy as np

from ._arrays import to_device, to_numpy
from .nn.module import watch_forward

__all__ = ["plot_history", "plot_confusion_matrix", "plot_filters", "plot_feature_maps",
           "feature_maps"]


def pyplot(who="fastconv.viz"):
    """matplotlib's pyplot on the Agg backend (files, no display); an ImportError that names
    `who` and the install command when matplotlib is missing."""
    try:
        import matplotlib
    except ImportError:
        raise ImportError(f"{who} needs matplotlib: pip install matplotlib "
                          "(or pip install \"fastconv[viz]\")") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path):
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    pyplot().close(fig)
    return path


def plot_history(history, path, title="Training", val_label="validation"):
    """Loss and accuracy per epoch (train, and validation when recorded) from fit()'s history;
    val_label names the held-out set in the legend ("test" when fit's val_loader was the test
    set, as for `fastconv train`)."""
    plt = pyplot()
    epochs = [r["epoch"] for r in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, label in ((ax_loss, "loss", "loss"), (ax_acc, "acc", "accuracy")):
        ax.plot(epochs, [r[f"train_{key}"] for r in history], "o-", label=f"train {label}")
        if all(f"val_{key}" in r for r in history):
            ax.plot(epochs, [r[f"val_{key}"] for r in history], "s--",
                    label=f"{val_label} {label}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.set_xticks(epochs)
        ax.grid(alpha=0.3)
        ax.legend()
    ax_loss.set_title(f"{title}: loss")
    ax_acc.set_title(f"{title}: accuracy")
    return _save(fig, path)


def plot_confusion_matrix(confusion, path, class_names=None, title="Confusion matrix"):
    """The confusion matrix (rows: true class, columns: predicted), with counts in the cells
    and colours by row-normalised rate."""
    plt = pyplot()
    cm = np.asarray(confusion)
    k = cm.shape[0]
    names = list(class_names) if class_names is not None else [str(i) for i in range(k)]
    rates = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.0 + 0.75 * k, 0.8 + 0.65 * k))
    im = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    for i in range(k):
        for j in range(k):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8,
                    color="white" if rates[i, j] > 0.5 else "black")
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    ax.set_xticklabels(names, rotation=45, ha="right")
    ax.set_yticklabels(names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(f"{title} (accuracy {np.trace(cm) / max(cm.sum(), 1):.2%})")
    fig.colorbar(im, ax=ax, fraction=0.046, label="share of the true class")
    return _save(fig, path)


def _grid(n):
    cols = math.ceil(math.sqrt(n))
    return math.ceil(n / cols), cols


def plot_filters(weight, path, title="First-layer filters"):
    """Each output channel's kernel (averaged over input channels; RGB when there are 3) as a
    small image, scaled to the filter's own range."""
    plt = pyplot()
    w = to_numpy(getattr(weight, "data", weight)).astype(np.float64)
    if w.ndim != 4:
        raise ValueError(f"plot_filters: weight must be 4-D (K, C, R, S), got {w.shape}")
    rows, cols = _grid(w.shape[0])
    fig, axes = plt.subplots(rows, cols, figsize=(1.3 * cols, 1.3 * rows + 0.5), squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k >= w.shape[0]:
            continue
        f = w[k]
        if f.shape[0] == 3:
            img = (f - f.min()) / max(np.ptp(f), 1e-12)
            ax.imshow(img.transpose(1, 2, 0))
        else:
            ax.imshow(f.mean(axis=0), cmap="gray")
        ax.set_title(str(k), fontsize=7)
    fig.suptitle(f"{title} ({w.shape[0]} of {w.shape[2]}x{w.shape[3]})")
    return _save(fig, path)


def feature_maps(model, layer, image):
    """The output of `layer` (a module inside `model`) when `model` runs on one image
    (C, H, W) in eval mode: a NumPy array (K, P, Q), whatever the model's device."""
    captured = {}
    with watch_forward(model, [layer], lambda module, y: captured.__setitem__("out", y)):
        model(to_device(to_numpy(image)[None], model.device))
    if "out" not in captured:
        raise ValueError("feature_maps: the layer is not used by the model's forward")
    return to_numpy(captured["out"][0])


def plot_feature_maps(model, layer, image, path, title="Feature maps", max_maps=32):
    """The input image and up to max_maps feature maps of `layer` for it."""
    plt = pyplot()
    maps = feature_maps(model, layer, image)
    n = min(len(maps), max_maps)
    rows, cols = _grid(n + 1)
    fig, axes = plt.subplots(rows, cols, figsize=(1.4 * cols, 1.4 * rows + 0.5), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i == 0:
            ax.imshow(to_numpy(image).mean(axis=0), cmap="gray")
            ax.set_title("input", fontsize=7)
        elif i <= n:
            ax.imshow(maps[i - 1], cmap="viridis")
            ax.set_title(str(i - 1), fontsize=7)
    fig.suptitle(f"{title}: {n} of {len(maps)} channels, {maps.shape[1]}x{maps.shape[2]}")
    return _save(fig, path)
