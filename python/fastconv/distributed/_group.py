"""The process group: MPI through mpi4py (CPU arrays, and any array through host copies) or
NCCL through CuPy (CuPy arrays, reduced on the device), with a watchdog on every collective.

Every collective first agrees on what is being called: each rank contributes a small header
(sequence number, operation, reduce op, dtype, shape, root) to one all-gather, and all ranks compare all
headers. A rank that called something else, or the same thing with another shape, makes every
rank raise DistributedError naming each rank's call, instead of MPI pairing unrelated buffers.
Every wait polls against a deadline (FASTCONV_DIST_TIMEOUT seconds, DEFAULT_TIMEOUT unless
init_process_group is given another); past it the rank prints which operation and sequence
number it waited on and aborts the whole job (MPI_Abort), so nothing hangs. An uncaught
exception on any rank aborts the job the same way, and leaving (destroy_process_group, or the
interpreter's exit) is itself agreed on: a job whose ranks did not all finish the same
collectives exits non-zero.
"""

import atexit
import os
import sys
import time
import traceback

import numpy as np

from .._arrays import is_cuda, writable

DEFAULT_TIMEOUT = 600.0
_ENV_TIMEOUT = "FASTCONV_DIST_TIMEOUT"
DONE_FILE_ENV = "FASTCONV_DIST_DONE_FILE"
_HEADER = 13  # int64 words: seq, op, dtype, ndim, root, numel, reduce op, up to 6 dimensions
_MAX_DIMS = _HEADER - 7
_OPS = ("finish", "barrier", "all_reduce", "broadcast", "all_gather")
_REDUCE_OPS = ("sum", "prod", "min", "max", "avg")
_DTYPES = ("none", "float32", "float64", "int64", "int32", "uint8", "float16")
# Waits shorter than this spin on MPI_Test (progress only happens inside MPI calls, so a sleep
# would stall a large message's pipeline); longer ones sleep between tests.
_SPIN_SECONDS = 0.5
_ABORT_GRACE = 0.5

_group = None


class DistributedError(RuntimeError):
    """The ranks disagree about a collective (another operation, dtype or shape on some rank)."""


class GroupStateError(RuntimeError, ValueError):
    """A collective before init_process_group, or a second init: torch.distributed raises
    ValueError there, fastconv used to raise RuntimeError; this is both."""


class ReduceOp:
    """torch.distributed.ReduceOp's names for all_reduce's op argument."""
    SUM, PRODUCT, MIN, MAX, AVG = "sum", "prod", "min", "max", "avg"


def _timeout_from(timeout):
    if timeout is None:
        env = os.environ.get(_ENV_TIMEOUT)
        if env is None:
            return DEFAULT_TIMEOUT
        try:
            timeout = float(env)
        except ValueError:
            raise ValueError(f"{_ENV_TIMEOUT} must be a number of seconds, got {env!r}") from None
        what = _ENV_TIMEOUT
    else:
        if hasattr(timeout, "total_seconds"):  # a datetime.timedelta, as torch takes
            timeout = timeout.total_seconds()
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
            raise TypeError(f"init_process_group: timeout must be seconds or a timedelta, "
                            f"got {timeout!r}")
        what = "init_process_group: timeout"
    if not timeout > 0:
        raise ValueError(f"{what} must be positive, got {timeout!r}")
    return float(timeout)


def _mpi():
    try:
        from mpi4py import MPI
    except ImportError:
        raise ImportError("fastconv.distributed needs mpi4py and an MPI library: "
                          "pip install \"fastconv[mpi]\" (mpi4py and the mpich wheel)") from None
    return MPI


def _cuda_usable():
    try:
        import cupy
        from cupy.cuda import nccl  # noqa: F401
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


