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


def get_current_stream():
    return Stream()
