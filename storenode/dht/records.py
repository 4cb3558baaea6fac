"""Signed records: what STORE puts and FIND_VALUE returns.

A :class:`Record` is a value under a key, signed by its owner::

    Record = [key, value, owner, created, ttl, signature]     (msgpack array)

* ``key``: 1..64 bytes (a chunk id, a CID, ...); it lives at
  ``dht_id(key)`` in the keyspace.
* ``value``: 0..65,536 bytes.
* ``owner``: the owner's Ed25519 public key (32 bytes).
* ``created``: unix seconds, set by the owner when it (re)signs.
* ``ttl``: seconds, 1..172,800 (48 h). The record is live while
  ``now < created + ttl`` and expired from ``created + ttl`` on.
* ``signature``: the owner's Ed25519 signature, in domain
  :data:`RECORD_DOMAIN` (``b"storenode/dht/record/1"``), of the msgpack
  array ``[key, value, owner, created, ttl]`` as msgspec encodes it (bin
  strings and unsigned ints in their shortest forms, so the encoding is
  canonical: :func:`record_payload`).

Every record is *multi-valued by owner*: a node keeps at most one record per
(key, owner), so many owners may hold records under one key. A **provider
record** says "the owner holds chunk ``key`` and is reachable at ``value``":
its value is the owner's :class:`~storenode.dht.contact.Contact`
(:func:`provider_record`, :func:`parse_provider`).

:class:`RecordValidator` checks a record against a clock reading (sizes, TTL,
expiry, a ``created`` no more than :data:`MAX_CLOCK_SKEW` in the future, then
the signature). Verifying costs about 275 µs, and a record is seen again and
again (every replica, every lookup, every republish), so results are cached by
a digest of everything signed plus the signature.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Annotated

import msgspec

from storenode.dht.contact import Contact, decode_contact, encode_contact
from storenode.dht.errors import RecordInvalidError, RecordRejection
from storenode.identity import (
    PUBLIC_KEY_SIZE,
    SIGNATURE_SIZE,
    Identity,
    KeyInvalidError,
    SignatureInvalidError,
    verify,
)
from storenode.wire.messages import U64, PublicKey, Signature

RECORD_DOMAIN = b"storenode/dht/record/1"
"""The signing domain of records (its last part is the record format version)."""

MAX_KEY_SIZE = 64
MAX_VALUE_SIZE = 64 * 1024
MAX_TTL = 48 * 3600
MAX_CLOCK_SKEW = 300
"""How far (seconds) ``created`` may lie ahead of the receiver's clock."""

PROVIDER_TTL = 24 * 3600
"""The default lifetime of a provider record (republished every 12 h)."""

RECORD_OVERHEAD = PUBLIC_KEY_SIZE + SIGNATURE_SIZE + 16
"""Bytes a record costs in a store beyond its key and value."""

RecordKey = Annotated[bytes, msgspec.Meta(min_length=1, max_length=MAX_KEY_SIZE)]
RecordValue = Annotated[bytes, msgspec.Meta(max_length=MAX_VALUE_SIZE)]
Ttl = Annotated[int, msgspec.Meta(ge=1, le=MAX_TTL)]
MAX_CREATED = 2**64 - 1


class Record(msgspec.Struct, frozen=True, forbid_unknown_fields=True, array_like=True):
    """A value under ``key``, signed by ``owner`` (see the module docstring)."""

    key: RecordKey
    value: RecordValue
    owner: PublicKey
    created: U64
    ttl: Ttl
    signature: Signature

    @property
    def expires(self) -> int:
        """The first unix second at which the record is expired."""
        return self.created + self.ttl

    def is_live(self, now: float) -> bool:
        return now < self.expires

    @property
    def size(self) -> int:
        """What the record costs in a :class:`~storenode.dht.store.RecordStore`."""
        return len(self.key) + len(self.value) + RECORD_OVERHEAD

    def __repr__(self) -> str:
        return (
            f"Record(key={self.key.hex()[:16]}, owner={self.owner.hex()[:8]}, "
            f"value={len(self.value)} B, created={self.created}, ttl={self.ttl})"
        )


_payload_encoder = msgspec.msgpack.Encoder()


def record_payload(key: bytes, value: bytes, owner: bytes, created: int, ttl: int) -> bytes:
    """The bytes an owner signs: msgpack ``[key, value, owner, created, ttl]``."""
    return _payload_encoder.encode((key, value, owner, created, ttl))


