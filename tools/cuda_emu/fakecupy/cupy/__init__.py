"""A stand-in for CuPy over host memory, for the CUDA emulator: arrays expose only
__cuda_array_interface__ (not the buffer protocol), so fastconv treats them as GPU arrays.
Module functions and array methods delegate to NumPy, unwrapping arguments and wrapping
array results; mixing with numpy.ndarray raises TypeError as CuPy does."""
import numpy as np
from . import cuda  # noqa: F401

__version__ = "emu"

# What NumPy has and CuPy 14.2 does not (hasattr on both modules and on both array types): a
# NumPy-only routine reached by fastconv's GPU path would fail on a GPU, so it fails here too
# instead of quietly running NumPy's.
_NOT_IN_CUPY = frozenset("""
    False_ ScalarType True_ asmatrix block bmat busday_count busday_offset busdaycalendar bytes_
    char character clongdouble complex256 core ctypeslib datetime64 datetime_as_string
    datetime_data dtypes einsum_path emath errstate f2py flexible float128 frompyfunc fromregex
    geomspace get_include getbufsize geterr geterrcall histogram_bin_edges info insert is_busday
    isnat little_endian longdouble ma matrix matvec memmap nanpercentile nanquantile ndenumerate
    nditer nested_iters object_ polyder polydiv polyint rec recarray record sctypeDict
    setbufsize seterr seterrcall show_runtime spacing str_ strings test timedelta64 typecodes
    unstack vecdot vecmat void""".split())
# NumPy's host-memory protocols too: NumPy reads them before __array__, so np.asarray of a fake
# array would quietly succeed where CuPy's refuses the implicit copy.
_NOT_ON_CUPY_ARRAYS = frozenset("ctypes getfield resize setfield setflags to_device "
                                "__array_interface__ __array_struct__ __array_namespace__ "
                                "__array_wrap__".split())


def _absent(owner, name):
    return AttributeError(f"{owner} has no attribute {name!r} (NumPy's has it, CuPy 14's not)")


def _un(x):
    if isinstance(x, ndarray):
        return x._a
    if isinstance(x, np.ndarray):
        raise TypeError("Unsupported type <class 'numpy.ndarray'>")
    if isinstance(x, (list, tuple)):
        return type(x)(_un(v) for v in x)
    return x


def _wr(r):
    if isinstance(r, np.ndarray):
        return ndarray(r)
    if isinstance(r, np.generic):
        return ndarray(np.asarray(r))
    if isinstance(r, (list, tuple)):
        return type(r)(_wr(v) for v in r)
    return r


class _Flags:
    """CuPy's ndarray.flags: c_contiguous, f_contiguous and owndata only (no writeable: a CuPy
    array is always writable), so code reading another NumPy flag fails here as on a GPU."""

    def __init__(self, flags):
        self.c_contiguous, self.f_contiguous = flags.c_contiguous, flags.f_contiguous
        self.owndata = flags.owndata

    def __getitem__(self, key):
        return {"C_CONTIGUOUS": self.c_contiguous, "F_CONTIGUOUS": self.f_contiguous,
                "OWNDATA": self.owndata}[key]


class ndarray:
    __module__ = "cupy"

    def __init__(self, a):
        self._a = a

    @property
    def __cuda_array_interface__(self):
        a = self._a
        return {"shape": a.shape, "typestr": a.dtype.str,
                "data": (a.__array_interface__["data"][0] if a.size else 0, False),
                "strides": None if a.flags.c_contiguous else a.strides, "version": 3,
                "stream": 1}

    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    strides = property(lambda self: self._a.strides)
    flags = property(lambda self: _Flags(self._a.flags))
    nbytes = property(lambda self: self._a.nbytes)
    T = property(lambda self: ndarray(self._a.T))

    def get(self):
        return self._a.copy()

    def __getattr__(self, name):
        if name in _NOT_ON_CUPY_ARRAYS:
            raise _absent("'cupy.ndarray' object", name)
        attr = getattr(self._a, name)
        if not callable(attr):
            return _wr(attr)
        return lambda *a, **k: _wr(attr(*_un(a), **{kk: _un(v) for kk, v in k.items()}))

    def __getitem__(self, k):
        return _wr(self._a[_un(k)])

    def __setitem__(self, k, v):
        self._a[_un(k)] = _un(v)

    def __len__(self):
        return len(self._a)

    def __array__(self, *a, **k):
        raise TypeError("Implicit conversion to a NumPy array is not allowed. "
                        "Please use `.get()` to construct a NumPy array explicitly.")

    def __float__(self):
        return float(self._a)

    def __int__(self):
        return int(self._a)

    def __bool__(self):
        return bool(self._a)

    def __repr__(self):
        return "cupy-emu " + repr(self._a)


def _binop(name):
    def f(self, other):
        return _wr(getattr(self._a, name)(_un(other)))
    return f


for _n in ("add radd sub rsub mul rmul truediv rtruediv floordiv pow rpow mod eq ne lt le gt ge "
           "and or xor matmul").split():
    setattr(ndarray, f"__{_n}__", _binop(f"__{_n}__"))


def _inop(name):
    def f(self, other):
        getattr(self._a, name)(_un(other))
        return self
    return f


for _n in "iadd isub imul itruediv".split():
    setattr(ndarray, f"__{_n}__", _inop(f"__{_n}__"))
ndarray.__neg__ = lambda self: ndarray(-self._a)
ndarray.__abs__ = lambda self: ndarray(abs(self._a))
ndarray.__invert__ = lambda self: ndarray(~self._a)


def asarray(a, dtype=None):
    if isinstance(a, ndarray):
        return a if dtype is None or a.dtype == dtype else a.astype(dtype)
    return ndarray(np.array(a, dtype=dtype, copy=True))


array = asarray


def asnumpy(a):
    return a.get() if isinstance(a, ndarray) else np.asarray(a)


def __getattr__(name):
    if name in _NOT_IN_CUPY:
        raise _absent("module 'cupy'", name)
    fn = getattr(np, name)
    if not callable(fn) or isinstance(fn, type):
        return fn
    return lambda *a, **k: _wr(fn(*_un(a), **{kk: _un(v) for kk, v in k.items()}))


class _Linalg:
    def __getattr__(self, name):
        fn = getattr(np.linalg, name)
        return lambda *a, **k: _wr(fn(*_un(a), **k))


linalg = _Linalg()


class _Random:
    """cupy.random's functions over NumPy's global generator; dtype= as CuPy takes it."""

    def __getattr__(self, name):
        fn = getattr(np.random, name)

        def call(*a, dtype=None, **k):
            r = fn(*_un(a), **k)
            return _wr(np.asarray(r, dtype=dtype) if dtype is not None else r)
        return call


random = _Random()