class _Group:
    def __init__(self, backend, timeout):
        MPI = _mpi()
        self.MPI = MPI
        self.comm = MPI.COMM_WORLD.Dup()
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        local = self.comm.Split_type(MPI.COMM_TYPE_SHARED, key=self.rank)
        self.local_rank, self.local_size = local.Get_rank(), local.Get_size()
        local.Free()
        self.timeout = timeout
        self.seq = 0
        self.last = None  # the last collective called, for the messages
        self.backend = backend
        self.nccl = None
        if backend == "nccl":
            self._init_nccl()

    # -- NCCL ---------------------------------------------------------------------------
    def _init_nccl(self):
        import cupy
        from cupy.cuda import nccl

        cupy.cuda.Device(self.local_rank % cupy.cuda.runtime.getDeviceCount()).use()
        uid = np.zeros(128, np.uint8)  # NCCL_UNIQUE_ID_BYTES
        if self.rank == 0:
            uid[:] = np.frombuffer(bytes(b % 256 for b in nccl.get_unique_id()), np.uint8)
        self.broadcast(uid, 0)
        unique_id = tuple(int(b) if b < 128 else int(b) - 256 for b in uid)
        self.nccl = nccl.NcclCommunicator(self.size, unique_id, self.rank)
        self._nccl_types = {np.dtype(np.float32): nccl.NCCL_FLOAT32,
                            np.dtype(np.float64): nccl.NCCL_FLOAT64,
                            np.dtype(np.float16): nccl.NCCL_FLOAT16,
                            np.dtype(np.int64): nccl.NCCL_INT64,
                            np.dtype(np.int32): nccl.NCCL_INT32,
                            np.dtype(np.uint8): nccl.NCCL_UINT8}
        self._nccl_ops = {"sum": nccl.NCCL_SUM, "prod": nccl.NCCL_PROD, "min": nccl.NCCL_MIN,
                          "max": nccl.NCCL_MAX, "avg": nccl.NCCL_SUM}

    def _nccl_wait(self, what):
        import cupy

        event = cupy.cuda.Event(disable_timing=True)
        event.record()
        self._wait(lambda: event.done, what)

    # -- the watchdog ---------------------------------------------------------------------
    def abort(self, message):
        """Print why and end every rank of the job (MPI_Abort): the only exit that cannot hang."""
        global _group
        _group = None  # no exit-time agreement after this
        sys.stderr.write(f"fastconv.distributed: rank {self.rank} of {self.size}: {message}; "
                         "aborting the job\n")
        sys.stderr.flush()
        # The launcher forwards each rank's output through a pipe; MPI_Abort tears the job down
        # at once, and what is still in flight (this message, the other ranks') would be lost.
        time.sleep(_ABORT_GRACE)
        if self.nccl is not None:
            try:
                self.nccl.abort()
            except Exception:
                pass
        self.MPI.COMM_WORLD.Abort(1)
        os._exit(1)

    def _wait(self, done, what):
        start = time.monotonic()
        deadline, spin_until = start + self.timeout, start + _SPIN_SECONDS
        polls = 0
        while not done():
            polls += 1
            if polls % 64:
                continue
            now = time.monotonic()
            if now > deadline:
                self.abort(f"{what} did not complete within {self.timeout:g} s (another rank "
                           f"failed, exited or never called it; {_ENV_TIMEOUT} sets the limit)")
            if now > spin_until:
                time.sleep(0.001)

    def _wait_request(self, request, what):
        self._wait(request.Test, what)

    # -- agreement ------------------------------------------------------------------------
    def agree(self, op, array=None, root=-1, reduce_op=None):
        """Check that every rank calls the same collective (seq, op, reduce op, dtype, shape,
        root); returns the description used in messages."""
        self.seq += 1
        header = np.full(_HEADER, -1, np.int64)
        header[0], header[1], header[4] = self.seq, _OPS.index(op), root
        if reduce_op is not None:
            header[6] = _REDUCE_OPS.index(reduce_op)
        if array is not None:
            name = str(array.dtype)
            header[2] = _DTYPES.index(name) if name in _DTYPES else 0
            header[3], header[5] = array.ndim, array.size
            for d, s in enumerate(array.shape[:_MAX_DIMS]):
                header[7 + d] = s
        what = self.last = f"{op} #{self.seq}"
        headers = np.empty((self.size, _HEADER), np.int64)
        self._wait_request(self.comm.Iallgather(header, headers), what + " (agreement)")
        if not (headers == header).all():
            calls = "; ".join(f"rank {r}: {self._describe(h)}" for r, h in enumerate(headers))
            raise DistributedError(f"rank {self.rank}: the ranks disagree at collective "
                                   f"#{self.seq}: {calls}")
        return what

    @staticmethod
    def _describe(h):
        op = _OPS[h[1]] if 0 <= h[1] < len(_OPS) else f"op {h[1]}"
        text = f"{op} #{h[0]}"
        if h[3] >= 0:
            dims = [int(d) for d in h[7:7 + min(h[3], _MAX_DIMS)]]
            shape = "(" + ", ".join(map(str, dims)) + ("," if len(dims) == 1 else "") + \
                ("...)" if h[3] > _MAX_DIMS else ")")
            text += f" of a {_DTYPES[h[2]] if 0 < h[2] < len(_DTYPES) else 'other'} array {shape}"
        if h[4] >= 0:
            text += f" from rank {h[4]}"
        if 0 <= h[6] < len(_REDUCE_OPS):
            text += f" with op {_REDUCE_OPS[h[6]]!r}"
        return text

    # -- collectives ----------------------------------------------------------------------
    def barrier(self):
        what = self.agree("barrier")
        self._wait_request(self.comm.Ibarrier(), what)

    def all_reduce(self, array, op):
        what = self.agree("all_reduce", array, reduce_op=op)
        if self.size == 1:
            return
        if is_cuda(array) and self.nccl is not None:
            import cupy

            self.nccl.allReduce(array.data.ptr, array.data.ptr, array.size,
                                self._nccl_types[array.dtype], self._nccl_ops[op],
                                cupy.cuda.get_current_stream().ptr)
            self._nccl_wait(what)
            if op == "avg":
                array /= self.size
            return
        host = _host(array)
        mpi_op = {"sum": self.MPI.SUM, "avg": self.MPI.SUM, "prod": self.MPI.PROD,
                  "min": self.MPI.MIN, "max": self.MPI.MAX}[op]
        self._wait_request(self.comm.Iallreduce(self.MPI.IN_PLACE, host, mpi_op), what)
        if op == "avg":
            host /= self.size
        _back(host, array)

    def broadcast(self, array, src):
        what = self.agree("broadcast", array, src)
        if self.size == 1:
            return
        if is_cuda(array) and self.nccl is not None:
            import cupy

            self.nccl.bcast(array.data.ptr, array.size, self._nccl_types[array.dtype], src,
                            cupy.cuda.get_current_stream().ptr)
            self._nccl_wait(what)
            return
        host = _host(array)
        self._wait_request(self.comm.Ibcast(host, root=src), what)
        _back(host, array)

    def all_gather(self, array):
        what = self.agree("all_gather", array)
        host = np.ascontiguousarray(_host(array))
        out = np.empty((self.size,) + host.shape, host.dtype)
        self._wait_request(self.comm.Iallgather(host, out), what)
        return out

    def finish(self):
        """The last agreement: every rank must have reached it after the same collectives."""
        try:
            self.agree("finish")
        except DistributedError as error:
            self.abort(str(error))
        self.comm.Free()
        # A launcher that must tell a finished job from one whose ranks were stopped (MPICH's
        # mpiexec returns 0 when a rank leaves with status 0 and takes the others down) names
        # a file; rank 0 writes it once every rank has agreed to finish.
        done = os.environ.get(DONE_FILE_ENV)
        if done and self.rank == 0:
            with open(done, "w") as f:
                f.write(f"{self.size} ranks finished after {self.seq} collectives\n")


