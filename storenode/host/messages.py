"""The host's chunk messages: store a shard, read it back, ask for a coded packet.

================  =================================  ======================================
registry name     request                            response
================  =================================  ======================================
``chunk.put``     ``ChunkPut(id, placement, data)``  ``Stored(chunk_id)``
``chunk.get``     ``ChunkGet(chunk_id)``             ``ChunkData(data)``
``chunk.packet``  ``PacketRequest(cid, stripe)``     ``PacketReply(coefficients, payload)``
``host.offer``    ``OfferRequest()``                 ``HostAd`` (storenode.publish.records)
``contract.       ``ContractProposal(terms, cid, k,  ``ContractAccepted(contract_id,
propose``         n, shards)``                       signature)``
================  =================================  ======================================

A :class:`ContractProposal` asks the host to sign the terms (``terms`` is the
canonical encoding of a ``contracts.tx.ContractTerms``; the host signs it in
``contracts.tx.TERMS_DOMAIN``) for the listed shards of one work. The
contract's chunks are ``shards`` in that order: ``terms.root`` must be
``contract_root([s.chunk_id for s in shards])``, ``terms.chunk_count`` their
number and ``terms.chunk_size`` every shard's size. Once it has signed, the
host accepts ``chunk.put`` for those shards (the contract is "signed-pending"
until the publisher's ``OpenContract`` is in a block, and forgotten if it is
not by ``terms.accept_until``). A host refuses (``REFUSED``, with the reason)
terms for another host or chain, a price below its own, more collateral or
windows than it offers, a root that does not match, or more bytes than it has
free.

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

from storenode.publish.records import HostAd
from storenode.wire.messages import U32, Hash32, Signature, default_registry

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


class OfferRequest(_Body, frozen=True):
    pass


class ShardRef(_Body, frozen=True):
    """One chunk of a contract: shard ``shard`` of stripe ``stripe``, with its id."""

    stripe: U32
    shard: ShardIndex
    chunk_id: Hash32


MAX_CONTRACT_CHUNKS: Final = 1 << 20


MAX_TERMS_SIZE: Final = 1024


class ContractProposal(_Body, frozen=True):
    terms: Annotated[bytes, msgspec.Meta(max_length=MAX_TERMS_SIZE)]
    cid: Hash32
    k: BlockCount
    n: BlockCount
    shards: Annotated[
        tuple[ShardRef, ...], msgspec.Meta(min_length=1, max_length=MAX_CONTRACT_CHUNKS)
    ]


class ContractAccepted(_Body, frozen=True):
    contract_id: Hash32
    signature: Signature


for _name, _request, _response in (
    ("chunk.put", ChunkPut, Stored),
    ("chunk.get", ChunkGet, ChunkData),
    ("chunk.packet", PacketRequest, PacketReply),
    ("host.offer", OfferRequest, HostAd),
    ("contract.propose", ContractProposal, ContractAccepted),
):
    default_registry.register(_name, _request, _response)
