"""Writing files so that they survive a crash, without waiting longer than needed.

* :func:`sync_dir`: make a directory's entries (files created, renamed,
  removed) durable, as ``fsync`` on the files does not.
* :func:`drop_cache`: drop a file's clean pages from the page cache, so that
  the next read comes from the disk (and a one-off read leaves no pages behind).
* :func:`start_writeback`: ask the kernel to start writing a file's dirty
  pages now, without waiting for them (Linux ``sync_file_range`` with
  ``SYNC_FILE_RANGE_WRITE``). A writer that calls it as it goes makes the
  ``fdatasync`` it ends with nearly free: measured here on 256 MiB written in
  1 MiB pieces, with a call every 8 MiB the final sync took 7-32 ms instead of
  120-140 ms. Elsewhere than on Linux it does nothing, and the final sync
  does the work.
* :func:`read_if_cached`: read a file only if the page cache holds it, so an
  event loop can read what is in memory without waiting for the disk.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Callable
from functools import cache

SYNC_FILE_RANGE_WRITE = 2


def sync_dir(path: str | os.PathLike[str]) -> None:
    """``fsync`` the directory ``path``."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def drop_cache(fd: int) -> None:
    """Drop the open file ``fd``'s clean pages from the page cache (dirty ones are
    kept until written); nothing where the OS has no ``posix_fadvise``."""
    advise = getattr(os, "posix_fadvise", None)
    if advise is not None:
        with contextlib.suppress(OSError):
            advise(fd, 0, 0, os.POSIX_FADV_DONTNEED)


def start_writeback(fd: int) -> None:
    """Start writing back every dirty page of the open file ``fd``; return at once.
    Errors are ignored: the final ``fsync``/``fdatasync`` reports them."""
    sync_file_range = _sync_file_range()
    if sync_file_range is not None:
        sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE)


@cache
def _sync_file_range() -> Callable[[int, int, int, int], int] | None:
    import ctypes  # here, not at import: ctypes.util costs commands that never sync
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


class NoWaitUnsupportedError(Exception):
    """The file system or kernel cannot read without waiting (``RWF_NOWAIT``)."""


def read_if_cached(fd: int, size: int) -> bytearray | None:
    """The whole file, up to ``size + 1`` bytes (a caller that expects ``size`` sees
    a longer file), if the page cache holds all of that; None if reading it would
    wait for the disk (``preadv2(RWF_NOWAIT)`` stops at the first page it lacks).
    :class:`NoWaitUnsupportedError` where the kernel or file system cannot tell."""
    if _RWF_NOWAIT is None:
        raise NoWaitUnsupportedError
    want = min(os.fstat(fd).st_size, size + 1)
    buffer = bytearray(want)
    try:
        got = os.preadv(fd, [buffer], 0, _RWF_NOWAIT) if want else 0
    except BlockingIOError:
        return None
    except OSError as e:
        if e.errno in (errno.EOPNOTSUPP, errno.EINVAL):
            raise NoWaitUnsupportedError from None
        raise
    return buffer if got == want else None


_RWF_NOWAIT: int | None = getattr(os, "RWF_NOWAIT", None)


__all__ = [
    "NoWaitUnsupportedError",
    "drop_cache",
    "read_if_cached",
    "start_writeback",
    "sync_dir",
]
