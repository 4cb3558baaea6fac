"""Process-wide tuning applied when a storenode process starts.

glibc serves every allocation of 128 KiB or more with a fresh ``mmap`` and
returns it with ``munmap``; a node moves megabyte-sized messages, chunks and
stripes all day, so each one costs hundreds of page faults (measured: ~480 per
1 MiB message received, which held the encrypted wire to ~460 MB/s). Raising
the mmap threshold to 16 MiB and the trim threshold to 64 MiB lets those
buffers be reused from the heap. See docs/decisions/0005-malloc-thresholds.md.
"""

from __future__ import annotations

import ctypes
import logging

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 16 << 20
TRIM_THRESHOLD = 64 << 20

_done = False


def tune_allocator() -> bool:
    """Set glibc's malloc thresholds once per process; False where there is no glibc."""
    global _done
    if _done:
        return True
    try:
        # The process's own symbols, libc's among them: no library search (ctypes.util
        # costs every command ~6 ms of imports).
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
    _done = ok
    if not ok:
        log.info("could not set malloc thresholds; large buffers will be mmapped")
    return ok
