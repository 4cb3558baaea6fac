"""Time one ISA-L encode kernel, and SHA-256 in the same thread before and after it.

    python docs/decisions/0004-measure-isal-kernels.py KERNEL [LIBRARY]

KERNEL is an exported symbol such as ec_encode_data, ec_encode_data_avx2,
ec_encode_data_avx512 or ec_encode_data_avx512_gfni; LIBRARY defaults to
Debian's libisal.so.2. The figures are in decision 0004.
"""

import ctypes
import hashlib
import os
import sys
import time

import numpy as np

from storenode.coding import gf

os.sched_setaffinity(0, {0})
lib = ctypes.CDLL(sys.argv[2] if len(sys.argv) > 2 else "libisal.so.2")
kernel = sys.argv[1]
enc = getattr(lib, kernel)
enc.restype = None
enc.argtypes = [ctypes.c_int] * 3 + [ctypes.c_void_p] * 3
init = lib.ec_init_tables
init.restype = None
init.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]

k, r, size = 10, 4, 1 << 20
m = np.ascontiguousarray(gf.cauchy_generator(k, k + r)[k:])
tables = np.empty(32 * k * r, np.uint8)
init(k, r, m.ctypes.data, tables.ctypes.data)
blocks = np.random.default_rng(1).integers(0, 256, (k, size), dtype=np.uint8)
out = np.empty((r, size), np.uint8)
src = (ctypes.c_void_p * k)(*[b.ctypes.data for b in blocks])
dst = (ctypes.c_void_p * r)(*[o.ctypes.data for o in out])
data = os.urandom(1 << 20)


def sha_rate() -> float:
    start, n = time.perf_counter(), 0
    while time.perf_counter() - start < 0.3:
        for off in range(0, len(data), 1024):
            hashlib.sha256(data[off : off + 1024]).digest()
        n += 1
    return n * len(data) / 1e6 / (time.perf_counter() - start)


before = sha_rate()
start, n = time.perf_counter(), 0
while time.perf_counter() - start < 0.5:
    enc(size, k, r, tables.ctypes.data, src, dst)
    n += 1
rate = n * k * size / 1e6 / (time.perf_counter() - start)
after = sha_rate()
time.sleep(0.5)
later = sha_rate()
print(f"{kernel}: encode {rate:.0f} MB/s; SHA-256 {before:.0f} -> {after:.0f} -> {later:.0f} MB/s")
