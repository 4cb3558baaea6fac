"""Merkle trees over 1 KiB segments, and over chunk roots.

Hashes are SHA-256 with RFC 6962 domain separation::

    leaf = H(0x00 || segment)        node = H(0x01 || left || right)

so no leaf can pose as an inner node. The tree over n leaves is RFC 6962's
(split at the largest power of two below n), which is the same as pairing
level by level and carrying an odd last node up unchanged.

A **chunk id** is the root of the tree over the chunk's segments (the last one
may be short). A root does not commit to the number of leaves, so verifiers
take the position they asked for (index and leaf count) as arguments and
reject a proof made for any other position. A **contract root** is the root
of the tree whose leaves are chunk roots taken as they are (each is already
a node hash), so a segment's path inside its chunk followed by the chunk's
path inside the contract leads from the segment to the contract root: one
chained proof.

Proof bytes (version 1), all integers big endian::

    u8 version=1 | u64 index | u64 leaf_count | u8 depth | depth x 32-byte hashes
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from storenode.coding.errors import ProofInvalidError, ProofMalformedError

SEGMENT_SIZE = 1024
HASH_SIZE = 32
PROOF_VERSION = 1
_HEAD = struct.Struct(">BQQB")

_LEAF = hashlib.sha256(b"\x00")
_NODE = hashlib.sha256(b"\x01")


def leaf_hash(segment: bytes | memoryview) -> bytes:
    h = _LEAF.copy()
    h.update(segment)
    return h.digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    h = _NODE.copy()
    h.update(left)
    h.update(right)
    return h.digest()


def segment_count(size: int) -> int:
    """Segments in a chunk of ``size`` bytes (an empty chunk has one empty segment)."""
    return max(1, -(-size // SEGMENT_SIZE))


def segment(data: bytes | memoryview, index: int) -> memoryview:
    """Segment ``index`` of ``data``."""
    return memoryview(data)[index * SEGMENT_SIZE : (index + 1) * SEGMENT_SIZE]


def leaf_hashes(data: bytes | bytearray | memoryview) -> list[bytes]:
    mv = memoryview(data).cast("B")
    size = mv.nbytes
    if size == 0:
        return [leaf_hash(b"")]
    base = _LEAF
    out: list[bytes] = []
    append = out.append
    for off in range(0, size, SEGMENT_SIZE):
        h = base.copy()
        h.update(mv[off : off + SEGMENT_SIZE])
        append(h.digest())
    return out


def _next_level(level: Sequence[bytes]) -> list[bytes]:
    base = _NODE
    nxt = []
    for i in range(0, len(level) - 1, 2):
        h = base.copy()
        h.update(level[i])
        h.update(level[i + 1])
        nxt.append(h.digest())
    if len(level) % 2:
        nxt.append(level[-1])
    return nxt


def root_of(nodes: Sequence[bytes]) -> bytes:
    """The root over a non-empty list of leaf (or subtree) hashes."""
    if not nodes:
        raise ValueError("a Merkle tree needs at least one leaf")
    level = list(nodes)
    while len(level) > 1:
        level = _next_level(level)
    return level[0]


def merkle_root(data: bytes | bytearray | memoryview) -> bytes:
    """The chunk id of ``data``: the root over its 1 KiB segments."""
    return root_of(leaf_hashes(data))


def contract_root(chunk_roots: Sequence[bytes]) -> bytes:
    """The root over many chunk roots (in contract order)."""
    return root_of(chunk_roots)


@dataclass(frozen=True, slots=True)
class Proof:
    """An inclusion proof of the leaf ``index`` in a tree of ``leaf_count`` leaves."""

    index: int
    leaf_count: int
    path: tuple[bytes, ...]

    def to_bytes(self) -> bytes:
        return _HEAD.pack(PROOF_VERSION, self.index, self.leaf_count, len(self.path)) + b"".join(
            self.path
        )

    @classmethod
    def from_bytes(cls, raw: bytes | memoryview) -> Proof:
        raw = bytes(raw)
        if len(raw) < _HEAD.size:
            raise ProofMalformedError(f"proof of {len(raw)} bytes is shorter than its header")
        version, index, count, depth = _HEAD.unpack_from(raw)
        if version != PROOF_VERSION:
            raise ProofMalformedError(f"unknown proof version {version}")
        if len(raw) != _HEAD.size + depth * HASH_SIZE:
            raise ProofMalformedError(
                f"proof declares {depth} hashes but carries {len(raw) - _HEAD.size} bytes"
            )
        body = raw[_HEAD.size :]
        path = tuple(body[i * HASH_SIZE : (i + 1) * HASH_SIZE] for i in range(depth))
        proof = cls(index, count, path)
        proof.check_shape()
        return proof

    def check_shape(self) -> None:
        """Raise :class:`ProofMalformedError` if no tree of this size has this path length."""
        if self.leaf_count < 1 or not 0 <= self.index < self.leaf_count:
            raise ProofMalformedError(f"index {self.index} outside a tree of {self.leaf_count}")
        if len(self.path) != path_length(self.index, self.leaf_count):
            raise ProofMalformedError(
                f"a proof of leaf {self.index} of {self.leaf_count} has "
                f"{path_length(self.index, self.leaf_count)} hashes, not {len(self.path)}"
            )
        for h in self.path:
            if len(h) != HASH_SIZE:
                raise ProofMalformedError("a proof hash is not 32 bytes")


def path_length(index: int, count: int) -> int:
    """How many sibling hashes the path of leaf ``index`` in ``count`` leaves has."""
    n = 0
    while count > 1:
        if index ^ 1 < count:
            n += 1
        index >>= 1
        count = (count + 1) >> 1
    return n


class MerkleTree:
    """All levels of a tree, kept so that any leaf's proof can be produced."""

    __slots__ = ("levels",)

    def __init__(self, leaves: Sequence[bytes]) -> None:
        if not leaves:
            raise ValueError("a Merkle tree needs at least one leaf")
        levels = [list(leaves)]
        while len(levels[-1]) > 1:
            levels.append(_next_level(levels[-1]))
        self.levels = levels

    @classmethod
    def of_chunk(cls, data: bytes | bytearray | memoryview) -> MerkleTree:
        return cls(leaf_hashes(data))

    @property
    def root(self) -> bytes:
        return self.levels[-1][0]

    @property
    def leaf_count(self) -> int:
        return len(self.levels[0])

    def proof(self, index: int) -> Proof:
        if not 0 <= index < self.leaf_count:
            raise IndexError(f"leaf {index} outside a tree of {self.leaf_count}")
        path = []
        i = index
        for level in self.levels[:-1]:
            sib = i ^ 1
            if sib < len(level):
                path.append(level[sib])
            i >>= 1
        return Proof(index, self.leaf_count, tuple(path))


