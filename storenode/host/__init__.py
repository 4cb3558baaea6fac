"""The host's side: sign storage contracts, keep and serve their shards, prove them.

* :mod:`~storenode.host.messages`: the wire messages (``chunk.*``,
  ``host.offer``, ``contract.propose``, ``manifest.*``); importing this
  package registers them in the default wire registry;
* :mod:`~storenode.host.chunks`: the chunk service (uploads under a policy,
  reads, RLNC recodings) and its shard index;
* :mod:`~storenode.host.book`: the contract book on LevelDB and how it
  follows the chain;
* :mod:`~storenode.host.policy`: what the host signs, stores and serves;
* :mod:`~storenode.host.prover`: answering every window's challenge;
* :mod:`~storenode.host.earnings`: what the contracts earned and burned;
* :mod:`~storenode.host.daemon`: ``HostNode``, all of it on one node
  (built by :func:`storenode.node.open_host_node`), with its parts:
  :mod:`~storenode.host.announcing` (the ad and records in the DHT),
  :mod:`~storenode.host.handlers` (contract and manifest requests) and
  :mod:`~storenode.host.following` (what it does after each block).

Only the messages and the chunk service are imported here: a publisher or a
client that speaks to hosts needs no more.
"""

from storenode.host.chunks import AllowAll, ChunkService, ReadPolicy, ShardIndex, UploadPolicy
from storenode.host.messages import (
    ACCEPT_HORIZON,
    MAX_CHUNK_SIZE,
    MAX_PACKET_BATCH,
    MAX_PACKETS_REPLY,
    ChunkData,
    ChunkGet,
    ChunkPut,
    ChunkPutMany,
    ContractAccepted,
    ContractProposal,
    ManifestData,
    ManifestGet,
    ManifestPut,
    ManifestStored,
    OfferRequest,
    PacketReply,
    PacketRequest,
    PacketsReply,
    PacketsRequest,
    Placement,
    RepairRequest,
    ShardRef,
    Stored,
    StoredMany,
    StripePacket,
)

__all__ = [
    "ACCEPT_HORIZON",
    "MAX_CHUNK_SIZE",
    "MAX_PACKETS_REPLY",
    "MAX_PACKET_BATCH",
    "AllowAll",
    "ChunkData",
    "ChunkGet",
    "ChunkPut",
    "ChunkPutMany",
    "ChunkService",
    "ContractAccepted",
    "ContractProposal",
    "ManifestData",
    "ManifestGet",
    "ManifestPut",
    "ManifestStored",
    "OfferRequest",
    "PacketReply",
    "PacketRequest",
    "PacketsReply",
    "PacketsRequest",
    "Placement",
    "ReadPolicy",
    "RepairRequest",
    "ShardIndex",
    "ShardRef",
    "Stored",
    "StoredMany",
    "StripePacket",
    "UploadPolicy",
]
