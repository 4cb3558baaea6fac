"""Turning what hosts sent into a stripe, and checking it (pure, synchronous).

The fetch shell runs these in a worker thread: each touches a whole stripe
(a Merkle root, a stripe hash, a matrix product), a millisecond or more per MiB.

* :func:`decode_packets` — the stripe from a complete progressive decoder,
  if it hashes to the manifest's stripe hash.
* :func:`rebuild_from_shards` — the stripe from k verified shards.
* :func:`inconsistent_senders` — given the true stripe, the hosts whose
  packets are not the combination their coefficients claim.
* :func:`shard_is_valid` — a shard against its chunk id.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from storenode.coding.kernel import Buffer, as_rows, gf_matmul, view
from storenode.coding.merkle import merkle_root
from storenode.coding.rlnc import Packet, ProgressiveDecoder
from storenode.coding.rs import ReedSolomon
from storenode.publish.stripes import stripe_hasher


def _joined_if(blocks: Sequence[memoryview], digest: bytes) -> bytes | None:
    h = stripe_hasher()
    for block in blocks:
        h.update(block)
    return b"".join(blocks) if h.digest() == digest else None


def decode_packets(decoder: ProgressiveDecoder, digest: bytes) -> bytes | None:
    """The stripe the decoder's k packets give, or None if it does not hash to ``digest``
    (the manifest's stripe hash)."""
    return _joined_if(decoder.blocks(), digest)


def rebuild_from_shards(
    code: ReedSolomon, shards: Mapping[int, Buffer], digest: bytes
) -> tuple[bytes, list[memoryview]] | None:
    """The stripe, and its k blocks, from k or more verified shards (by shard index);
    None if it does not hash to ``digest`` (the manifest contradicts its chunk ids)."""
    use = sorted(shards)[: code.k]
    blocks = code.decode(use, [shards[i] for i in use])
    data = _joined_if(blocks, digest)
    return None if data is None else (data, blocks)


def inconsistent_senders(
    blocks: Sequence[Buffer], packets: Sequence[tuple[bytes, Packet]]
) -> set[bytes]:
    """The senders of the packets whose payload is not their coefficients applied to
    the true ``blocks``."""
    if not packets:
        return set()
    k = len(blocks)
    coefficients = np.frombuffer(
        b"".join(p.coefficients for _, p in packets), dtype=np.uint8
    ).reshape(len(packets), k)
    expected = gf_matmul(coefficients, as_rows(blocks))
    return {
        sender
        for (sender, packet), row in zip(packets, expected, strict=True)
        if not np.array_equal(np.frombuffer(view(packet.payload), dtype=np.uint8), row)
    }


def shard_is_valid(data: Buffer, chunk_id: bytes) -> bool:
    return merkle_root(view(data)) == chunk_id
