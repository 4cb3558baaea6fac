"""The host's chunk messages: store a shard, read it back, ask for a coded packet.

================  =================================  ======================================
registry name     request                            response
================  =================================  ======================================
``chunk.put``     ``ChunkPut(id, placement, data)``  ``Stored(chunk_id)``
``chunk.put_      ``ChunkPutMany(chunks)``            ``StoredMany(chunk_ids)``
many``
``chunk.get``     ``ChunkGet(chunk_id)``             ``ChunkData(data)``
``chunk.packet``  ``PacketRequest(cid, stripe)``     ``PacketReply(coefficients, payload)``
``chunk.          ``PacketsRequest(cid, stripes)``   ``PacketsReply(packets)``
packets``
``chunk.repair``  ``RepairRequest(cid, stripe,       ``PacketReply(coefficients, payload)``
                  shard, contract, index, path)``
``host.offer``    ``OfferRequest()``                 ``HostAd`` (storenode.publish.records)
``contract.       ``ContractProposal(terms, cid, k,  ``ContractAccepted(contract_id,
propose``         n, shards)``                       signature)``
``manifest.put``  ``ManifestPut(raw)``               ``ManifestStored(manifest_hash)``
``manifest.get``  ``ManifestGet(cid)``               ``ManifestData(raw)``
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
windows than it offers, a root that does not match, an ``accept_until`` that
is not after the chain's height or more than :data:`ACCEPT_HORIZON` blocks
ahead of it, or more bytes than it has free. Proposing terms the host already
signed (a resumed publish) gets the same answer again.

A :class:`ManifestPut` hands the host the signed manifest of a work it holds a
contract for (pending or open); the host checks it (``decode_manifest``,
``verify_manifest`` and that it lists the host's shards), keeps it, publishes
it in the DHT under its own key (``storenode.publish.records``) and keeps
republishing it while it holds the work. ``manifest.get`` returns the bytes
(``NOT_FOUND`` when the host keeps no manifest of that work).

A :class:`RepairRequest` is a host asking another for a packet of a stripe of
which it must rebuild its own shard ``shard`` (its disk damaged it), free of
charge whatever the work's price: ``contract`` is the id of its live contract
that lists that chunk (the manifest's chunk id of that shard) at position
``index``, and ``path`` is the chunk's Merkle path to the contract's root. The
answering host checks all of it against the chain and the manifest it keeps
(``REFUSED`` with the reason otherwise) and answers as to ``chunk.packet``.

A chunk is one Reed–Solomon shard of one stripe of a work; its id is the
Merkle root of its bytes. :class:`Placement` says where it belongs:
shard ``shard`` of stripe ``stripe`` of work ``cid``, coded with ``(k, n)``.

A :class:`PacketReply` is an RLNC packet over the stripe's k source blocks:
``len(coefficients) == k``. A host holding one shard of the stripe answers
with that shard (its generator row as the vector); one holding several
answers with a fresh random combination of them, so two replies differ.

A :class:`PacketsRequest` asks for one packet of each of several stripes of a
work (distinct stripes, at most :data:`MAX_PACKET_BATCH`): one request and one
reply where a reader fetching far ahead of its read position would send many.
The reply has a :class:`StripePacket` for each stripe asked that the host holds,
in the order asked; a stripe it does not hold is left out (an empty list if it
holds none). A batch whose packets would not fit in
:data:`MAX_PACKETS_REPLY` bytes is refused with ``BAD_REQUEST``.

Errors: ``REFUSED`` (no contract, bytes not matching the id, host full,
placement inconsistent with what the host holds, priced work without a
receipt, terms the host does not sign, a manifest that does not verify or
for a work it holds no contract of), ``NOT_FOUND`` (chunk, stripe or manifest
not held), ``BAD_REQUEST`` (a placement that cannot exist, terms that are not
a canonical ``ContractTerms``). Importing this module registers the pairs in
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
ChunkView = Annotated[memoryview, msgspec.Meta(max_length=MAX_CHUNK_SIZE)]
"""Chunk bytes a reader receives: decoded as a view into the received message, not
copied out of it (a 1 MiB stripe's three packets are 1 MiB it need not copy). A
sender may give any bytes-like object."""
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


MAX_PUT_BATCH: Final = 16
"""Most chunks in one ``chunk.put_many`` (the message also stays within the
wire's 8 MiB)."""


class ChunkPutMany(_Body, frozen=True):
    """Several ``chunk.put`` in one request, stored together or not at all: one
    request, one thread hop and one index commit for them all."""

    chunks: Annotated[list[ChunkPut], msgspec.Meta(min_length=1, max_length=MAX_PUT_BATCH)]


class StoredMany(_Body, frozen=True):
    chunk_ids: Annotated[list[Hash32], msgspec.Meta(max_length=MAX_PUT_BATCH)]


class ChunkGet(_Body, frozen=True):
    chunk_id: Hash32


class ChunkData(_Body, frozen=True):
    data: ChunkView


class PacketRequest(_Body, frozen=True):
    cid: Hash32
    stripe: U32


class PacketReply(_Body, frozen=True):
    """``payload = sum_j coefficients[j] * block_j`` over the stripe's k blocks."""

    coefficients: Coefficients
    payload: ChunkView


MAX_PACKET_BATCH: Final = 16
"""Most stripes one ``chunk.packets`` asks for."""

MAX_PACKETS_REPLY: Final = 6 * 1024 * 1024
"""Most payload bytes one ``chunk.packets`` reply carries (within the wire's 8 MiB)."""


class PacketsRequest(_Body, frozen=True):
    cid: Hash32
    stripes: Annotated[list[U32], msgspec.Meta(min_length=1, max_length=MAX_PACKET_BATCH)]


class StripePacket(_Body, frozen=True):
    """A :class:`PacketReply` for stripe ``stripe``."""

    stripe: U32
    coefficients: Coefficients
    payload: ChunkView


class PacketsReply(_Body, frozen=True):
    packets: Annotated[list[StripePacket], msgspec.Meta(max_length=MAX_PACKET_BATCH)]


MAX_PATH: Final = 32
"""Most hashes in a chunk's path to its contract's root (2**32 chunks)."""


class RepairRequest(_Body, frozen=True):
    cid: Hash32
    stripe: U32
    shard: ShardIndex
    contract: Hash32
    index: U32
    path: Annotated[list[Hash32], msgspec.Meta(max_length=MAX_PATH)]


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


ACCEPT_HORIZON: Final = 1000
"""Most blocks past the chain's height a host lets ``terms.accept_until`` be: its
signature holds space for the contract until then."""

MAX_MANIFEST_PUT: Final = 8 * 1024 * 1024 - 4096
"""Largest manifest a ``manifest.put`` carries: a wire message is at most 8 MiB."""


class ManifestPut(_Body, frozen=True):
    raw: Annotated[bytes, msgspec.Meta(min_length=1, max_length=MAX_MANIFEST_PUT)]


class ManifestStored(_Body, frozen=True):
    manifest_hash: Hash32


class ManifestGet(_Body, frozen=True):
    cid: Hash32


class ManifestData(_Body, frozen=True):
    raw: Annotated[bytes, msgspec.Meta(min_length=1, max_length=MAX_MANIFEST_PUT)]


for _name, _request, _response in (
    ("chunk.put", ChunkPut, Stored),
    ("chunk.put_many", ChunkPutMany, StoredMany),
    ("chunk.get", ChunkGet, ChunkData),
    ("chunk.packet", PacketRequest, PacketReply),
    ("chunk.packets", PacketsRequest, PacketsReply),
    ("chunk.repair", RepairRequest, PacketReply),
    ("host.offer", OfferRequest, HostAd),
    ("contract.propose", ContractProposal, ContractAccepted),
    ("manifest.put", ManifestPut, ManifestStored),
    ("manifest.get", ManifestGet, ManifestData),
):
    default_registry.register(_name, _request, _response)
