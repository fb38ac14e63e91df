"""Datasets and batches: a real IDX reader (gzip or raw, md5-checked), Fashion-MNIST and MNIST,
CIFAR-10 from its published binary version, a DataLoader, and the augmentations taught with
them, applied on the fly.

Where the files are looked for: the `root` argument, else $FASTCONV_DATA, else a per-user cache
folder ($XDG_CACHE_HOME/fastconv or ~/.cache/fastconv). Inside a root, a dataset's files may sit
in a sub-folder named after it ("fashion-mnist", "mnist", "cifar10") or directly in the root.

Nothing here unpickles: CIFAR-10's pickled "python version" is refused, since loading a pickle
runs whatever code the file names.
"""

import gzip
import hashlib
import http.client
import math
import os
import pathlib
import shutil
import tarfile
import urllib.error
import urllib.request
import zlib

import numpy as np

from ._random import resolve
from .functional._args import as_bool, as_float, as_int

__all__ = ["read_idx", "FashionMNIST", "MNIST", "CIFAR10", "DataLoader", "RandomHorizontalFlip",
           "RandomCrop", "RandomShift", "Normalize", "Compose", "default_root",
           "DatasetNotFoundError", "IntegrityError"]

_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class _Advised:
    """An error whose message ends in advice given in this module's terms (root=,
    download=True, check_integrity=False); `problem` is the message without it, for callers
    such as the command line that give their own."""

    def __init__(self, message, problem=None):
        super().__init__(message)
        self.problem = message if problem is None else problem


class DatasetNotFoundError(_Advised, FileNotFoundError):
    """A dataset's files are in none of the places looked in."""


class IntegrityError(_Advised, ValueError):
    """A well-formed dataset file that is not the published one: its md5, or the record count
    of a CIFAR-10 .bin, differs."""


def _not_found(problem, advice):
    return DatasetNotFoundError(f"{problem}. {advice}", problem)


def _not_published(problem):
    return IntegrityError(f"{problem} (check_integrity=False reads it anyway)", problem)


