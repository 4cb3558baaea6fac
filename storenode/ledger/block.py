"""Blocks: the header, the body, their canonical bytes, hash, tx root and signature.

::

    Header = [version: u8 = 1, height: u64, previous_hash: hash, time: u64,
              producer: public key, tx_root: hash, state_root: hash]
    Block  = [header: Header, transactions: [bin, …], signature: signature]

msgpack arrays in field order (msgspec Structs with ``array_like=True``), as
the contracts' records; a reader re-encodes what it decoded and refuses bytes
that differ, so a block has one byte string.

* **Block hash** = ``SHA-256(encode(header))``. The signature is not hashed;
  the transactions are committed to by ``tx_root``.
* **Signature**: Ed25519 by ``header.producer`` over
  ``signing_message(b"storenode/block/1", encode(header))``.
* **tx root** = ``root_of([leaf_hash(raw) for raw in transactions])`` (the
  RFC 6962 tree of :mod:`storenode.coding.merkle` over the transactions'
  ``encode(SignedTx)`` bytes, so signatures are committed too);
  ``SHA-256(b"")`` for a block with no transaction.
* Block 1's ``previous_hash`` is the genesis hash.

Spec: docs/specs/ledger.md, "Blocks and chain". Pure: no I/O, no clock.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Annotated, Final

import msgspec

from contracts import BlockContext
from contracts.tx import MAX_TX_SIZE
from storenode.coding.merkle import leaf_hash, root_of
from storenode.identity import (
    Identity,
    KeyInvalidError,
    SignatureInvalidError,
    address_of,
    verify,
)
from storenode.ledger.errors import BlockInvalidError
from storenode.wire.messages import U64, Hash32, PublicKey, Signature

BLOCK_DOMAIN: Final = b"storenode/block/1"
BLOCK_VERSION: Final = 1
MAX_BLOCK_SIZE: Final = 7 * 1024 * 1024
"""Longest encoded block: one fits in an 8 MiB wire message with room to spare."""
MAX_BLOCK_TXS: Final = 16_384
"""Most transactions any block may carry (a genesis sets a lower limit)."""
EMPTY_TX_ROOT: Final = hashlib.sha256(b"").digest()

RawTx = Annotated[bytes, msgspec.Meta(min_length=1, max_length=MAX_TX_SIZE)]
Version = Annotated[int, msgspec.Meta(ge=BLOCK_VERSION, le=BLOCK_VERSION)]


class Header(msgspec.Struct, array_like=True, forbid_unknown_fields=True, frozen=True):
    """What the producer signs and what the block hash covers."""

    version: Version
    height: U64
    previous_hash: Hash32
    time: U64
    """Seconds since the epoch, as the producer states it."""
    producer: PublicKey
    tx_root: Hash32
    state_root: Hash32
    """The state root after applying this block."""

    @property
    def producer_address(self) -> bytes:
        return address_of(self.producer)


class Block(msgspec.Struct, array_like=True, forbid_unknown_fields=True, frozen=True):
    """A header, its transactions (each ``encode(SignedTx)``) and the producer's signature.

    No custom types: a wire schema may carry a Block as it is."""

    header: Header
    transactions: Annotated[tuple[RawTx, ...], msgspec.Meta(max_length=MAX_BLOCK_TXS)]
    signature: Signature

    @property
    def height(self) -> int:
        return self.header.height

    @property
    def hash(self) -> bytes:
        return block_hash(self.header)

    @property
    def tx_bytes(self) -> int:
        """Sum of the transactions' sizes (what a genesis' ``max_block_bytes`` bounds)."""
        return sum(len(raw) for raw in self.transactions)


_ENCODER: Final = msgspec.msgpack.Encoder()
_BLOCK_DECODER: Final = msgspec.msgpack.Decoder(Block)


def encode_header(header: Header) -> bytes:
    return _ENCODER.encode(header)


def encode_block(block: Block) -> bytes:
    return _ENCODER.encode(block)


def decode_block(raw: bytes | bytearray | memoryview) -> Block:
    """Read one block; :class:`BlockInvalidError` (``oversize`` above
    :data:`MAX_BLOCK_SIZE`, ``malformed`` for anything that is not the canonical
    encoding of a Block within every bound)."""
    data = bytes(raw)
    if len(data) > MAX_BLOCK_SIZE:
        raise BlockInvalidError("oversize", f"a block is at most {MAX_BLOCK_SIZE} bytes")
    try:
        block = _BLOCK_DECODER.decode(data)
    except msgspec.DecodeError as exc:
        raise BlockInvalidError("malformed", f"not a block: {exc}") from None
    if encode_block(block) != data:
        raise BlockInvalidError("malformed", "not the canonical encoding of the block")
    return block


def check_bounds(block: Block) -> None:
    """Raise ``malformed`` if a Block built in Python breaks a bound that a
    decoder would have checked (a block that came off the wire already passed)."""
    decode_block(encode_block(block))


def block_hash(header: Header) -> bytes:
    return hashlib.sha256(encode_header(header)).digest()


def tx_root(transactions: Sequence[bytes]) -> bytes:
    if not transactions:
        return EMPTY_TX_ROOT
    return root_of([leaf_hash(raw) for raw in transactions])


def sign_block(identity: Identity, header: Header, transactions: Sequence[bytes]) -> Block:
    """``header`` and ``transactions`` signed by ``identity`` (the header's producer)."""
    if identity.public_key != header.producer:
        raise ValueError("header.producer is not this identity's public key")
    signature = identity.sign(BLOCK_DOMAIN, encode_header(header))
    return Block(header, tuple(transactions), signature)


def block_context(header: Header) -> BlockContext:
    """What the contracts may know about the block: from its header."""
    return BlockContext(
        height=header.height,
        time=header.time,
        producer=header.producer_address,
        previous_hash=header.previous_hash,
    )


def check_signature(block: Block) -> None:
    """Raise ``bad_signature`` unless the producer signed the header."""
    try:
        verify(block.header.producer, BLOCK_DOMAIN, encode_header(block.header), block.signature)
    except (SignatureInvalidError, KeyInvalidError) as exc:
        raise BlockInvalidError("bad_signature", f"the producer's signature: {exc}") from None