def _check_bounds(key: bytes, value: bytes, owner: bytes, created: int, ttl: int) -> None:
    if not 1 <= len(key) <= MAX_KEY_SIZE:
        raise RecordInvalidError(RecordRejection.OVERSIZED, f"key of {len(key)} bytes")
    if len(value) > MAX_VALUE_SIZE:
        raise RecordInvalidError(RecordRejection.OVERSIZED, f"value of {len(value)} bytes")
    if not 1 <= ttl <= MAX_TTL:
        raise RecordInvalidError(RecordRejection.OVERSIZED, f"ttl of {ttl} s")
    if not 0 <= created <= MAX_CREATED:
        raise RecordInvalidError(RecordRejection.OVERSIZED, "created outside u64")
    if len(owner) != PUBLIC_KEY_SIZE:
        raise RecordInvalidError(RecordRejection.BAD_OWNER, f"owner of {len(owner)} bytes")


def sign_record(identity: Identity, key: bytes, value: bytes, *, created: int, ttl: int) -> Record:
    """A record of ``identity`` created at unix second ``created``; raises
    :class:`RecordInvalidError` (``OVERSIZED``) for out-of-bounds arguments."""
    owner = identity.public_key
    _check_bounds(key, value, owner, created, ttl)
    signature = identity.sign(RECORD_DOMAIN, record_payload(key, value, owner, created, ttl))
    return Record(key, value, owner, created, ttl, signature)


def provider_record(
    identity: Identity, key: bytes, contact: Contact, now: float, ttl: int = PROVIDER_TTL
) -> Record:
    """A record saying that ``identity`` (reachable at ``contact``) holds ``key``."""
    if contact.key != identity.public_key:
        raise RecordInvalidError(RecordRejection.BAD_PROVIDER, "the contact is not the owner's")
    return sign_record(identity, key, encode_contact(contact), created=int(now), ttl=ttl)


def parse_provider(record: Record) -> Contact:
    """The contact a provider record announces; raises :class:`RecordInvalidError`
    (``BAD_PROVIDER``) unless the value is a contact whose key is the owner."""
    try:
        contact = decode_contact(record.value)
    except (msgspec.DecodeError, UnicodeDecodeError) as e:  # a host that is not UTF-8
        raise RecordInvalidError(RecordRejection.BAD_PROVIDER, str(e)) from None
    if contact.key != record.owner:
        raise RecordInvalidError(RecordRejection.BAD_PROVIDER, "the contact is not the owner's")
    return contact


class RecordValidator:
    """Checks records against a clock reading, caching signature verifications.

    ``cache_size`` results (valid or not) are kept, least recently used out.
    """

    def __init__(self, *, cache_size: int = 16384, max_skew: int = MAX_CLOCK_SKEW) -> None:
        self.cache_size = cache_size
        self.max_skew = max_skew
        self._cache: OrderedDict[bytes, RecordRejection | None] = OrderedDict()
        self.verifications = 0
        """Signature verifications actually run (cache misses)."""

    def check(self, record: Record, now: float) -> None:
        """Raise :class:`RecordInvalidError` unless ``record`` is well-formed,
        live at ``now``, not from the future, and signed by its owner."""
        _check_bounds(record.key, record.value, record.owner, record.created, record.ttl)
        if record.expires <= now:
            raise RecordInvalidError(RecordRejection.EXPIRED)
        if record.created > now + self.max_skew:
            raise RecordInvalidError(RecordRejection.FUTURE, f"created {record.created}")
        self._check_signature(record)

    def _check_signature(self, record: Record) -> None:
        payload = record_payload(record.key, record.value, record.owner, record.created, record.ttl)
        digest = hashlib.sha256(record.owner + record.signature + payload).digest()
        if digest in self._cache:
            self._cache.move_to_end(digest)
            rejection = self._cache[digest]
        else:
            rejection = self._verify(record, payload)
            self._cache[digest] = rejection
            if len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        if rejection is not None:
            raise RecordInvalidError(rejection)

    def _verify(self, record: Record, payload: bytes) -> RecordRejection | None:
        self.verifications += 1
        try:
            verify(record.owner, RECORD_DOMAIN, payload, record.signature)
        except KeyInvalidError:
            return RecordRejection.BAD_OWNER
        except SignatureInvalidError:
            return RecordRejection.BAD_SIGNATURE
        return None