def _host(array):
    """array as a writable C-contiguous NumPy array (a host copy for a CuPy one)."""
    if is_cuda(array):
        return array.get()
    return array


def _back(host, array):
    if host is not array:
        array.set(host)


# -- the module-level API ---------------------------------------------------------------------

def _excepthook(kind, value, tb):
    group = _group
    traceback.print_exception(kind, value, tb)
    if group is not None and group.size > 1:
        where = f"after {group.last}" if group.last else "before any collective"
        group.abort(f"uncaught {kind.__name__} {where}; the other ranks wait in or before "
                    f"collective #{group.seq + 1}")


def _at_exit():
    if _group is not None:
        destroy_process_group()


def init_process_group(backend="auto", timeout=None):
    """Join the job's process group (every rank of an MPI launch: mpiexec, srun, ...).

    backend: "mpi" (mpi4py; CuPy arrays go through host copies), "nccl" (CuPy arrays reduced on
    the device by NCCL, set up over MPI; one GPU per local rank, round robin) or "auto" (nccl
    when CuPy, NCCL and a GPU are usable, else mpi). timeout: seconds (or a timedelta) any
    collective may wait before the job is aborted; default FASTCONV_DIST_TIMEOUT, else
    DEFAULT_TIMEOUT. A one-process run (no launcher) is a group of one.
    """
    global _group
    if _group is not None:
        raise GroupStateError("init_process_group: the process group is already initialised "
                           "(destroy_process_group first)")
    if backend not in ("auto", "mpi", "nccl"):
        raise ValueError(f"init_process_group: backend must be 'auto', 'mpi' or 'nccl', "
                         f"got {backend!r}")
    timeout = _timeout_from(timeout)
    if backend == "auto":
        backend = "nccl" if _cuda_usable() else "mpi"
    elif backend == "nccl" and not _cuda_usable():
        raise RuntimeError("init_process_group: backend 'nccl' needs CuPy with NCCL and a GPU")
    _group = _Group(backend, timeout)
    if _group.size > 1:
        sys.excepthook = _excepthook
    atexit.register(_at_exit)


