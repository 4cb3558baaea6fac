"""Arithmetic in GF(2^8) and the small matrix algebra the codes need.

The field is GF(2)[x] / (x^8 + x^4 + x^3 + x^2 + 1) (0x11D) with generator 2,
the field ISA-L uses, so coefficient matrices built here can be handed to its
kernels unchanged.

Everything here works on coefficient matrices (at most 255 x 255 entries); the
bulk work, a matrix times megabytes of blocks, is in :mod:`storenode.coding.kernel`.
Tables are built with numpy at import (well under a millisecond), so short
commands never pay for importing ``galois``; ``galois`` is the oracle in tests.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import numpy.typing as npt

from storenode.coding.errors import CodingParamsError, SingularMatrixError

POLY = 0x11D
ORDER = 256

Matrix = npt.NDArray[np.uint8]


def _build_tables() -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64], Matrix, Matrix]:
    exp = np.zeros(512, dtype=np.uint8)
    log = np.zeros(256, dtype=np.int64)
    x = 1
    for i in range(255):
        exp[i] = x
        log[x] = i
        x <<= 1
        if x & 0x100:
            x ^= POLY
    exp[255:510] = exp[0:255]
    # MUL[a, b] = a * b; row a is the table ISA-L's kernels expand per coefficient.
    a = np.arange(256)
    la = log[a][:, None] + log[a][None, :]
    mul = exp[la % 255].astype(np.uint8)
    mul[0, :] = 0
    mul[:, 0] = 0
    inv = np.zeros(256, dtype=np.uint8)
    inv[1:] = exp[(255 - log[1:]) % 255]
    return exp, log, mul, inv


EXP, LOG, MUL, INV = _build_tables()
MUL.setflags(write=False)
INV.setflags(write=False)


def mul(a: int, b: int) -> int:
    """The product of two field elements."""
    return int(MUL[a, b])


def inv(a: int) -> int:
    """The multiplicative inverse of a non-zero field element."""
    if a == 0:
        raise ZeroDivisionError("0 has no inverse in GF(2^8)")
    return int(INV[a])


def matmul(a: Matrix, b: Matrix) -> Matrix:
    """The product of two small coefficient matrices (r x m) @ (m x c)."""
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"shapes {a.shape} and {b.shape} do not compose")
    out = np.zeros((a.shape[0], b.shape[1]), dtype=np.uint8)
    for j in range(a.shape[1]):
        # out ^= a[:, j] (outer) b[j, :]
        out ^= MUL[a[:, j][:, None], b[j, :][None, :]]
    return out


def vecmat(v: Matrix, m: Matrix) -> Matrix:
    """A row vector times a matrix: the combination sum_i v[i] * m[i, :]."""
    if v.shape[0] != m.shape[0]:
        raise ValueError(f"vector of {v.shape[0]} cannot combine {m.shape[0]} rows")
    out: Matrix = np.bitwise_xor.reduce(MUL[v[:, None], m], axis=0).astype(np.uint8)
    return out


def mat_inv(m: Matrix) -> Matrix:
    """The inverse of a square matrix by Gauss–Jordan elimination.

    Raises :class:`SingularMatrixError` when the rows are linearly dependent.
    """
    n = m.shape[0]
    if m.shape != (n, n):
        raise ValueError(f"cannot invert a {m.shape} matrix")
    aug = np.zeros((n, 2 * n), dtype=np.uint8)
    aug[:, :n] = m
    aug[:, n:] = np.eye(n, dtype=np.uint8)
    for col in range(n):
        nz = np.flatnonzero(aug[col:, col])
        if nz.size == 0:
            raise SingularMatrixError("the coefficient rows are linearly dependent")
        piv = col + int(nz[0])
        if piv != col:
            aug[[col, piv]] = aug[[piv, col]]
        aug[col] = MUL[INV[aug[col, col]], aug[col]]
        factors = aug[:, col].copy()
        factors[col] = 0
        aug ^= MUL[factors[:, None], aug[col][None, :]]
    return aug[:, n:].copy()


@lru_cache(maxsize=64)
def _cauchy(k: int, n: int) -> bytes:
    g = np.zeros((n, k), dtype=np.uint8)
    g[:k, :k] = np.eye(k, dtype=np.uint8)
    rows = np.arange(k, n)[:, None]
    cols = np.arange(k)[None, :]
    g[k:, :] = INV[rows ^ cols]
    return g.tobytes()


def cauchy_generator(k: int, n: int) -> Matrix:
    """The n x k systematic generator: identity on top, Cauchy rows below.

    Row i >= k has entries 1 / (i XOR j): x_i = i and y_j = j are distinct and
    disjoint, so every square submatrix of the Cauchy part is invertible and the
    code is MDS for every 1 <= k <= n <= 255 (the same matrix as ISA-L's
    ``gf_gen_cauchy1_matrix``).
    """
    if not 1 <= k <= n <= 255:
        raise CodingParamsError(f"need 1 <= k <= n <= 255, got k={k} n={n}")
    g = np.frombuffer(_cauchy(k, n), dtype=np.uint8).reshape(n, k)
    return g
