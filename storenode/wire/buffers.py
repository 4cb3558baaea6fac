"""Buffers the wire fills whole before anyone reads them.

``bytearray(n)`` zeroes its ``n`` bytes, and the wire then overwrites every one
of them: a received message is decrypted into its buffer frame by frame, an
outgoing one sealed into its buffer frame by frame. For the megabyte messages
that carry chunks and packets the zeroing is pure cost: ~4.6% of a reading
node's event-loop thread during a 256 MiB fetch (perf, 10-host localnet), and
as much again on the hosts that send. :func:`unfilled` allocates the same
``bytearray`` without it, through the C API call CPython's own ``bytearray``
builds on (``PyByteArray_FromStringAndSize`` with no source copies nothing in).

The contents of an unfilled buffer are whatever the allocator held before, so
a caller must write every byte before the buffer is read or leaves its hands,
and drop it if it cannot.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable


def _from_c_api() -> Callable[[None, int], bytearray] | None:
    api = getattr(ctypes, "pythonapi", None)  # CPython only
    if api is None:
        return None
    new = api.PyByteArray_FromStringAndSize
    new.argtypes = [ctypes.c_char_p, ctypes.c_ssize_t]
    new.restype = ctypes.py_object
    return new  # type: ignore[no-any-return]


_new = _from_c_api()


def unfilled(size: int) -> bytearray:
    """A ``bytearray`` of ``size`` bytes, not zeroed (zeroed where the C API is not
    at hand): the caller writes all of it before it is read."""
    if size < 0:
        raise ValueError(f"a buffer of {size} bytes")
    if _new is None:
        return bytearray(size)
    return _new(None, size)


__all__ = ["unfilled"]
