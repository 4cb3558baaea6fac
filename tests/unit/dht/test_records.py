"""Signed records: signatures, tampering, expiry, clock skew, sizes, providers, and any
bytes a peer sends as one."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from mutations import mutations

from storenode.dht import (
    RECORD_DOMAIN,
    Contact,
    Record,
    RecordInvalidError,
    RecordRejection,
    RecordValidator,
    parse_provider,
    provider_record,
    sign_record,
)
from storenode.dht.contact import encode_contact
from storenode.dht.records import MAX_TTL, MAX_VALUE_SIZE, record_payload
from storenode.identity import verify

from .conftest import NOW, contact_of, identity

T = int(NOW)


def rejection(validator: RecordValidator, record: Record, now: float = NOW) -> RecordRejection:
    with pytest.raises(RecordInvalidError) as info:
        validator.check(record, now)
    return info.value.reason


def test_a_signed_record_validates() -> None:
    record = sign_record(identity(1), b"key", b"value", created=T, ttl=3600)
    RecordValidator().check(record, NOW)
    assert record.owner == identity(1).public_key
    assert record.expires == T + 3600


def test_the_signed_payload_is_the_documented_msgpack_array() -> None:
    payload = record_payload(b"k", b"", b"\x01" * 32, 1_700_000_000, 600)
    # fixarray(5), bin8 "k", bin8 "", bin8 32 bytes, uint32, uint16 (docs/specs/dht.md)
    assert payload == (
        b"\x95\xc4\x01k\xc4\x00\xc4\x20"
        + b"\x01" * 32
        + b"\xce"
        + (1_700_000_000).to_bytes(4, "big")
        + b"\xcd\x02\x58"
    )
    record = sign_record(identity(1), b"k", b"", created=T, ttl=600)
    verify(
        record.owner,
        RECORD_DOMAIN,
        record_payload(record.key, record.value, record.owner, T, 600),
        record.signature,
    )


def test_a_record_signed_by_someone_else_is_a_forgery() -> None:
    victim, forger = identity(1), identity(2)
    forged = sign_record(forger, b"key", b"evil", created=T, ttl=3600)
    claimed = msgspec.structs.replace(forged, owner=victim.public_key)
    assert rejection(RecordValidator(), claimed) is RecordRejection.BAD_SIGNATURE


@pytest.mark.parametrize(
    "change",
    [
        {"key": b"other"},
        {"value": b"valuE"},
        {"created": T + 1},
        {"ttl": 3601},
        {"signature": bytes(64)},
    ],
)
def test_any_tampered_field_breaks_the_signature(change: dict[str, object]) -> None:
    record = sign_record(identity(1), b"key", b"value", created=T, ttl=3600)
    tampered = msgspec.structs.replace(record, **change)
    assert rejection(RecordValidator(), tampered) is RecordRejection.BAD_SIGNATURE


def test_an_owner_that_is_no_ed25519_key_is_refused() -> None:
    record = sign_record(identity(1), b"key", b"value", created=T, ttl=3600)
    not_a_point = msgspec.structs.replace(record, owner=b"\x02" * 32)
    # identity.verify reports a key that is no curve point as a bad signature today.
    assert rejection(RecordValidator(), not_a_point) in (
        RecordRejection.BAD_OWNER,
        RecordRejection.BAD_SIGNATURE,
    )


def test_a_record_expires_at_created_plus_ttl() -> None:
    record = sign_record(identity(1), b"key", b"value", created=T, ttl=60)
    validator = RecordValidator()
    validator.check(record, T + 59.9)
    assert rejection(validator, record, T + 60) is RecordRejection.EXPIRED
    assert not record.is_live(T + 60)


def test_a_record_from_the_future_is_refused_beyond_the_clock_skew() -> None:
    validator = RecordValidator()
    validator.check(sign_record(identity(1), b"k", b"v", created=T + 300, ttl=60), NOW)
    ahead = sign_record(identity(1), b"k", b"v", created=T + 301, ttl=60)
    assert rejection(validator, ahead) is RecordRejection.FUTURE


def test_oversized_records_are_refused_when_signed_and_when_checked() -> None:
    ident = identity(1)
    with pytest.raises(RecordInvalidError, match="oversized"):
        sign_record(ident, b"k", bytes(MAX_VALUE_SIZE + 1), created=T, ttl=60)
    with pytest.raises(RecordInvalidError, match="oversized"):
        sign_record(ident, b"k" * 65, b"", created=T, ttl=60)
    with pytest.raises(RecordInvalidError, match="oversized"):
        sign_record(ident, b"", b"", created=T, ttl=60)
    with pytest.raises(RecordInvalidError, match="oversized"):
        sign_record(ident, b"k", b"", created=T, ttl=MAX_TTL + 1)
    record = sign_record(ident, b"k", bytes(MAX_VALUE_SIZE), created=T, ttl=60)
    big = msgspec.structs.replace(record, value=bytes(MAX_VALUE_SIZE + 1))
    assert rejection(RecordValidator(), big) is RecordRejection.OVERSIZED


def test_verification_results_are_cached_and_bound_to_every_signed_byte() -> None:
    validator = RecordValidator()
    record = sign_record(identity(1), b"key", b"value", created=T, ttl=3600)
    for _ in range(5):
        validator.check(record, NOW)
    assert validator.verifications == 1
    tampered = msgspec.structs.replace(record, value=b"other")
    for _ in range(2):
        assert rejection(validator, tampered) is RecordRejection.BAD_SIGNATURE
    assert validator.verifications == 2


def test_the_cache_is_bounded() -> None:
    validator = RecordValidator(cache_size=2)
    records = [sign_record(identity(1), b"k%d" % i, b"", created=T, ttl=60) for i in range(3)]
    for r in records:
        validator.check(r, NOW)
    validator.check(records[0], NOW)  # evicted: verified again
    assert validator.verifications == 4


def test_provider_record_round_trip() -> None:
    host = identity(5)
    me = contact_of(host, 7000)
    record = provider_record(host, b"chunk", me, NOW)
    RecordValidator().check(record, NOW)
    assert parse_provider(record) == me


def test_a_provider_record_must_announce_its_owners_own_contact() -> None:
    host, other = identity(5), identity(6)
    with pytest.raises(RecordInvalidError, match="bad-provider"):
        provider_record(host, b"chunk", contact_of(other), NOW)
    someone_else = sign_record(
        host, b"chunk", msgspec.msgpack.encode(contact_of(other)), created=T, ttl=60
    )
    with pytest.raises(RecordInvalidError, match="bad-provider"):
        parse_provider(someone_else)
    garbage = sign_record(host, b"chunk", b"\xc1", created=T, ttl=60)
    with pytest.raises(RecordInvalidError, match="bad-provider"):
        parse_provider(garbage)


def test_a_record_round_trips_through_msgpack_and_rejects_bad_shapes() -> None:
    record = sign_record(identity(1), b"key", b"value", created=T, ttl=3600)
    data = msgspec.msgpack.encode(record)
    assert msgspec.msgpack.decode(data, type=Record) == record
    bad = [
        [b"", b"v", record.owner, T, 60, record.signature],  # empty key
        [b"k", b"v", b"short", T, 60, record.signature],  # owner size
        [b"k", b"v", record.owner, T, 0, record.signature],  # ttl 0
        [b"k", b"v", record.owner, T, MAX_TTL + 1, record.signature],
        [b"k", b"v", record.owner, -1, 60, record.signature],
        [b"k", b"v", record.owner, T, 60, record.signature[:63]],
        [b"k", b"v", record.owner, T, 60, record.signature, b"extra"],
    ]
    for fields in bad:
        with pytest.raises(msgspec.ValidationError):
            msgspec.msgpack.decode(msgspec.msgpack.encode(fields), type=Record)


def test_contacts_decode_from_provider_values() -> None:
    c = Contact(identity(1).public_key, "host.example", 443)
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(c), type=Contact) == c
    assert c.node_id == identity(1).node_id


# -- whatever a peer sends ------------------------------------------------------------------

HOST = identity(5)
PROVIDED = provider_record(HOST, b"chunk", contact_of(HOST, 7000), NOW)
RAW_PROVIDED = msgspec.msgpack.encode(PROVIDED)


@settings(max_examples=300, deadline=None)
@given(value=mutations(PROVIDED.value) | st.binary(max_size=80))
@example(value=PROVIDED.value.replace(b"127.0.0.1", b"127.0.0.\xff"))  # a host not UTF-8
def test_any_provider_value_is_its_owners_contact_or_a_bad_provider(value: bytes) -> None:
    record = msgspec.structs.replace(PROVIDED, value=value)
    try:
        contact = parse_provider(record)
    except RecordInvalidError as e:
        assert e.reason is RecordRejection.BAD_PROVIDER
        return
    # The value decodes to this contact (msgpack allows more than one encoding of it).
    assert contact.key == HOST.public_key
    assert msgspec.msgpack.decode(value) == msgspec.msgpack.decode(encode_contact(contact))


@settings(max_examples=300, deadline=None)
@given(raw=mutations(RAW_PROVIDED))
def test_a_changed_record_is_refused_by_its_shape_or_its_signature(raw: bytes) -> None:
    try:
        # what the wire registry does with a record in a message body
        record = msgspec.msgpack.decode(raw, type=Record)
    except msgspec.DecodeError:  # ValidationError is one; a Record holds no str
        return
    try:
        RecordValidator().check(record, NOW)
    except RecordInvalidError:
        return
    assert record == PROVIDED  # every field is signed: only the same record passes
