"""Random linear network coding over the k source blocks of a stripe.

A :class:`Packet` is a coefficient vector over the k source blocks and the
payload those coefficients produce. A stored Reed–Solomon shard is a packet
whose vector is its row of the Cauchy generator (:func:`shard_packet`), so
the decoder takes any mix of stored shards, fresh random packets and
recodings.

:func:`recode` combines packets one already holds with random coefficients
and composes their vectors, so a holder of several packets never sends the
same information twice and needs no access to the source blocks.

:class:`ProgressiveDecoder` takes packets one at a time. It keeps the
coefficient vectors in reduced row-echelon form, so it knows at once whether
a packet is innovative (non-innovative ones are dropped, their payload never
touched) and what its rank is. Payload arithmetic is deferred: when the rank
reaches k, the k x k matrix of received vectors is inverted and applied to
the payloads in one kernel call (rows that are unit vectors, i.e. systematic
shards, are passed through untouched). That does the same field operations
as eliminating payloads packet by packet, in one SIMD pass instead of k^2
small ones. See docs/decisions/0002-rlnc-deferred-payload-elimination.md.
A decoder told the stripe's code (``code=``) skips all of that while every
packet is a stored shard, which is what a reader gets from hosts holding one
shard of a stripe: a shard is innovative exactly when its index is new (the
code is MDS: any k distinct shards are independent), and the blocks are the
code's own decode (its inverse cached per set of shards). The first packet
that is not a shard (a recoding) turns it into the general decoder.

Randomness comes in as an argument (a :class:`random.Random`), never from a
global source, so tests and simulations are reproducible.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from storenode.coding import gf
from storenode.coding.errors import (
    CodingParamsError,
    NotEnoughShardsError,
    PacketError,
    ShardIndexError,
    ShardSizeError,
)
from storenode.coding.gf import MUL, Matrix
from storenode.coding.kernel import Blocks, Buffer, as_rows, gf_matmul, view
from storenode.coding.rs import ReedSolomon


@dataclass(frozen=True, slots=True)
class Packet:
    """``payload = sum_j coefficients[j] * block_j`` over a stripe's k blocks."""

    coefficients: bytes
    payload: Buffer

    @property
    def k(self) -> int:
        return len(self.coefficients)


def _nonzero_vector(rng: random.Random, size: int) -> Matrix:
    while True:
        v = np.frombuffer(rng.randbytes(size), dtype=np.uint8)
        if v.any():
            return v


def random_packet(blocks: Blocks, rng: random.Random) -> Packet:
    """A fresh random combination of the k source blocks."""
    rows = as_rows(blocks)
    if not rows:
        raise PacketError("a stripe has at least one block")
    c = _nonzero_vector(rng, len(rows))
    return Packet(c.tobytes(), view(gf_matmul(c[None, :], rows)[0]))


def shard_packet(code: ReedSolomon, index: int, shard: Buffer) -> Packet:
    """Stored shard ``index`` of ``code`` seen as a packet (vector = generator row)."""
    if not 0 <= index < code.n:
        raise ShardIndexError(f"shard index {index} is outside 0..{code.n - 1}")
    return Packet(code.generator[index].tobytes(), shard)


def recode(packets: Sequence[Packet], rng: random.Random) -> Packet:
    """A random combination of packets one holds, with the vectors composed."""
    if not packets:
        raise PacketError("recoding needs at least one packet")
    k = packets[0].k
    for p in packets:
        if p.k != k:
            raise PacketError(f"packets over {p.k} and {k} blocks cannot be combined")
    try:
        payloads = as_rows([p.payload for p in packets])
    except ShardSizeError as e:
        raise PacketError(f"packets to recode differ in payload length: {e}") from None
    if len(packets) == 1:
        c = _nonzero_vector(rng, 1)
    else:
        c = np.frombuffer(rng.randbytes(len(packets)), dtype=np.uint8)
        while not c.any():
            c = np.frombuffer(rng.randbytes(len(packets)), dtype=np.uint8)
    vectors = np.frombuffer(b"".join(p.coefficients for p in packets), dtype=np.uint8).reshape(
        len(packets), k
    )
    coefficients = gf.vecmat(c, vectors)
    return Packet(coefficients.tobytes(), view(gf_matmul(c[None, :], payloads)[0]))


