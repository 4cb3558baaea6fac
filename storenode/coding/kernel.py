"""The hot loop of every code here: ``out = M x blocks`` over GF(2^8).

``M`` is a small r x c coefficient matrix; ``blocks`` are c byte strings of one
length L; the result is r rows of L bytes, row i being
``XOR_j M[i, j] * blocks[j]`` byte by byte.

Two backends give identical bytes:

* ``isal``: Intel ISA-L's ``ec_init_tables`` + ``ec_encode_data`` (SIMD; uses
  GFNI/AVX-512 where the CPU has them) through ctypes: the system library
  (Debian ``libisal2``) or the copy inside the ``pyeclib`` wheel, preferring a
  build with the GFNI kernels (see :func:`load_isal`).
* ``numpy``: table look-ups with numpy, for machines without either library.

The backend is chosen once per process and logged once; the environment
variable ``STORENODE_GF_BACKEND=isal|numpy`` forces one.
"""

from __future__ import annotations

import ctypes
import logging
import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from storenode.coding.errors import BlockTypeError, GfBackendUnavailableError, ShardSizeError
from storenode.coding.gf import MUL, Matrix

log = logging.getLogger(__name__)

Buffer = bytes | bytearray | memoryview | npt.NDArray[np.uint8]
Blocks = Sequence[Buffer] | npt.NDArray[np.uint8]

ENV_VAR = "STORENODE_GF_BACKEND"


class GfBackend(Protocol):
    name: str

    def matmul(self, matrix: Matrix, rows: Sequence[npt.NDArray[np.uint8]]) -> Matrix: ...


def as_rows(blocks: Blocks) -> list[npt.NDArray[np.uint8]]:
    """View each block as a 1-D uint8 array without copying; check equal lengths."""
    if isinstance(blocks, np.ndarray) and blocks.ndim == 2:
        if blocks.dtype != np.uint8:
            raise BlockTypeError(f"blocks must be uint8, not {blocks.dtype}")
        rows = list(np.ascontiguousarray(blocks))
    else:
        rows = [_as_array(b) for b in blocks]
    if rows:
        size = rows[0].shape[0]
        for i, r in enumerate(rows):
            if r.shape[0] != size:
                raise ShardSizeError(f"block {i} has {r.shape[0]} bytes, block 0 has {size}")
    return rows


def view(b: Buffer) -> memoryview:
    """A flat byte view of a buffer or a uint8 array, without copying."""
    if isinstance(b, np.ndarray):
        return _as_array(b).data.cast("B")
    return memoryview(b).cast("B")


def _as_array(b: Buffer) -> npt.NDArray[np.uint8]:
    if isinstance(b, np.ndarray):
        if b.dtype != np.uint8:
            raise BlockTypeError(f"blocks must be uint8, not {b.dtype}")
        return np.ascontiguousarray(b.reshape(-1))
    return np.frombuffer(b, dtype=np.uint8)


class NumpyBackend:
    """Byte-wise table look-ups; a few hundred MB/s."""

    name = "numpy"

    def matmul(self, matrix: Matrix, rows: Sequence[npt.NDArray[np.uint8]]) -> Matrix:
        r, c = matrix.shape
        size = rows[0].shape[0] if rows else 0
        out = np.zeros((r, size), dtype=np.uint8)
        for j in range(c):
            block = rows[j]
            for i in range(r):
                coef = int(matrix[i, j])
                if coef == 0:
                    continue
                if coef == 1:
                    np.bitwise_xor(out[i], block, out=out[i])
                else:
                    np.bitwise_xor(out[i], MUL[coef].take(block), out=out[i])
        return out


class IsalBackend:
    """ISA-L through ctypes: expanded tables per coefficient, then SIMD dot products."""

    def __init__(self, lib: ctypes.CDLL, origin: str) -> None:
        self.name = f"isal ({origin})"
        self._init_tables = lib.ec_init_tables
        self._init_tables.restype = None
        self._init_tables.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
        self._encode = lib.ec_encode_data
        self._encode.restype = None
        self._encode.argtypes = [
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_void_p,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]

    @lru_cache(maxsize=256)  # noqa: B019 - one backend object lives for the process
    def _tables(self, shape: tuple[int, int], key: bytes) -> npt.NDArray[np.uint8]:
        r, c = shape
        tables = np.empty(32 * r * c, dtype=np.uint8)
        a = np.frombuffer(key, dtype=np.uint8)
        self._init_tables(c, r, a.ctypes.data, tables.ctypes.data)
        return tables

    def matmul(self, matrix: Matrix, rows: Sequence[npt.NDArray[np.uint8]]) -> Matrix:
        r, c = matrix.shape
        size = rows[0].shape[0] if rows else 0
        out = np.empty((r, size), dtype=np.uint8)
        if size == 0 or r == 0:
            return out
        if size >= 2**31:
            raise ShardSizeError("blocks of 2 GiB or more are not supported")
        m = np.ascontiguousarray(matrix, dtype=np.uint8)
        tables = self._tables((r, c), m.tobytes())
        src = (ctypes.c_void_p * c)(*[row.__array_interface__["data"][0] for row in rows])
        dst = (ctypes.c_void_p * r)(*[out[i].__array_interface__["data"][0] for i in range(r)])
        self._encode(size, c, r, tables.ctypes.data, src, dst)
        return out