def destroy_process_group():
    """Leave the group after agreeing that every rank got here after the same collectives."""
    global _group
    group = _group
    if group is None:
        return
    _group = None
    if sys.excepthook is _excepthook:
        sys.excepthook = sys.__excepthook__
    group.finish()


def is_initialized():
    return _group is not None


def _require(op):
    if _group is None:
        raise GroupStateError(f"{op}: the default process group is not initialised "
                           "(call fastconv.distributed.init_process_group() first)")
    return _group


def group():
    """The current process group, or None."""
    return _group


def get_rank():
    return _require("get_rank").rank


def get_world_size():
    return _require("get_world_size").size


def get_local_rank():
    """This process's rank among those on its machine."""
    return _require("get_local_rank").local_rank


def get_backend():
    return _require("get_backend").backend


def is_main_process():
    """True on rank 0, and when no group is initialised (a one-process run)."""
    return _group is None or _group.rank == 0


def barrier():
    _require("barrier").barrier()


def _collective_array(array, op):
    from .._arrays import is_array

    if not is_array(array):
        raise TypeError(f"{op}: array must be a numpy.ndarray or a cupy.ndarray, got "
                        f"{type(array).__module__}.{type(array).__qualname__}")
    if not array.flags.c_contiguous:
        raise ValueError(f"{op}: array must be C-contiguous (collectives work in place)")
    if not writable(array):
        raise ValueError(f"{op}: array must be writable (collectives work in place)")
    if str(array.dtype) not in _DTYPES[1:]:
        raise TypeError(f"{op}: array dtype must be one of {', '.join(_DTYPES[1:])}, "
                        f"got {array.dtype}")
    return array


def all_reduce(array, op="sum"):
    """Reduce `array` over all ranks, in place (every rank gets the result), as
    torch.distributed.all_reduce. op: "sum", "prod", "min", "max" or "avg" (ReduceOp names)."""
    g = _require("all_reduce")
    _collective_array(array, "all_reduce")
    if op not in _REDUCE_OPS:
        raise ValueError(f"all_reduce: op must be one of {', '.join(map(repr, _REDUCE_OPS))}, "
                         f"got {op!r}")
    if op == "avg" and array.dtype.kind != "f":
        raise TypeError(f"all_reduce: op 'avg' needs a float array, got {array.dtype}")
    g.all_reduce(array, op)


def broadcast(array, src=0):
    """Copy rank src's `array` into every rank's, in place."""
    g = _require("broadcast")
    _collective_array(array, "broadcast")
    if isinstance(src, bool) or not isinstance(src, (int, np.integer)) or not 0 <= src < g.size:
        raise ValueError(f"broadcast: src must be a rank in [0, {g.size}), got {src!r}")
    g.broadcast(array, int(src))


def all_gather(array):
    """Every rank's `array`, stacked in rank order: a new (world_size, *array.shape) NumPy
    array on every rank."""
    g = _require("all_gather")
    _collective_array(array, "all_gather")
    return g.all_gather(array)
