"""fastconv.save / fastconv.load: state_dicts as .npz archives, never pickled.

An .npz is a zip of .npy files, one per key, in the dict's order; numpy, and anything that
reads .npy, can open it. Object arrays are refused both ways because only pickle can store them,
and unpickling runs code from the file.
"""

import os
import zipfile
from collections import OrderedDict
from collections.abc import Mapping

import numpy as np

from ._arrays import to_numpy
from .nn.module import Module

__all__ = ["save", "load"]


def _check_path(path, op):
    """A str/PathLike path must name an .npz file (np.savez would silently append '.npz')."""
    if isinstance(path, (str, os.PathLike)):
        if not os.fspath(path).endswith(".npz"):
            raise ValueError(f"fastconv.{op}: expected a path ending in '.npz', got {path!r}")
        return os.fspath(path)
    if not hasattr(path, "write" if op == "save" else "read"):
        raise TypeError(f"fastconv.{op}: path must be a str, os.PathLike or file object, got "
                        f"{type(path).__name__}")
    return path


def save(obj, path):
    """Save a state_dict (a mapping of str keys to arrays) or a Module's state_dict to `path`.

    Keys are kept as given, dots included ("layer1.0.conv1.weight"), and so is their order.
    Values are anything np.asarray turns into a numeric or boolean array (NumPy arrays, Python
    numbers, CPU torch tensors); object arrays raise TypeError. path is a str or PathLike ending
    in '.npz' or a binary file object.
    """
    state = obj.state_dict() if isinstance(obj, Module) else obj
    if not isinstance(state, Mapping):
        raise TypeError(f"fastconv.save: expected a Module or a state_dict mapping, got "
                        f"{type(obj).__name__}")
    arrays = []
    for key, value in state.items():
        if not isinstance(key, str) or not key:
            raise TypeError(f"fastconv.save: state_dict keys must be non-empty str, got {key!r}")
        array = to_numpy(value)  # GPU (CuPy) arrays are saved as their host copies
        if array.dtype.hasobject:
            raise TypeError(f"fastconv.save: {key!r} is an array of dtype {array.dtype}, which "
                            "needs pickle; only numeric and boolean arrays can be saved")
        arrays.append((key, array))
    path = _check_path(path, "save")
    # The archive is written entry by entry, as np.savez does internally, because np.savez
    # takes the keys as keyword arguments: a key named "file" or "allow_pickle" would clash.
    with zipfile.ZipFile(path, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for key, array in arrays:
            with zf.open(key + ".npy", mode="w", force_zip64=True) as f:
                np.lib.format.write_array(f, array, allow_pickle=False)


def load(path):
    """The state_dict saved at `path` by fastconv.save (or np.savez) as an OrderedDict of
    arrays in saved order; pickled (object) arrays are refused, never unpickled."""
    path = _check_path(path, "load")
    if isinstance(path, str) and not os.path.isfile(path):
        raise FileNotFoundError(f"fastconv.load: no such file: {path!r}")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"fastconv.load: {path!r} is not an .npz archive (a zip of .npy files)")
    if hasattr(path, "seek"):
        path.seek(0)  # is_zipfile read from the file object
    out = OrderedDict()
    with np.load(path, allow_pickle=False) as archive:
        for key in archive.files:
            try:
                out[key] = archive[key]
            except ValueError as e:  # numpy refuses object arrays when allow_pickle=False
                raise ValueError(f"fastconv.load: {key!r} in {path!r} holds pickled (object) "
                                 "data, which fastconv never loads") from e
    return out
