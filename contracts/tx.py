"""Transactions: their bodies, the signed envelope, and its canonical bytes.

A transaction is a :class:`Tx` (chain id, sender's public key, nonce, fee and
one body) signed by the sender: :class:`SignedTx`. Its canonical bytes are
``encode(tx)``; the signature is Ed25519 over
``signing_message(b"storenode/tx/1", encode(tx))`` and the transaction id is
``SHA-256(encode(tx))``. On the wire and in blocks a transaction travels as
``encode(SignedTx)``, which :func:`decode_tx` reads back only if it is exactly
the canonical encoding of what it decodes to.

Bodies are a tagged union: the first element of a body's array is its tag.
Byte layouts: docs/specs/ledger.md, "Transactions".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Final

import msgspec

from contracts.encoding import (
    DECODE_ERRORS,
    Address,
    Amount,
    Bps,
    ChainId,
    Record,
    decoder,
    encode,
    sha256,
)
from contracts.errors import TxMalformedError, TxOversizeError, TxSignatureInvalidError
from storenode.coding.merkle import SEGMENT_SIZE
from storenode.identity import Identity, KeyInvalidError, SignatureInvalidError, address_of, verify
from storenode.wire.messages import U32, U64, Hash32, PublicKey, Signature

TX_DOMAIN: Final = b"storenode/tx/1"
TERMS_DOMAIN: Final = b"storenode/contract-terms/1"
REVISION_DOMAIN: Final = b"storenode/contract-revision/1"

MAX_PROOF_SIZE: Final = 2 + 2 * 18 + 64 * 32
"""A ChainedProof with 64 path hashes in all (a contract of 2**32 chunks of 2**32 segments)."""
MAX_TX_SIZE: Final = 4096
"""Longest encoded SignedTx; the largest body (a proof) needs about 3.3 KiB."""

Text = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
ShortText = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Segment = Annotated[bytes, msgspec.Meta(min_length=1, max_length=SEGMENT_SIZE)]
ProofBytes = Annotated[bytes, msgspec.Meta(min_length=1, max_length=MAX_PROOF_SIZE)]
Count = Annotated[int, msgspec.Meta(ge=1, le=2**32 - 1)]

# -- tokens --------------------------------------------------------------------------


class Transfer(Record, frozen=True, tag=1):
    to: Address
    amount: Amount


class Approve(Record, frozen=True, tag=2):
    """Set (not add to) what ``spender`` may move out of the sender's account."""

    spender: Address
    amount: Amount


class TransferFrom(Record, frozen=True, tag=3):
    """Move ``amount`` from ``owner`` to ``to``; the sender spends its allowance."""

    owner: Address
    to: Address
    amount: Amount


class Burn(Record, frozen=True, tag=4):
    """Destroy ``amount`` of the sender's tokens; counts toward its reputation."""

    amount: Amount


# -- registry ------------------------------------------------------------------------


class RegisterWork(Record, frozen=True, tag=10):
    """Register a work under its fingerprint (keccak256 of its bytes); the sender owns it."""

    fingerprint: Hash32
    name: Text
    version: ShortText
    date: ShortText
    author: Text
    manifest_hash: Hash32


class TransferWork(Record, frozen=True, tag=11):
    fingerprint: Hash32
    to: Address


# -- storage contracts ---------------------------------------------------------------


class ContractTerms(Record, frozen=True):
    """What a publisher and a host agree on. The host signs ``encode(terms)``
    in :data:`TERMS_DOMAIN`; the contract id is ``SHA-256(encode(terms))``."""

    chain_id: ChainId
    publisher: PublicKey
    host: PublicKey
    root: Hash32
    """Merkle root over the chunk roots the host keeps (storenode.coding.merkle)."""
    chunk_count: Count
    chunk_size: Count
    """Every chunk of the contract is this many bytes (the verifier needs the segment count)."""
    price_per_window: Amount
    windows: Count
    window_blocks: Count
    collateral: Amount
    accept_until: U64
    """Last height at which the acceptance may open the contract."""
    salt: U64
    """Lets the same parties sign otherwise identical terms again (a new contract id)."""


class OpenContract(Record, frozen=True, tag=20):
    """Sent by the publisher: locks its escrow and the host's collateral."""

    terms: ContractTerms
    host_signature: Signature


class Revision(Record, frozen=True):
    """A new root and chunk count for a contract; both parties sign
    ``encode(revision)`` in :data:`REVISION_DOMAIN`."""

    contract_id: Hash32
    revision: U64
    root: Hash32
    chunk_count: Count


