"""Atomic file writes: a file is either its old self or completely the new one.

The data goes to a temporary file in the target's directory (same file system, so the final
rename is atomic), is flushed and fsynced, and only then replaces the target with os.replace;
the directory is fsynced too, so the rename survives a power cut. On any error, or on
KeyboardInterrupt, the temporary file is removed and the target is left as it was. A process
killed outright (SIGKILL, power loss) may leave the temporary ".<name>.<random>.tmp" beside the
target, never a half-written target.
"""

import contextlib
import os
import secrets

__all__ = ["atomic_write"]


def _create_temp(path):
    """A new file beside `path` (O_EXCL, mode 0o666 less the umask, as open() would make it)."""
    directory, name = os.path.split(os.path.abspath(path))
    for _ in range(100):
        tmp = os.path.join(directory, f".{name}.{secrets.token_hex(6)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                         0o666)
        except FileExistsError:
            continue
        return fd, tmp
    raise FileExistsError(f"could not create a temporary file beside {path!r}")


def _fsync_directory(path):
    """Make a rename in path's directory durable (POSIX; a no-op where directories cannot be
    opened, as on Windows)."""
    try:
        fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(path, mode="wb", encoding=None):
    """Yield a file object open for writing (mode "wb" or "w"); when the block ends without an
    exception, its content atomically replaces `path`."""
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_write: mode must be 'wb' or 'w', got {mode!r}")
    path = os.fspath(path)
    fd, tmp = _create_temp(path)
    try:
        with os.fdopen(fd, mode, encoding=encoding if mode == "w" else None) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_directory(path)