class ProgressiveDecoder:
    """Collects packets of one stripe until their vectors span all k blocks."""

    __slots__ = (
        "_block_size",
        "_code",
        "_is_pivot",
        "_payloads",
        "_received",
        "_rref",
        "_shards",
        "_vectors",
        "k",
    )

    def __init__(
        self, k: int, *, block_size: int | None = None, code: ReedSolomon | None = None
    ) -> None:
        if not 1 <= k <= 255:
            raise CodingParamsError(f"a stripe has 1..255 blocks, not k={k}")
        if code is not None and code.k != k:
            raise CodingParamsError(f"a decoder of k={k} blocks given a code of k={code.k}")
        self.k = k
        self._block_size = block_size
        self._code = code
        # shard index -> payload while every packet taken is one of the code's shards
        self._shards: dict[int, Buffer] | None = {} if code is not None else None
        self._rref = np.zeros((k, k), dtype=np.uint8)  # row p holds the pivot-p row
        self._is_pivot = np.zeros(k, dtype=bool)
        self._vectors: list[bytes] = []
        self._payloads: list[Buffer] = []
        self._received = 0

    @property
    def rank(self) -> int:
        return len(self._vectors)

    @property
    def complete(self) -> bool:
        return len(self._vectors) == self.k

    @property
    def received(self) -> int:
        """Packets offered so far, innovative or not."""
        return self._received

    def add(self, packet: Packet) -> bool:
        """Take one packet; True if it raised the rank (was innovative).

        The payload is kept by reference: do not modify its buffer afterwards.
        """
        if packet.k != self.k:
            raise PacketError(f"packet has {packet.k} coefficients, the stripe has k={self.k}")
        size = view(packet.payload).nbytes
        if self._block_size is None:
            self._block_size = size
        elif size != self._block_size:
            raise PacketError(f"payload of {size} bytes, blocks here are {self._block_size}")
        self._received += 1
        if self.complete:
            return False
        if self._shards is not None:
            assert self._code is not None
            index = shard_rows(self._code.k, self._code.n).get(packet.coefficients)
            if index is not None:
                if index in self._shards:
                    return False
                self._shards[index] = packet.payload
                self._vectors.append(packet.coefficients)
                self._payloads.append(packet.payload)
                return True
            # a recoding: from now on the general elimination, over what came so far
            vectors, self._vectors = self._vectors, []
            self._shards = None
            for vector in vectors:
                self._reduce(vector)
        return self._reduce(packet.coefficients, packet.payload)

    def _reduce(self, coefficients: bytes, payload: Buffer | None = None) -> bool:
        """Eliminate one vector into the echelon form; True if it raised the rank.
        ``payload`` None: a vector taken earlier, whose payload is already kept."""
        v = np.frombuffer(coefficients, dtype=np.uint8).copy()
        piv = self._is_pivot
        if piv.any():
            # Pivot rows are zero on every other pivot column, so one combination
            # clears all pivot columns of v at once.
            v ^= gf.vecmat(v[piv], self._rref[piv])
        nz = np.flatnonzero(v)
        if nz.size == 0:
            return False
        p = int(nz[0])
        v = MUL[gf.INV[v[p]]][v]
        # Clear column p from the other pivot rows to stay fully reduced.
        factors = self._rref[:, p].copy()
        factors[~piv] = 0
        if factors.any():
            self._rref ^= MUL[factors[:, None], v[None, :]]
        self._rref[p] = v
        piv[p] = True
        self._vectors.append(coefficients)
        if payload is not None:
            self._payloads.append(payload)
        return True

    def blocks(self) -> list[memoryview]:
        """The k source blocks; raises :class:`NotEnoughShardsError` before rank k."""
        if not self.complete:
            raise NotEnoughShardsError(f"rank {self.rank} of k={self.k}: more packets needed")
        if self._shards is not None:
            assert self._code is not None
            indices = sorted(self._shards)
            return self._code.decode(indices, [self._shards[i] for i in indices])
        a = np.frombuffer(b"".join(self._vectors), dtype=np.uint8).reshape(self.k, self.k)
        inv = gf.mat_inv(a)
        payloads = as_rows(self._payloads)
        out: list[memoryview | None] = [None] * self.k
        compute = []
        for i in range(self.k):
            nz = np.flatnonzero(inv[i])
            if nz.size == 1 and inv[i, nz[0]] == 1:
                out[i] = view(payloads[int(nz[0])])  # a systematic shard: pass through
            else:
                compute.append(i)
        if compute:
            rows = gf_matmul(inv[compute], payloads)
            for i, row in zip(compute, rows, strict=True):
                out[i] = view(row)
        return [b for b in out if b is not None]

    def stripe(self) -> bytes:
        """The k blocks joined."""
        return b"".join(self.blocks())


@lru_cache(maxsize=64)
def shard_rows(k: int, n: int) -> dict[bytes, int]:
    """The generator row of each shard of the (k, n) code -> its index: how a packet
    shows which stored shard it is (one dict per code, shared: read only)."""
    generator = ReedSolomon(k, n).generator
    return {generator[i].tobytes(): i for i in range(n)}
