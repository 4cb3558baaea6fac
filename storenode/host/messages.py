"""The host's chunk messages: store a shard, read it back, ask for a coded packet.

================  =================================  ======================================
registry name     request                            response
================  =================================  ======================================
``chunk.put``     ``ChunkPut(id, placement, data)``  ``Stored(chunk_id)``
``chunk.get``     ``ChunkGet(chunk_id)``             ``ChunkData(data)``
``chunk.packet``  ``PacketRequest(cid, stripe)``     ``PacketReply(coefficients, payload)``
================  =================================  ======================================

A chunk is one Reed–Solomon shard of one stripe of a work; its id is the
Merkle root of its bytes. :class:`Placement` says where it belongs:
shard ``shard`` of stripe ``stripe`` of work ``cid``, coded with ``(k, n)``.

A :class:`PacketReply` is an RLNC packet over the stripe's k source blocks:
``len(coefficients) == k``. A host holding one shard of the stripe answers
with that shard (its generator row as the vector); one holding several
answers with a fresh random combination of them, so two replies differ.

Errors: ``REFUSED`` (no contract, bytes not matching the id, host full,
placement inconsistent with what the host holds, priced work without a
receipt), ``NOT_FOUND`` (chunk or stripe not held), ``BAD_REQUEST``
(a placement that cannot exist). Importing this module registers the pairs in
:data:`storenode.wire.messages.default_registry`.
"""

from __future__ import annotations

from typing import Annotated, Final

import msgspec

from storenode.wire.messages import U32, Hash32, default_registry

MAX_CHUNK_SIZE: Final = 4 * 1024 * 1024
"""Largest chunk a host accepts or serves (4 MiB)."""

MAX_STRIPE_BLOCKS: Final = 255
"""Largest n (and so k) of a stripe's code over GF(2^8)."""

ChunkPayload = Annotated[bytes, msgspec.Meta(max_length=MAX_CHUNK_SIZE)]
BlockCount = Annotated[int, msgspec.Meta(ge=1, le=MAX_STRIPE_BLOCKS)]
ShardIndex = Annotated[int, msgspec.Meta(ge=0, le=MAX_STRIPE_BLOCKS - 1)]
Coefficients = Annotated[bytes, msgspec.Meta(min_length=1, max_length=MAX_STRIPE_BLOCKS)]


class _Body(msgspec.Struct, frozen=True, forbid_unknown_fields=True, array_like=True):
    pass


class Placement(_Body, frozen=True):
    """Where a chunk belongs: shard ``shard`` of stripe ``stripe`` of work ``cid``."""

    cid: Hash32
    stripe: U32
    shard: ShardIndex
    k: BlockCount
    n: BlockCount


class ChunkPut(_Body, frozen=True):
    chunk_id: Hash32
    placement: Placement
    data: ChunkPayload


class Stored(_Body, frozen=True):
    chunk_id: Hash32


class ChunkGet(_Body, frozen=True):
    chunk_id: Hash32


class ChunkData(_Body, frozen=True):
    data: ChunkPayload


class PacketRequest(_Body, frozen=True):
    cid: Hash32
    stripe: U32


class PacketReply(_Body, frozen=True):
    """``payload = sum_j coefficients[j] * block_j`` over the stripe's k blocks."""

    coefficients: Coefficients
    payload: ChunkPayload


for _name, _request, _response in (
    ("chunk.put", ChunkPut, Stored),
    ("chunk.get", ChunkGet, ChunkData),
    ("chunk.packet", PacketRequest, PacketReply),
):
    default_registry.register(_name, _request, _response)
