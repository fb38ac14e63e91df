"""fastconv.save / fastconv.load: state_dicts as .npz archives, never pickled.

An .npz is a zip of .npy files, one per key, in the dict's order; numpy, and anything that
reads .npy, can open it. Only numeric and boolean arrays are stored: object arrays need pickle,
and unpickling runs code from the file, so they are refused both ways (and never unpickled).

save() to a path is atomic (see _atomic.py): a crash mid-save leaves the previous file intact.
load() reads each entry itself rather than through np.load, so that whatever a damaged or
foreign file holds becomes a ValueError naming the file and the entry: the header's dtype and
shape are checked against the entry's size before its data is read, and the data is read in
chunks, so a header that lies cannot make load() allocate what the file does not hold.
"""

import os
import struct
import zipfile
from collections import OrderedDict
from collections.abc import Mapping

import numpy as np

from ._arrays import to_numpy
from ._atomic import atomic_write
from .nn.module import Module

__all__ = ["save", "load"]

# dtype kinds an .npz entry may hold: bool, signed and unsigned integers, floats, complex.
_KINDS = "biufc"
_CHUNK = 1 << 24


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


def _storable(dtype):
    return dtype.kind in _KINDS and dtype.fields is None and dtype.subdtype is None


def save(obj, path):
    """Save a state_dict (a mapping of str keys to arrays) or a Module's state_dict to `path`.

    Keys are kept as given, dots included ("layer1.0.conv1.weight"), and so is their order.
    Values are anything np.asarray turns into a numeric or boolean array (NumPy arrays, Python
    numbers, CPU torch tensors); other arrays (object, string, structured) raise TypeError.
    path is a str or PathLike ending in '.npz', written atomically (a temporary file in the same
    directory, fsynced, then renamed over `path`: a crash mid-save leaves any previous file
    intact), or a binary file object, written in place.
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
        if not _storable(array.dtype):
            raise TypeError(f"fastconv.save: {key!r} is an array of dtype {array.dtype}; only "
                            "numeric and boolean arrays can be saved (others need pickle)")
        arrays.append((key, array))
    path = _check_path(path, "save")
    if isinstance(path, str):
        with atomic_write(path) as f:
            _write_npz(f, arrays)
    else:
        _write_npz(path, arrays)


def _write_npz(file, arrays):
    # The archive is written entry by entry, as np.savez does internally, because np.savez
    # takes the keys as keyword arguments: a key named "file" or "allow_pickle" would clash.
    with zipfile.ZipFile(file, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for key, array in arrays:
            with zf.open(key + ".npy", mode="w", force_zip64=True) as f:
                np.lib.format.write_array(f, array, allow_pickle=False)


def load(path):
    """The state_dict saved at `path` by fastconv.save (or np.savez) as an OrderedDict of
    arrays in saved order.

    Raises FileNotFoundError for a missing file and ValueError, naming the file and the entry,
    for anything that is not an intact .npz of numeric or boolean .npy entries: a truncated or
    corrupted file (checked against the zip's CRC-32), a foreign zip, a plain .npy, or an entry
    holding pickled (object) data, which is refused without ever being unpickled.
    """
    path = _check_path(path, "load")
    where = repr(path) if isinstance(path, str) else repr(getattr(path, "name", path))
    if isinstance(path, str) and not os.path.isfile(path):
        raise FileNotFoundError(f"fastconv.load: no such file: {path!r}")
    try:
        archive = zipfile.ZipFile(path)
    except MemoryError:
        raise
    except Exception as e:
        raise ValueError(f"fastconv.load: {where} is not an .npz archive (a zip of .npy "
                         f"files), or it is truncated or corrupt: {e}") from e
    out = OrderedDict()
    with archive:
        if isinstance(path, str):
            with open(path, "rb") as f:
                declared = _declared_entries(f)
        else:
            declared = _declared_entries(path)
        if declared is not None and declared != len(archive.infolist()):
            raise ValueError(f"fastconv.load: {where} is corrupt: its end record declares "
                             f"{declared} entries but its central directory lists "
                             f"{len(archive.infolist())}")
        for info in archive.infolist():
            key = _entry_key(info.filename, where)
            if key in out:
                raise ValueError(f"fastconv.load: {where} holds two entries named "
                                 f"{info.filename!r}; it is not a state_dict archive")
            out[key] = _read_entry(archive, info, key, where)
    return out


def _declared_entries(f):
    """The entry count of a zip's end-of-central-directory record (zip64's when the plain one
    overflows), found as zipfile finds it; None when there is none to read. zipfile reads the
    central directory by its byte size and never compares the count, so a damaged record can
    hide entries from it."""
    f.seek(0, os.SEEK_END)
    size = f.tell()
    tail_start = max(0, size - (22 + 0xFFFF))
    f.seek(tail_start)
    tail = f.read()
    at = len(tail) - 22
    if at < 0:
        return None
    if not (tail[at:at + 4] == b"PK\x05\x06" and tail[-2:] == b"\0\0"):
        at = tail.rfind(b"PK\x05\x06")
        if at < 0 or len(tail) - at < 22:
            return None
    (count,) = struct.unpack("<H", tail[at + 10:at + 12])
    if count != 0xFFFF:
        return count
    # zip64: a 20-byte locator just before the end record points at the zip64 end record.
    f.seek(tail_start + at - 20)
    locator = f.read(20)
    if len(locator) != 20 or locator[:4] != b"PK\x06\x07":
        return None
    (offset,) = struct.unpack("<Q", locator[8:16])
    f.seek(offset)
    record = f.read(40)
    if len(record) != 40 or record[:4] != b"PK\x06\x06":
        return None
    return struct.unpack("<Q", record[32:40])[0]


def _entry_key(name, where):
    if not name.endswith(".npy") or name == ".npy":
        raise ValueError(f"fastconv.load: {where} holds an entry {name!r} that is not an .npy "
                         "array: it is not an .npz archive of a state_dict")
    return name[:-len(".npy")]


class _Refused(Exception):
    """Why an entry is refused (raised inside the read, reported by _read_entry)."""


def _read_entry(archive, info, key, where):
    """One .npy entry as an array, checked before its data is read."""
    try:
        with archive.open(info) as f:
            shape, fortran, dtype = _read_header(f)
            count = 1
            for n in shape:
                count *= n
            nbytes = count * dtype.itemsize
            held = info.file_size - f.tell()
            if held != nbytes:
                raise _Refused(f"declares {shape} {dtype} ({nbytes} bytes) but holds {held} "
                               "bytes of data: the file is truncated or corrupt")
            data = bytearray()
            while len(data) < nbytes:
                chunk = f.read(min(_CHUNK, nbytes - len(data)))
                if not chunk:
                    break
                data += chunk
            # Reading past the data's end makes zipfile check the entry's CRC-32.
            if len(data) != nbytes or f.read(1):
                raise _Refused(f"holds {len(data)} bytes where its header declares {nbytes}: "
                               "the file is truncated or corrupt")
    except _Refused as e:
        raise ValueError(f"fastconv.load: entry {key!r} of {where} {e}") from None
    except MemoryError:
        raise
    except Exception as e:  # zipfile, zlib and .npy header errors of a damaged archive
        raise ValueError(f"fastconv.load: entry {key!r} of {where} cannot be read, the file is "
                         f"truncated or corrupt: {type(e).__name__}: {e}") from e
    array = np.frombuffer(data, dtype=dtype, count=count)
    if fortran:
        return array.reshape(shape[::-1]).transpose()
    return array.reshape(shape)


def _read_header(f):
    """(shape, fortran_order, dtype) of an .npy stream, refusing what fastconv never loads."""
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
    else:
        raise _Refused(f"has .npy format version {version}, which fastconv does not read")
    if dtype.hasobject:
        raise _Refused(f"holds pickled (object) data (dtype {dtype}), which fastconv never loads")
    if not _storable(dtype):
        raise _Refused(f"has dtype {dtype}; a state_dict holds numeric or boolean arrays")
    return shape, fortran, dtype