class ReviseContract(Record, frozen=True, tag=21):
    """Sent by anyone (usually the publisher); carries both parties' signatures."""

    revision: Revision
    publisher_signature: Signature
    host_signature: Signature


class SubmitProof(Record, frozen=True, tag=22):
    """Sent by the host: the challenged segment and its ChainedProof bytes."""

    contract_id: Hash32
    window: U32
    segment: Segment
    proof: ProofBytes


# -- trade ---------------------------------------------------------------------------


class Share(Record, frozen=True):
    address: Address
    bps: Bps


class SetListing(Record, frozen=True, tag=30):
    """Sent by the work's owner: a price per download split by fixed shares."""

    fingerprint: Hash32
    price: Amount
    shares: tuple[Share, ...]


class Buy(Record, frozen=True, tag=31):
    """Pay the work's price (at most ``max_price``) and get a receipt for it."""

    fingerprint: Hash32
    max_price: Amount


Body = (
    Transfer
    | Approve
    | TransferFrom
    | Burn
    | RegisterWork
    | TransferWork
    | OpenContract
    | ReviseContract
    | SubmitProof
    | SetListing
    | Buy
)


class Tx(Record, frozen=True):
    chain_id: ChainId
    sender: PublicKey
    nonce: U64
    fee: Amount
    body: Body


class SignedTx(Record, frozen=True):
    tx: Tx
    signature: Signature


@dataclass(frozen=True, slots=True)
class VerifiedTx:
    """A transaction whose signature has been checked; made only by :func:`verify_tx`."""

    tx: Tx
    sender: bytes
    """The sender's address."""
    tx_id: bytes
    raw: bytes
    """``encode(SignedTx)``: the bytes that go into a block."""


_SIGNED_DECODER: Final = decoder(SignedTx)


def tx_id(tx: Tx) -> bytes:
    return sha256(encode(tx))


def sign_tx(identity: Identity, tx: Tx) -> SignedTx:
    """``tx`` signed by ``identity`` (whose public key must be ``tx.sender``)."""
    if identity.public_key != tx.sender:
        raise ValueError("tx.sender is not this identity's public key")
    return SignedTx(tx, identity.sign(TX_DOMAIN, encode(tx)))


def encode_tx(signed: SignedTx) -> bytes:
    return encode(signed)


def decode_tx(raw: bytes | bytearray | memoryview) -> SignedTx:
    """Read one transaction; :class:`TxOversizeError` above :data:`MAX_TX_SIZE`,
    :class:`TxMalformedError` for anything that is not a canonical SignedTx."""
    data = bytes(raw)
    if len(data) > MAX_TX_SIZE:
        raise TxOversizeError(f"a transaction is at most {MAX_TX_SIZE} bytes, not {len(data)}")
    try:
        signed = _SIGNED_DECODER.decode(data)
    except DECODE_ERRORS as exc:
        raise TxMalformedError(f"not a transaction: {exc}") from None
    if encode(signed) != data:
        raise TxMalformedError("not the canonical encoding of the transaction it decodes to")
    return signed


def verify_tx(signed: SignedTx) -> VerifiedTx:
    """Check the transaction as a peer would (size and field bounds: a SignedTx
    built in Python has not been through a decoder) and the sender's signature.
    :class:`TxOversizeError`, :class:`TxMalformedError`,
    :class:`TxSignatureInvalidError`."""
    raw = encode(signed)
    if len(raw) > MAX_TX_SIZE:
        raise TxOversizeError(f"a transaction is at most {MAX_TX_SIZE} bytes, not {len(raw)}")
    try:
        _SIGNED_DECODER.decode(raw)
    except msgspec.DecodeError as exc:
        raise TxMalformedError(f"not a valid transaction: {exc}") from None
    body = encode(signed.tx)
    try:
        verify(signed.tx.sender, TX_DOMAIN, body, signed.signature)
        sender = address_of(signed.tx.sender)
    except (SignatureInvalidError, KeyInvalidError) as exc:
        raise TxSignatureInvalidError(f"transaction signature: {exc}") from None
    return VerifiedTx(signed.tx, sender, sha256(body), raw)


def sign_terms(identity: Identity, terms: ContractTerms) -> bytes:
    """The host's acceptance of ``terms``."""
    return identity.sign(TERMS_DOMAIN, encode(terms))


def sign_revision(identity: Identity, revision: Revision) -> bytes:
    """One party's signature of ``revision``."""
    return identity.sign(REVISION_DOMAIN, encode(revision))
