import time

from . import runtime  # noqa: F401


class Stream:
    null = None

    def __init__(self, non_blocking=False):
        self.ptr = 0x1234

    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False

    def synchronize(self):
        pass


Stream.null = Stream()


def get_current_stream():
    return Stream()


class Device:
    """Device 0, the only one."""

    def __init__(self, device=None):
        self.id = 0

    def synchronize(self):
        pass


class Event:
    """Emulated kernels run on the host before the launch returns, so a host clock read at
    record() times them as CUDA events would on a GPU."""

    def __init__(self, *args, **kwargs):
        self.t = None

    def record(self, stream=None):
        self.t = time.perf_counter()

    def synchronize(self):
        pass


def set_allocator(allocator=None):
    """CuPy's memory-pool switch; host memory has no pool to switch off."""


def get_elapsed_time(start, end):
    """Milliseconds between two recorded events, as cupy.cuda.get_elapsed_time."""
    return (end.t - start.t) * 1e3
