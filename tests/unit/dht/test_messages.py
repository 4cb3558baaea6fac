"""The DHT's message bodies: registered, round-trip through the wire registry, bounded."""

from __future__ import annotations

import msgspec
import pytest

from storenode.dht import (
    Contact,
    FindNode,
    FindValue,
    Nodes,
    Ping,
    Pong,
    Store,
    Stored,
    Values,
    sign_record,
)
from storenode.dht.messages import MESSAGES
from storenode.wire.errors import MessageInvalidError
from storenode.wire.messages import Request, Response, default_registry

from .conftest import NOW, contact_of, identity

ME = contact_of(identity(1), 4001)
RECORD = sign_record(identity(1), b"key", b"value", created=int(NOW), ttl=60)
CONTACTS = [contact_of(identity(i), 4000 + i) for i in range(2, 22)]

REQUESTS: list[msgspec.Struct] = [
    Ping(ME),
    FindNode(ME, b"\x05" * 20),
    FindValue(ME, b"chunk"),
    Store(ME, RECORD),
]
RESPONSES: list[tuple[str, msgspec.Struct]] = [
    ("dht.ping", Pong()),
    ("dht.find_node", Nodes(CONTACTS)),
    ("dht.find_value", Values([RECORD] * 64, CONTACTS)),
    ("dht.store", Stored(False, "bad-signature")),
]


def test_the_four_rpcs_are_registered() -> None:
    for name, request, _ in MESSAGES:
        assert name in default_registry
        assert default_registry.name_of(request) == name
    assert {name for name, _, _ in MESSAGES} == {
        "dht.ping",
        "dht.find_node",
        "dht.find_value",
        "dht.store",
    }


@pytest.mark.parametrize("body", REQUESTS, ids=lambda b: type(b).__name__)
def test_requests_round_trip_through_the_registry(body: msgspec.Struct) -> None:
    message = default_registry.decode(default_registry.encode_request(7, body))
    assert isinstance(message, Request)
    assert message.body == body


@pytest.mark.parametrize(("name", "body"), RESPONSES, ids=lambda x: str(x)[:20])
def test_responses_round_trip_through_the_registry(name: str, body: msgspec.Struct) -> None:
    message = default_registry.decode(default_registry.encode_response(7, body))
    assert isinstance(message, Response)
    assert default_registry.decode_response(name, message.body_raw) == body


def _request(name: str, body: object) -> bytes:
    return msgspec.msgpack.encode((0, 9, name, body))


def _contact(key: bytes = ME.key, host: str = "h", port: int = 1) -> list[object]:
    return [key, host, port]


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("dht.ping", []),
        ("dht.ping", [_contact(), "extra"]),
        ("dht.ping", [_contact(key=b"short")]),
        ("dht.ping", [_contact(port=0)]),
        ("dht.ping", [_contact(port=65536)]),
        ("dht.ping", [_contact(host="")]),
        ("dht.find_node", [_contact(), b"\x00" * 19]),
        ("dht.find_value", [_contact(), b""]),
        ("dht.find_value", [_contact(), b"k" * 65]),
        ("dht.store", [_contact(), [b"k", b"v", ME.key, 1, 60, b"s" * 63]]),
    ],
)
def test_malformed_requests_are_refused(name: str, body: object) -> None:
    with pytest.raises(MessageInvalidError):
        default_registry.decode(_request(name, body))


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("dht.find_node", Nodes(CONTACTS + CONTACTS[:1])),  # 21 contacts
        ("dht.find_value", Values([RECORD] * 65, [])),
        ("dht.find_value", Values([], CONTACTS + CONTACTS[:1])),
        ("dht.store", Stored(True, "x" * 65)),
    ],
    ids=["21-contacts", "65-records", "21-value-contacts", "long-reason"],
)
def test_oversized_responses_are_refused(name: str, body: msgspec.Struct) -> None:
    with pytest.raises(MessageInvalidError):
        default_registry.decode_response(name, msgspec.msgpack.encode(body))


def test_a_contact_is_the_array_key_host_port() -> None:
    assert msgspec.msgpack.encode(ME) == msgspec.msgpack.encode([ME.key, ME.host, ME.port])
    assert isinstance(msgspec.msgpack.decode(msgspec.msgpack.encode(ME), type=Contact), Contact)