def read_idx(path):
    """The array stored in an IDX file (gzip-compressed or raw), with its header's shape.

    Raises ValueError naming the file when the magic number is wrong or the data is shorter or
    longer than the header says (a truncated or corrupt download)."""
    path = pathlib.Path(path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as err:
            raise ValueError(f"{path}: corrupt gzip data ({err})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise ValueError(f"{path}: not an IDX file (bad magic number {raw[:4].hex()})")
    dtype, ndim = np.dtype(_IDX_TYPES[raw[2]]), raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    # math.prod, not np.prod: a corrupt header's dimensions can overflow int64.
    expected = header + math.prod(shape) * dtype.itemsize
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


def _fetch(urls, target, who):
    """Download the first of `urls` that answers into `target` and return it; RuntimeError
    listing every failure when none does. The bytes go to a .part file renamed at the end, so an
    interrupted download never passes for a complete one."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".part")
    errors = []
    for url in urls:
        try:
            with urllib.request.urlopen(url, timeout=30) as r, open(tmp, "wb") as f:
                shutil.copyfileobj(r, f, 1 << 20)
        except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
            errors.append(f"{url}: {err}")
            tmp.unlink(missing_ok=True)
            continue
        tmp.replace(target)
        return target
    raise RuntimeError(f"{who}: could not download {target.name} (offline?): "
                       + "; ".join(errors) + f". Copy the files into {target.parent} instead.")


class _IDXDataset:
    """Images (N, 1, 28, 28) float32 in [0, 1] (or normalised) and labels (N,) int64.

    Each file is read as published (train-images-idx3-ubyte.gz, ...) or, when that is absent
    from a folder, decompressed under the same name less ".gz", as torchvision keeps them.
    check_integrity=True checks a .gz file's md5 (check_integrity=False skips that; a download is
    always checked). A decompressed file has no published md5: it is checked only as every file
    is, by the IDX reader's header and size checks and the dataset's shape and label checks.
    """

    name = ""
    urls = ()
    files = {}  # file name -> md5 of the .gz as published
    mean_std = (0.0, 1.0)
    classes = ()

    def __init__(self, root=None, train=True, download=False, normalize=False,
                 check_integrity=True):
        split = "train" if train else "t10k"
        self.root = pathlib.Path(root) if root is not None else default_root()
        self.check_integrity = check_integrity
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
        # the last: torchvision's layout, root/MNIST/raw (files there are kept decompressed)
        return [self.root / self.name / fname, self.root / fname,
                self.root / type(self).__name__ / "raw" / fname]

    def _locate(self, fname, download):
        raw = fname.removesuffix(".gz")
        for gz in self._candidates(fname):
            for path in (gz, gz.with_name(raw)):
                if path.exists() and not path.is_file():
                    raise ValueError(f"{type(self).__name__}: {path} is a folder, not a file; "
                                     f"move it aside and put the {path.name} file there")
                if path.exists():
                    if self.check_integrity and path == gz:
                        self._verify(path, fname)
                    return path
        if download:
            return self._download(fname)
        looked = ", ".join(str(p.parent) for p in self._candidates(fname))
        raise _not_found(
            f"{type(self).__name__}: {fname} not found, nor {raw} (looked in {looked})",
            f"Pass root= the folder holding the {self.name} files, set FASTCONV_DATA, or use "
            f"download=True to fetch them into {self.root / self.name}.")

    def _verify(self, path, fname):
        digest = _md5(path)
        if digest != self.files[fname]:
            raise _not_published(f"{path}: md5 {digest} does not match the published "
                                 f"{self.files[fname]}: the file is corrupt or not the "
                                 "original; delete it and download it again")

    def _download(self, fname):
        # Bytes from the network are always checked, check_integrity or not.
        target = _fetch([base + fname for base in self.urls], self.root / self.name / fname,
                        type(self).__name__)
        self._verify(target, fname)
        return target


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


class CIFAR10:
    """Krizhevsky's CIFAR-10: 50,000 train / 10,000 test 32x32 colour images in 10 classes, read
    from the published binary version, cifar-10-binary.tar.gz.

    images (N, 3, 32, 32) float32 in [0, 1], channels R, G, B (normalize=True: each channel
    standardised with the published mean_std), labels (N,) int64, classes from batches.meta.txt.

    root (or root/cifar10) holds the .tar.gz, read in place without extracting it, or the
    extracted cifar-10-batches-bin/ folder; the archive is preferred when both are there, since
    only it can be checked against a published md5. check_integrity=True checks that md5, and in
    a folder, which has no published checksums, that each .bin holds the published 10,000
    records; check_integrity=False reads any well-formed file (gzip's own CRC and length are
    still checked, so a damaged archive is refused; a download is always checked).
    The pickled "python version" (cifar-10-python.tar.gz, cifar-10-batches-py/) is refused.
    """

    name = "cifar10"
    url = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
    archive = "cifar-10-binary.tar.gz"
    md5 = "c32a1d4ab5d03f1284b67883e8d87530"
    folder = "cifar-10-batches-bin"
    train_files = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
    test_files = ("test_batch.bin",)
    meta_file = "batches.meta.txt"
    records_per_file = 10000
    record_size = 1 + 3 * 32 * 32  # a label byte, then 1024 red, 1024 green, 1024 blue pixels
    mean_std = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
    classes = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
               "truck")
    _pickled = ("cifar-10-python.tar.gz", "cifar-10-batches-py")

    def __init__(self, root=None, train=True, download=False, normalize=False,
                 check_integrity=True):
        self.root = pathlib.Path(root) if root is not None else default_root()
        self.train, self.check_integrity = train, check_integrity
        files = self.train_files if train else self.test_files
        source = self._locate(download)
        if source.name == self.archive:
            raw, meta = self._read_archive(source, files)
        else:
            raw, meta = self._read_folder(source, files)
        records = np.concatenate([self._records(where, blob) for where, blob in raw])
        del raw  # the file bytes (150 MB for train) would otherwise live through the conversion
        if meta is not None:
            self.classes = self._class_names(*meta)
        # In-place arithmetic: a single float32 copy of the set (614 MB for train) at any time.
        self.images = records[:, 1:].astype(np.float32).reshape(-1, 3, 32, 32)
        self.images /= 255.0
        if normalize:
            mean, std = (np.asarray(v, np.float32).reshape(3, 1, 1) for v in self.mean_std)
            self.images -= mean
            self.images /= std
        self.labels = records[:, 0].astype(np.int64)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return self.images[i], self.labels[i]

    def _folders(self):
        return [self.root / self.name, self.root]

    def _locate(self, download):
        for folder in self._folders():
            if (folder / self.archive).is_file():
                path = folder / self.archive
                if self.check_integrity:
                    self._verify(path)
                return path
            if (folder / self.folder).is_dir():
                return folder / self.folder
        # Found but of the wrong kind: "not found" would send the user looking elsewhere.
        for folder in self._folders():
            if (folder / self.archive).exists():
                raise ValueError(f"CIFAR10: {folder / self.archive} is a folder, not a file; "
                                 f"the {self.archive} file belongs there, or the extracted "
                                 f"files in a folder named {self.folder}")
            if (folder / self.folder).exists():
                raise ValueError(f"CIFAR10: {folder / self.folder} is a file, not a folder; "
                                 f"extract {self.archive} again")
        if download:
            path = _fetch([self.url], self.root / self.name / self.archive, type(self).__name__)
            self._verify(path)
            return path
        pickled = [f / p for f in self._folders() for p in self._pickled if (f / p).exists()]
        if pickled:
            raise _not_found(
                f"CIFAR10: {pickled[0]} is CIFAR-10's Python version, which fastconv refuses to "
                f"read: it is pickled, and unpickling a file runs whatever code it names; it "
                f"reads the binary version, {self.archive} ({self.url}, md5 {self.md5})",
                f"Put that into {self.root / self.name}, or use download=True.")
        looked = ", ".join(str(f / n) for f in self._folders() for n in (self.archive, self.folder))
        raise _not_found(
            f"CIFAR10: {self.archive} not found, nor its extracted {self.folder}/ folder (looked "
            f"for {looked})",
            f"Pass root= the folder holding it, set FASTCONV_DATA, or use download=True to fetch "
            f"it into {self.root / self.name}.")

    def _verify(self, path):
        digest = _md5(path)
        if digest != self.md5:
            raise _not_published(f"{path}: md5 {digest} does not match the published "
                                 f"{self.md5}: the file is corrupt or not the original; delete "
                                 "it and download it again")

    def _read_archive(self, path, files):
        """[(where, bytes)] of `files` and (where, bytes) of the class names (None when absent),
        in one pass over the archive: a .tar.gz read out of order is decompressed again from
        its start for every backward seek."""
        wanted = {f"{self.folder}/{f}": f for f in (*files, self.meta_file)}
        found = {}
        try:
            with tarfile.open(path, "r:gz") as tar:
                for member in tar:
                    name = member.name[2:] if member.name.startswith("./") else member.name
                    if name not in wanted:
                        continue
                    if not member.isfile():
                        raise ValueError(f"{path}: {name} is not a regular file in the archive")
                    found[wanted[name]] = tar.extractfile(member).read()
                    if len(found) == len(wanted):
                        break
                # gzip checks its CRC and length only on reaching the end of the stream, which
                # the tar reader stops short of: without this, a damaged or cut archive loads.
                while tar.fileobj.read(1 << 20):
                    pass
        except (tarfile.TarError, OSError, EOFError, zlib.error) as err:
            raise ValueError(f"{path}: not a readable .tar.gz archive ({err}): corrupt or "
                             "truncated; delete it and download it again") from None
        missing = [f"{self.folder}/{f}" for f in files if f not in found]
        if missing:
            raise ValueError(f"{path}: the archive has no {', '.join(missing)}: it is not "
                             f"CIFAR-10's binary version")
        meta = None
        if self.meta_file in found:
            meta = (f"{path}:{self.folder}/{self.meta_file}", found[self.meta_file])
        return [(f"{path}:{self.folder}/{f}", found[f]) for f in files], meta

    def _read_folder(self, folder, files):
        missing = [f for f in files if not (folder / f).is_file()]
        if missing:
            raise FileNotFoundError(f"{folder}: {', '.join(missing)} missing: the extracted "
                                    f"folder is incomplete; extract {self.archive} again")
        meta = folder / self.meta_file
        return ([(str(folder / f), (folder / f).read_bytes()) for f in files],
                (str(meta), meta.read_bytes()) if meta.is_file() else None)

    def _records(self, where, blob):
        """The (n, 3073) uint8 records of one .bin file, checked."""
        if len(blob) % self.record_size:
            raise ValueError(f"{where}: {len(blob)} bytes is not a whole number of "
                             f"{self.record_size}-byte records (a label byte and 3072 pixels): "
                             "truncated or corrupt")
        records = np.frombuffer(blob, np.uint8).reshape(-1, self.record_size)
        if self.check_integrity and len(records) != self.records_per_file:
            raise _not_published(f"{where}: {len(records)} records, the published file has "
                                 f"{self.records_per_file}: truncated or not the original")
        bad = np.flatnonzero(records[:, 0] >= len(type(self).classes))
        if bad.size:
            raise ValueError(f"{where}: record {int(bad[0])} has label {int(records[bad[0], 0])}; "
                             f"CIFAR-10's labels are 0-{len(type(self).classes) - 1}: corrupt or "
                             "not a CIFAR-10 file")
        return records

    def _class_names(self, where, blob):
        try:
            names = tuple(line.strip() for line in blob.decode("utf-8").splitlines())
        except UnicodeDecodeError:
            raise ValueError(f"{where}: not a text file of class names") from None
        names = tuple(n for n in names if n)  # the published file ends in blank lines
        if len(names) != len(type(self).classes):
            raise ValueError(f"{where}: {len(names)} class names, CIFAR-10 has "
                             f"{len(type(self).classes)}")
        return names


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


def _count(value, who, name, minimum):
    """`value` as an int >= minimum; TypeError/ValueError naming the argument otherwise."""
    value = as_int(value, name, who)
    if value < minimum:
        raise ValueError(f"{who}: {name} must be >= {minimum}, got {value!r}")
    return value


def _images(x, who):
    """(x as a batch (N, C, H, W), whether it came as one image). A 3-D array is one image
    (C, H, W), as torchvision reads it, and takes the draws of a batch of one; a grey batch
    therefore needs its channel axis, (N, 1, H, W), or it would be flipped or cropped as one
    many-channel image."""
    x = np.asarray(x)
    if x.ndim == 3:
        return x[None], True
    if x.ndim != 4:
        raise ValueError(f"{who}: expected an image (C, H, W) or a batch (N, C, H, W), got "
                         f"shape {x.shape}")
    return x, False


class RandomHorizontalFlip:
    """Mirror an image (C, H, W), or each image of a batch (N, C, H, W), left-right with
    probability p; all channels of an image together."""

    def __init__(self, p=0.5):
        self.p = p

    def __call__(self, x, rng=None):
        rng = resolve(rng, "RandomHorizontalFlip")
        x, single = _images(x, "RandomHorizontalFlip")
        flip = rng.random(len(x)) < self.p
        out = x.copy()
        out[flip] = x[flip][..., ::-1]
        return out[0] if single else out


def _sides(padding):
    """padding as torchvision reads it -> (left, top, right, bottom); None when malformed."""
    if padding is None:
        return (0, 0, 0, 0)
    if isinstance(padding, (int, np.integer)) and not isinstance(padding, bool):
        return (padding,) * 4
    if not isinstance(padding, (tuple, list)) or not all(
            isinstance(p, (int, np.integer)) and not isinstance(p, bool) for p in padding):
        return None
    if len(padding) == 1:
        return tuple(padding) * 4
    if len(padding) == 2:  # (left and right, top and bottom)
        return tuple(padding) * 2
    if len(padding) != 4:  # the right kind, the wrong length: torchvision's ValueError
        raise ValueError(f"RandomCrop: padding must be a sequence of 1, 2 or 4 ints, got "
                         f"{len(padding)}: {padding!r}")
    return tuple(padding)


class RandomCrop:
    """Pad an image (C, H, W), or each image of a batch (N, C, H, W), then cut a random
    window of `size` from it (the CIFAR/Fashion-MNIST 'random crop with padding'); offsets are
    drawn per image. The arguments are torchvision's:

    size: an int (square), or a sequence (h, w) or (s,) of ints.
    padding: None or an int (every side), or a sequence of ints: (all sides,),
    (left and right, top and bottom) or (left, top, right, bottom).
    pad_if_needed: pad an image still smaller than size, after padding, by the shortfall on
    both sides of that axis, so the window lands at a random offset (else that is an error).
    fill: the value of constant padding.
    padding_mode: "constant" (fill), "edge" (the border pixel repeated), "reflect" (mirrored
    about the border pixel, which is not repeated) or "symmetric" (mirrored with it).
    """

    _modes = ("constant", "edge", "reflect", "symmetric")

    def __init__(self, size, padding=None, pad_if_needed=False, fill=0, padding_mode="constant"):
        pair = (size, size) if isinstance(size, (int, np.integer)) else size
        try:
            pair = tuple(pair)
        except TypeError:
            pair = ()
        if len(pair) == 1:
            pair = pair * 2
        if len(pair) != 2 or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool)
                                     for s in pair):
            raise TypeError(f"RandomCrop: size must be an int or a sequence (h, w) or (size,) of "
                            f"ints, got {size!r}")
        if min(pair) < 1:
            raise ValueError(f"RandomCrop: size must be positive, got {size!r}")
        self.size = (int(pair[0]), int(pair[1]))
        sides = _sides(padding)
        if sides is None:
            raise TypeError(f"RandomCrop: padding must be None, an int or a sequence of 1, 2 or "
                            f"4 ints, got {padding!r}")
        if min(sides) < 0:
            raise ValueError(f"RandomCrop: padding must be >= 0, got {padding!r}")
        self.padding = tuple(int(p) for p in sides)
        self.pad_if_needed = as_bool(pad_if_needed, "pad_if_needed", "RandomCrop")
        as_float(fill, "fill", "RandomCrop")
        self.fill = fill  # as given: an int fills integer images exactly
        if padding_mode not in self._modes:
            raise ValueError(f"RandomCrop: padding_mode must be one of {', '.join(self._modes)}, "
                             f"got {padding_mode!r}")
        self.padding_mode = padding_mode

    def _pad(self, x, top, bottom, left, right):
        if top == bottom == left == right == 0:
            return x
        extra = {"constant_values": self.fill} if self.padding_mode == "constant" else {}
        return np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), self.padding_mode,
                      **extra)

    def __call__(self, x, rng=None):
        rng = resolve(rng, "RandomCrop")
        x, single = _images(x, "RandomCrop")
        left, top, right, bottom = self.padding
        padded = self._pad(x, top, bottom, left, right)
        h, w = self.size
        # As torchvision: `padding` first, then the shortfall, as separate pads; for the
        # mirroring modes that differs from one pad by the sum.
        if self.pad_if_needed and padded.shape[3] < w:
            short = w - padded.shape[3]
            padded = self._pad(padded, 0, 0, short, short)
        if self.pad_if_needed and padded.shape[2] < h:
            short = h - padded.shape[2]
            padded = self._pad(padded, short, short, 0, 0)
        H, W = padded.shape[2:]
        if h > H or w > W:
            raise ValueError(f"RandomCrop: crop {self.size} is larger than the padded image "
                             f"{(H, W)} (pad_if_needed=True pads it to the size)")
        tops = rng.integers(0, H - h + 1, len(x))
        lefts = rng.integers(0, W - w + 1, len(x))
        out = np.empty((len(x), x.shape[1], h, w), x.dtype)
        for i, (t, l) in enumerate(zip(tops, lefts)):
            out[i] = padded[i, :, t:t + h, l:l + w]
        return out[0] if single else out


class RandomShift:
    """Shift an image (C, H, W), or each image of a batch (N, C, H, W), by up to max_shift
    pixels in each direction, filling with zeros (the size is kept)."""

    def __init__(self, max_shift=2):
        self.max_shift = _count(max_shift, "RandomShift", "max_shift", 0)

    def __call__(self, x, rng=None):
        x, single = _images(x, "RandomShift")
        H, W = x.shape[2:]
        out = RandomCrop((H, W), padding=self.max_shift)(x, rng)
        return out[0] if single else out


def _per_channel(values, name):
    """mean or std as a 1-D float64 array of at least one value, or ValueError/TypeError."""
    try:
        values = np.atleast_1d(np.asarray(values, dtype=np.float64))
    except (TypeError, ValueError):
        raise TypeError(f"Normalize: {name} must be a number or a sequence of numbers, got "
                        f"{values!r}") from None
    if values.ndim != 1 or not len(values):
        raise ValueError(f"Normalize: {name} must be a number or a flat sequence of at least one "
                         f"number, got {values.tolist()!r}")
    return values


class Normalize:
    """Standardise each channel, (x - mean[c]) / std[c], as torchvision's Normalize: mean and
    std each hold one value per channel, or one for all channels; for batches (N, C, H, W) or
    single images (C, H, W). Floating input keeps its dtype and is computed in it, integer input
    comes out float32. inplace=False returns a new array; inplace=True writes into x, which must
    then be a writable floating NumPy array, and returns it. rng is accepted so that it
    composes with the random transforms, and not used."""

    def __init__(self, mean, std, inplace=False):
        mean, std = _per_channel(mean, "mean"), _per_channel(std, "std")
        if len(mean) != len(std) and 1 not in (len(mean), len(std)):
            raise ValueError(f"Normalize: mean and std need one value per channel each, or one "
                             f"for all channels, got {len(mean)} means and {len(std)} stds")
        if not (np.isfinite(mean).all() and np.isfinite(std).all()) or (std == 0).any():
            raise ValueError(f"Normalize: mean must be finite and std finite and non-zero, got "
                             f"mean {tuple(mean.tolist())}, std {tuple(std.tolist())}")
        self.mean, self.std = tuple(mean.tolist()), tuple(std.tolist())
        self.inplace = as_bool(inplace, "inplace", "Normalize")

    def __call__(self, x, rng=None):
        if self.inplace and not (isinstance(x, np.ndarray)
                                 and np.issubdtype(x.dtype, np.floating)):
            raise TypeError(f"Normalize: inplace=True needs a floating numpy.ndarray to write "
                            f"into, got {type(x).__name__}"
                            + (f" of {x.dtype}" if isinstance(x, np.ndarray) else ""))
        if self.inplace and not x.flags.writeable:
            raise ValueError("Normalize: inplace=True needs a writable array, got a read-only one")
        x = np.asarray(x)
        if x.ndim not in (3, 4):
            raise ValueError(f"Normalize: expected (N, C, H, W) or (C, H, W), got shape {x.shape}")
        n = max(len(self.mean), len(self.std))
        if n not in (1, x.shape[-3]):
            raise ValueError(f"Normalize: {len(self.mean)} means and {len(self.std)} stds for "
                             f"{x.shape[-3]} channels (input of shape {x.shape}): give one per "
                             "channel, or one for all")
        dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.dtype(np.float32)
        mean = np.asarray(self.mean, dtype).reshape(-1, 1, 1)
        std = np.asarray(self.std, dtype).reshape(-1, 1, 1)
        if (std == 0).any():  # a std too small for float16 or float32, as torchvision refuses
            raise ValueError(f"Normalize: std {self.std} is 0 in {dtype}, the dtype it is "
                             "computed in")
        if self.inplace:
            np.subtract(x, mean, out=x)
            return np.divide(x, std, out=x)
        return (x.astype(dtype, copy=False) - mean) / std

    def __repr__(self):
        return f"Normalize(mean={self.mean}, std={self.std})"


class Compose:
    """Apply augmentations in order."""

    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, x, rng=None):
        for t in self.transforms:
            x = t(x, rng)
        return x
