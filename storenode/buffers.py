"""Buffers filled whole before anyone reads them.

``bytearray(n)`` zeroes its ``n`` bytes, and some callers then overwrite every
one of them: the wire decrypts a received message into its buffer frame by
frame and seals an outgoing one into its buffer frame by frame; a host reads a
chunk file from the page cache into one (``storenode.files.read_if_cached``).
For megabyte messages and chunks of hundreds of KiB the zeroing is pure cost:
~4.6% of a reading node's event-loop thread during a 256 MiB fetch (perf,
10-host localnet), and as much again on the hosts that send. :func:`unfilled`
allocates the same ``bytearray`` without it, through the C API call CPython's
own ``bytearray`` builds on (``PyByteArray_FromStringAndSize`` with no source
copies nothing in).

The contents of an unfilled buffer are whatever the allocator held before, so
a caller must write every byte before the buffer is read or leaves its hands,
and drop it if it cannot.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache


@cache
def _from_c_api() -> Callable[[None, int], bytearray] | None:
    import ctypes  # here, not at import: a command that never asks for a buffer needs none of it

    api = getattr(ctypes, "pythonapi", None)  # CPython only
    if api is None:
        return None
    new = api.PyByteArray_FromStringAndSize
    new.argtypes = [ctypes.c_char_p, ctypes.c_ssize_t]
    new.restype = ctypes.py_object
    return new  # type: ignore[no-any-return]


def unfilled(size: int) -> bytearray:
    """A ``bytearray`` of ``size`` bytes, not zeroed (zeroed where the C API is not
    at hand): the caller writes all of it before it is read."""
    if size < 0:
        raise ValueError(f"a buffer of {size} bytes")
    new = _from_c_api()
    if new is None:
        return bytearray(size)
    return new(None, size)


__all__ = ["unfilled"]
