"""Systematic Reed–Solomon over GF(2^8) with a Cauchy generator.

A stripe is k source blocks of one length. ``encode`` returns n shards: the k
blocks themselves (shards 0..k-1, not copied) and n-k parity shards computed
as ``G[k:] x blocks``. Any k distinct shards decode the stripe: with ``S`` the
rows of G for the shards held, ``blocks = S^-1 x shards``. A reader that only
lacks some data shards gets just those rebuilt (rows of ``S^-1``), so a
read with every data shard present does no arithmetic at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from storenode.coding import gf
from storenode.coding.errors import (
    DuplicateShardError,
    NotEnoughShardsError,
    ShardCorruptError,
    ShardIndexError,
    ShardSizeError,
)
from storenode.coding.gf import Matrix
from storenode.coding.kernel import Blocks, Buffer, as_rows, gf_matmul, view
from storenode.coding.merkle import merkle_root


class ReedSolomon:
    """An (n, k) systematic MDS code: any k of the n shards give back the k blocks."""

    __slots__ = ("generator", "k", "n")

    def __init__(self, k: int, n: int) -> None:
        self.generator = gf.cauchy_generator(k, n)  # raises CodingParamsError
        self.k = k
        self.n = n

    def __repr__(self) -> str:
        return f"ReedSolomon(k={self.k}, n={self.n})"

    # -- encoding -----------------------------------------------------------

    def split(self, stripe: Buffer) -> list[memoryview]:
        """Cut a stripe into k equal blocks (views, no copy)."""
        mv = view(stripe)
        if mv.nbytes % self.k:
            raise ShardSizeError(f"a stripe of {mv.nbytes} bytes does not split into k={self.k}")
        size = mv.nbytes // self.k
        return [mv[i * size : (i + 1) * size] for i in range(self.k)]

    def parity(self, blocks: Blocks) -> Matrix:
        """The n-k parity shards of k blocks, as an (n-k) x L array."""
        rows = as_rows(blocks)
        if len(rows) != self.k:
            raise ShardSizeError(f"expected k={self.k} blocks, got {len(rows)}")
        return gf_matmul(self.generator[self.k :], rows)

    def encode(self, blocks: Blocks) -> list[memoryview]:
        """All n shards of a stripe given as k blocks."""
        rows = as_rows(blocks)
        par = self.parity(rows)
        return [view(r) for r in rows] + [view(p) for p in par]

    def encode_stripe(self, stripe: Buffer) -> list[memoryview]:
        """All n shards of a stripe whose length is a multiple of k."""
        return self.encode(self.split(stripe))

    # -- decoding -----------------------------------------------------------

    def _check(
        self, indices: Sequence[int], shards: Sequence[Buffer], roots: Sequence[bytes] | None
    ) -> list[Matrix]:
        if len(indices) != len(shards):
            raise ShardSizeError(f"{len(indices)} indices for {len(shards)} shards")
        seen: set[int] = set()
        for i in indices:
            if not 0 <= i < self.n:
                raise ShardIndexError(f"shard index {i} is outside 0..{self.n - 1}")
            if i in seen:
                raise DuplicateShardError(f"shard {i} was given twice")
            seen.add(i)
        if len(seen) < self.k:
            raise NotEnoughShardsError(
                f"{len(seen)} distinct shards cannot decode a k={self.k} stripe"
            )
        rows = as_rows(shards)
        if roots is not None:
            if len(roots) != self.n:
                raise ShardSizeError(f"expected {self.n} chunk roots, got {len(roots)}")
            for i, row in zip(indices, rows, strict=True):
                if merkle_root(view(row)) != roots[i]:
                    raise ShardCorruptError(i)
        return rows

    def decode(
        self,
        indices: Sequence[int],
        shards: Sequence[Buffer],
        *,
        roots: Sequence[bytes] | None = None,
    ) -> list[memoryview]:
        """The k source blocks from any k (or more) distinct shards.

        ``indices[i]`` is the shard number of ``shards[i]``. With ``roots`` (the
        n chunk ids of the stripe, from the manifest) every shard given, used or
        not, is first checked against its Merkle root, and a mismatch raises
        :class:`ShardCorruptError` naming it: a bad shard is reported even when
        the others would have sufficed.
        """
        rows = self._check(indices, shards, roots)
        held = dict(zip(indices, rows, strict=True))
        missing = [i for i in range(self.k) if i not in held]
        out: dict[int, Matrix] = {i: held[i] for i in range(self.k) if i in held}
        if missing:
            use = _choose_rows(self.k, held)
            decoder = _decode_matrix(self.k, self.n, tuple(use))
            rebuilt = gf_matmul(decoder[missing], [held[i] for i in use])
            out.update(zip(missing, rebuilt, strict=True))
        return [view(out[i]) for i in range(self.k)]

    def decode_stripe(
        self,
        indices: Sequence[int],
        shards: Sequence[Buffer],
        *,
        roots: Sequence[bytes] | None = None,
    ) -> bytes:
        """The stripe (k blocks joined) from any k distinct shards."""
        return b"".join(self.decode(indices, shards, roots=roots))

    def rebuild(
        self,
        indices: Sequence[int],
        shards: Sequence[Buffer],
        wanted: Sequence[int],
        *,
        roots: Sequence[bytes] | None = None,
    ) -> list[memoryview]:
        """Any shards (data or parity), e.g. to repair lost chunks on new hosts."""
        for w in wanted:
            if not 0 <= w < self.n:
                raise ShardIndexError(f"shard index {w} is outside 0..{self.n - 1}")
        rows = self._check(indices, shards, roots)
        held = dict(zip(indices, rows, strict=True))
        use = _choose_rows(self.k, held)
        # shard w = G[w] x blocks = (G[w] x S^-1) x held shards
        m = gf.matmul(self.generator[list(wanted)], _decode_matrix(self.k, self.n, tuple(use)))
        return [view(r) for r in gf_matmul(m, [held[i] for i in use])]


def _choose_rows(k: int, held: dict[int, Matrix]) -> list[int]:
    """k held shards to decode from: data shards first (their rows are trivial)."""
    return sorted(held)[:k]


@lru_cache(maxsize=1024)
def _decode_matrix(k: int, n: int, use: tuple[int, ...]) -> Matrix:
    g = gf.cauchy_generator(k, n)
    inv = gf.mat_inv(g[list(use)])
    inv.setflags(write=False)
    return inv
