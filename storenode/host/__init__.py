"""The host's side: accept shards under a contract, serve them and RLNC recodings.

Importing this package registers ``chunk.put``, ``chunk.get`` and
``chunk.packet`` in the default wire registry (:mod:`storenode.host.messages`).
"""

from storenode.host.chunks import AllowAll, ChunkService, ReadPolicy, ShardIndex, UploadPolicy
from storenode.host.messages import (
    MAX_CHUNK_SIZE,
    ChunkData,
    ChunkGet,
    ChunkPut,
    PacketReply,
    PacketRequest,
    Placement,
    Stored,
)

__all__ = [
    "MAX_CHUNK_SIZE",
    "AllowAll",
    "ChunkData",
    "ChunkGet",
    "ChunkPut",
    "ChunkService",
    "PacketReply",
    "PacketRequest",
    "Placement",
    "ReadPolicy",
    "ShardIndex",
    "Stored",
    "UploadPolicy",
]
