"""Datasets and batches: a real IDX reader (gzip or raw, md5-checked), Fashion-MNIST and MNIST,
a DataLoader, and the augmentations taught with them, applied on the fly.

Where the files are looked for: the `root` argument, else $FASTCONV_DATA, else a per-user cache
folder ($XDG_CACHE_HOME/fastconv or ~/.cache/fastconv). Inside a root, a dataset's files may sit
in a sub-folder named after it ("fashion-mnist", "mnist") or directly in the root.
"""

import gzip
import hashlib
import os
import pathlib
import urllib.error
import urllib.request

import numpy as np

from ._random import resolve

__all__ = ["read_idx", "FashionMNIST", "MNIST", "DataLoader", "RandomHorizontalFlip",
           "RandomCrop", "RandomShift", "Compose", "default_root"]

_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path):
    """The array stored in an IDX file (gzip-compressed or raw), with its header's shape.

    Raises ValueError naming the file when the magic number is wrong or the data is shorter or
    longer than the header says (a truncated or corrupt download)."""
    path = pathlib.Path(path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as err:
            raise ValueError(f"{path}: corrupt gzip data ({err})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise ValueError(f"{path}: not an IDX file (bad magic number {raw[:4].hex()})")
    dtype, ndim = np.dtype(_IDX_TYPES[raw[2]]), raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(raw) != expected:
        raise ValueError(f"{path}: the header promises {expected} bytes ({shape} of {dtype}), the "
                         f"file has {len(raw)}: truncated or corrupt")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def default_root():
    """$FASTCONV_DATA, else the per-user cache folder."""
    if os.environ.get("FASTCONV_DATA"):
        return pathlib.Path(os.environ["FASTCONV_DATA"])
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return pathlib.Path(cache) / "fastconv"


def _md5(path):
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class _IDXDataset:
    """Images (N, 1, 28, 28) float32 in [0, 1] (or normalised) and labels (N,) int64."""

    name = ""
    urls = ()
    files = {}  # file name -> md5 of the .gz as published
    mean_std = (0.0, 1.0)
    classes = ()

    def __init__(self, root=None, train=True, download=False, normalize=False):
        split = "train" if train else "t10k"
        self.root = pathlib.Path(root) if root is not None else default_root()
        images = self._locate(f"{split}-images-idx3-ubyte.gz", download)
        labels = self._locate(f"{split}-labels-idx1-ubyte.gz", download)
        x, y = read_idx(images), read_idx(labels)
        if x.ndim != 3 or y.ndim != 1 or x.shape[0] != y.shape[0]:
            raise ValueError(f"{images} and {labels} do not form a dataset: images {x.shape}, "
                             f"labels {y.shape}")
        if y.size and y.max() >= len(self.classes):
            raise ValueError(f"{labels}: label {int(y.max())} is out of range for "
                             f"{len(self.classes)} classes")
        self.images = (x.astype(np.float32) / 255.0).reshape(x.shape[0], 1, *x.shape[1:])
        if normalize:
            mean, std = self.mean_std
            self.images = (self.images - np.float32(mean)) / np.float32(std)
        self.labels = y.astype(np.int64)
        self.train = train

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return self.images[i], self.labels[i]

    def _candidates(self, fname):
        return [self.root / self.name / fname, self.root / fname]

    def _locate(self, fname, download):
        for path in self._candidates(fname):
            if path.exists():
                self._verify(path, fname)
                return path
        if download:
            return self._download(fname)
        looked = ", ".join(str(p) for p in self._candidates(fname))
        raise FileNotFoundError(
            f"{type(self).__name__}: {fname} not found (looked in {looked}). Pass root= the "
            f"folder holding the {self.name} files, set FASTCONV_DATA, or use download=True to "
            f"fetch them into {self.root / self.name}.")

    def _verify(self, path, fname):
        digest = _md5(path)
        if digest != self.files[fname]:
            raise ValueError(f"{path}: md5 {digest} does not match the published "
                             f"{self.files[fname]}: the file is corrupt or not the original; "
                             "delete it and download it again")

    def _download(self, fname):
        target = self.root / self.name / fname
        target.parent.mkdir(parents=True, exist_ok=True)
        errors = []
        for base in self.urls:
            try:
                with urllib.request.urlopen(base + fname, timeout=30) as r:
                    data = r.read()
            except (urllib.error.URLError, OSError) as err:
                errors.append(f"{base + fname}: {err}")
                continue
            tmp = target.with_suffix(".part")
            tmp.write_bytes(data)
            tmp.replace(target)
            self._verify(target, fname)
            return target
        raise RuntimeError(f"{type(self).__name__}: could not download {fname} (offline?): "
                           + "; ".join(errors) + f". Copy the files into {target.parent} instead.")


class FashionMNIST(_IDXDataset):
    """Zalando's Fashion-MNIST: 60,000 train / 10,000 test 28x28 grey images, 10 classes."""

    name = "fashion-mnist"
    urls = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
    files = {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    }
    mean_std = (0.2860, 0.3530)
    classes = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
               "Sneaker", "Bag", "Ankle boot")


class MNIST(_IDXDataset):
    """LeCun, Cortes and Burges' MNIST digits: 60,000 train / 10,000 test 28x28 images."""

    name = "mnist"
    urls = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
    files = {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    }
    mean_std = (0.1307, 0.3081)
    classes = tuple(str(d) for d in range(10))


class DataLoader:
    """Batches (x, y) of images and labels, reshuffled each epoch when shuffle=True; transform
    (an augmentation) is applied to each image batch as it is drawn. Reproducible for a seed.

    sampler (say a fastconv.distributed.DistributedSampler) gives the indices of each epoch
    instead, in its order; it excludes shuffle=True, as in torch. The seed then drives only
    the transform, so data-parallel ranks pass the same sampler seed and their own loader seed.
    """

    def __init__(self, images, labels, batch_size=64, shuffle=False, drop_last=False, seed=None,
                 transform=None, sampler=None):
        images, labels = np.asarray(images), np.asarray(labels)
        if len(images) != len(labels):
            raise ValueError(f"DataLoader: {len(images)} images but {len(labels)} labels")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be a positive int, got {batch_size!r}")
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: sampler option is mutually exclusive with shuffle")
        self.images, self.labels = images, labels
        self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last
        self.transform, self.sampler = transform, sampler
        self.rng = np.random.default_rng(seed)

    def __len__(self):
        n = len(self.labels) if self.sampler is None else len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        n = len(self.labels)
        if self.sampler is not None:
            order = np.fromiter(self.sampler, dtype=np.int64, count=len(self.sampler))
        else:
            order = self.rng.permutation(n) if self.shuffle else np.arange(n)
        for b in range(len(self)):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            x = self.images[idx]
            if self.transform is not None:
                x = self.transform(x, self.rng)
            yield np.ascontiguousarray(x), self.labels[idx]


class RandomHorizontalFlip:
    """Mirror each image left-right with probability p."""

    def __init__(self, p=0.5):
        self.p = p

    def __call__(self, x, rng=None):
        rng = resolve(rng, "RandomHorizontalFlip")
        flip = rng.random(len(x)) < self.p
        out = x.copy()
        out[flip] = x[flip][..., ::-1]
        return out


class RandomCrop:
    """Zero-pad each image by `padding` on every side, then cut a random size x size window
    (the CIFAR/Fashion-MNIST 'random crop with padding')."""

    def __init__(self, size, padding=0):
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        self.padding = padding

    def __call__(self, x, rng=None):
        rng = resolve(rng, "RandomCrop")
        p = self.padding
        padded = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
        h, w = self.size
        H, W = padded.shape[2:]
        if h > H or w > W:
            raise ValueError(f"RandomCrop: crop {self.size} is larger than the padded image {(H, W)}")
        tops = rng.integers(0, H - h + 1, len(x))
        lefts = rng.integers(0, W - w + 1, len(x))
        return np.stack([padded[i, :, t:t + h, l:l + w] for i, (t, l) in enumerate(zip(tops, lefts))])


class RandomShift:
    """Shift each image by up to max_shift pixels in each direction, filling with zeros (the
    size is kept)."""

    def __init__(self, max_shift=2):
        self.max_shift = max_shift

    def __call__(self, x, rng=None):
        H, W = x.shape[2:]
        return RandomCrop((H, W), padding=self.max_shift)(x, rng)


class Compose:
    """Apply augmentations in order."""

    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, x, rng=None):
        for t in self.transforms:
            x = t(x, rng)
        return x