def _isal_candidates() -> list[tuple[str, str]]:
    found = [("libisal.so.2", "system libisal2"), ("libisal.so", "system libisal")]
    try:
        from importlib.metadata import PackageNotFoundError, distribution

        try:
            libs = Path(str(distribution("pyeclib").locate_file("pyeclib.libs")))
        except PackageNotFoundError:
            libs = None
        if libs is not None and libs.is_dir():
            for so in sorted(libs.glob("libisal*.so*")):
                found.append((str(so), "bundled with pyeclib"))
    except ImportError:  # pragma: no cover - importlib.metadata is stdlib
        pass
    return found


def _has_symbol(lib: ctypes.CDLL, name: str) -> bool:
    try:
        getattr(lib, name)
    except AttributeError:
        return False
    return True


def load_isal() -> IsalBackend | None:
    """The best ISA-L backend that loads, or None.

    A build with the GFNI kernels (ISA-L >= 2.31) is preferred; among equals the
    system library comes first. Debian 12's libisal2 (2.30) dispatches to an
    AVX-512 kernel after which SHA-256 in the same thread runs ~18% slower, while
    2.31's AVX-512+GFNI kernel is faster and leaves hashing alone; see
    docs/decisions/0004-prefer-isal-with-gfni.md.
    """
    loaded: list[tuple[bool, int, ctypes.CDLL, str]] = []
    for order, (path, origin) in enumerate(_isal_candidates()):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        if not (_has_symbol(lib, "ec_encode_data") and _has_symbol(lib, "ec_init_tables")):
            continue
        gfni = _has_symbol(lib, "ec_encode_data_avx512_gfni")
        loaded.append((not gfni, order, lib, origin + (", GFNI kernels" if gfni else "")))
    if not loaded:
        return None
    _, _, lib, origin = min(loaded, key=lambda c: (c[0], c[1]))
    return IsalBackend(lib, origin)


_backend: GfBackend | None = None


def _choose() -> GfBackend:
    forced = os.environ.get(ENV_VAR, "").strip().lower()
    if forced not in ("", "isal", "numpy"):
        raise GfBackendUnavailableError(f"{ENV_VAR}={forced!r}: expected 'isal' or 'numpy'")
    if forced == "numpy":
        return NumpyBackend()
    isal = load_isal()
    if isal is not None:
        return isal
    if forced == "isal":
        raise GfBackendUnavailableError(
            f"{ENV_VAR}=isal but no ISA-L library loads: install Debian's libisal2 "
            "or the pyeclib wheel"
        )
    return NumpyBackend()


def backend() -> GfBackend:
    """The process-wide backend, chosen (and logged) on first use."""
    global _backend
    if _backend is None:
        _backend = _choose()
        log.info("GF(2^8) kernel: %s", _backend.name)
    return _backend


def backend_name() -> str:
    return backend().name


def gf_matmul(matrix: Matrix, blocks: Blocks, *, using: GfBackend | None = None) -> Matrix:
    """``out = matrix x blocks``: an r x L array whose row i combines the c blocks.

    ``matrix`` is r x c uint8; ``blocks`` is c equal-length byte strings (or a
    c x L array). Raises :class:`ShardSizeError` on unequal lengths.
    """
    if not isinstance(matrix, np.ndarray) or matrix.dtype != np.uint8:
        raise BlockTypeError("the coefficient matrix must be a uint8 array")
    rows = as_rows(blocks)
    if matrix.ndim != 2 or matrix.shape[1] != len(rows):
        raise ShardSizeError(f"a {matrix.shape} matrix cannot combine {len(rows)} blocks")
    return (using or backend()).matmul(matrix, rows)