def root_from_path(node: bytes, proof: Proof) -> bytes:
    """Fold a proof's path over a leaf (or subtree) hash; the implied root."""
    proof.check_shape()
    i, count = proof.index, proof.leaf_count
    it = iter(proof.path)
    while count > 1:
        if i ^ 1 < count:
            sib = next(it)
            node = node_hash(sib, node) if i & 1 else node_hash(node, sib)
        i >>= 1
        count = (count + 1) >> 1
    return node


def _expect(proof: Proof, index: int, leaf_count: int, what: str) -> None:
    proof.check_shape()
    # A root does not commit to its leaf count, and a path for leaf i of n can
    # also fold to the root as "leaf j of m". So the position is never taken
    # from the proof: the verifier states what it asked for.
    if (proof.index, proof.leaf_count) != (index, leaf_count):
        raise ProofInvalidError(
            f"the proof is for {what} {proof.index} of {proof.leaf_count}, "
            f"but {what} {index} of {leaf_count} was asked for"
        )


def verify_segment(
    root: bytes,
    segment_bytes: bytes | memoryview,
    proof: Proof,
    *,
    index: int,
    leaf_count: int,
) -> None:
    """Check that ``segment_bytes`` is segment ``index`` of the ``leaf_count``
    segments of the chunk ``root``.

    ``index`` and ``leaf_count`` come from the verifier (the challenge and the
    chunk's size), never from the proof. Raises :class:`ProofMalformedError`
    for an impossible proof and :class:`ProofInvalidError` when it is for
    another position or does not lead to ``root``.
    """
    if len(segment_bytes) > SEGMENT_SIZE:
        raise ProofMalformedError(f"a segment is at most {SEGMENT_SIZE} bytes")
    _expect(proof, index, leaf_count, "segment")
    if root_from_path(leaf_hash(segment_bytes), proof) != root:
        raise ProofInvalidError(f"segment {proof.index} does not lead to the expected root")


@dataclass(frozen=True, slots=True)
class ChainedProof:
    """segment -> chunk root -> contract root."""

    segment: Proof
    chunk: Proof

    def to_bytes(self) -> bytes:
        a, b = self.segment.to_bytes(), self.chunk.to_bytes()
        return struct.pack(">H", len(a)) + a + b

    @classmethod
    def from_bytes(cls, raw: bytes | memoryview) -> ChainedProof:
        raw = bytes(raw)
        if len(raw) < 2:
            raise ProofMalformedError("chained proof is truncated")
        (n,) = struct.unpack_from(">H", raw)
        if len(raw) < 2 + n:
            raise ProofMalformedError("chained proof is truncated")
        return cls(Proof.from_bytes(raw[2 : 2 + n]), Proof.from_bytes(raw[2 + n :]))


def prove_chained(
    chunk_tree: MerkleTree, contract_tree: MerkleTree, chunk_index: int, segment_index: int
) -> ChainedProof:
    """The proof of one segment of one chunk against the contract root."""
    if contract_tree.levels[0][chunk_index] != chunk_tree.root:
        raise ValueError("that chunk tree is not leaf chunk_index of the contract tree")
    return ChainedProof(chunk_tree.proof(segment_index), contract_tree.proof(chunk_index))


def verify_chained(
    contract: bytes,
    segment_bytes: bytes | memoryview,
    proof: ChainedProof,
    *,
    chunk_index: int,
    chunk_count: int,
    segment_index: int,
    segment_count: int,
) -> None:
    """Check that ``segment_bytes`` is segment ``segment_index`` (of
    ``segment_count``) of chunk ``chunk_index`` (of ``chunk_count``) under the
    contract root, through that chunk's root.

    The four positions come from the verifier (the challenge and the contract's
    terms), never from the proof; see :func:`verify_segment`.
    """
    if len(segment_bytes) > SEGMENT_SIZE:
        raise ProofMalformedError(f"a segment is at most {SEGMENT_SIZE} bytes")
    _expect(proof.chunk, chunk_index, chunk_count, "chunk")
    _expect(proof.segment, segment_index, segment_count, "segment")
    chunk_root = root_from_path(leaf_hash(segment_bytes), proof.segment)
    if root_from_path(chunk_root, proof.chunk) != contract:
        raise ProofInvalidError(
            f"segment {proof.segment.index} of chunk {proof.chunk.index} "
            "does not lead to the contract root"
        )
