"""Typed errors of the coding core. Every one is a :class:`CodingError`.

``docs/errors.md`` lists them with the input that raises each.
"""

from __future__ import annotations


class CodingError(Exception):
    """Base of every error raised by :mod:`storenode.coding`."""


class CodingParamsError(CodingError, ValueError):
    """k and n are out of range: 1 <= k <= n <= 255 is required."""


class ShardSizeError(CodingError, ValueError):
    """Blocks, shards or packets of one stripe differ in length, or a stripe
    does not divide into k blocks."""


class BlockTypeError(CodingError, TypeError):
    """Blocks or a coefficient matrix are not bytes-like or uint8 arrays."""


class ShardIndexError(CodingError, ValueError):
    """A shard index is outside 0..n-1."""


class DuplicateShardError(CodingError, ValueError):
    """The same shard index was given twice."""


class NotEnoughShardsError(CodingError):
    """Fewer than k distinct shards (or independent packets) were given."""


class ShardCorruptError(CodingError):
    """A shard's bytes do not hash to the chunk id (Merkle root) expected for it."""

    def __init__(self, index: int, message: str | None = None) -> None:
        self.index = index
        super().__init__(message or f"shard {index} does not match its Merkle root")


class SingularMatrixError(CodingError, ValueError):
    """A set of coefficient vectors is not linearly independent."""


class PacketError(CodingError, ValueError):
    """An RLNC packet is malformed: wrong coefficient-vector length or payload size."""


class ProofError(CodingError):
    """Base of the Merkle-proof errors."""


class ProofMalformedError(ProofError, ValueError):
    """A serialized proof is truncated, too long, or has an impossible shape."""


class ProofInvalidError(ProofError):
    """A well-formed proof does not lead to the expected root (forged or wrong data)."""


class GfBackendUnavailableError(CodingError, RuntimeError):
    """The GF(2^8) backend forced by STORENODE_GF_BACKEND cannot be loaded."""
