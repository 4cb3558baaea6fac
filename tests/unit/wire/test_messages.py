"""The message layer: envelope, registry, validation, error codes, adversarial input."""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Annotated, Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mutations import mutations

from storenode import dht
from storenode.host import messages as host
from storenode.ledger import messages as ledger
from storenode.publish.records import HostAd
from storenode.wire.errors import (
    MessageInvalidError,
    MessageMalformedError,
    MessageNameUnknownError,
    MessageTypeUnknownError,
    WireError,
)
from storenode.wire.messages import (
    MAX_ERROR_MESSAGE,
    MAX_REQUEST_ID,
    U32,
    U64,
    ErrorCode,
    ErrorReply,
    Hash32,
    Host,
    Kind,
    NodeId,
    Notify,
    Port,
    PublicKey,
    Registry,
    Request,
    Response,
    Signature,
    default_registry,
)

# --- message types of a pretend subsystem ---------------------------------------------------


class Ping(msgspec.Struct, array_like=True, forbid_unknown_fields=True, frozen=True):
    sender: PublicKey
    nonce: U64


class Pong(msgspec.Struct, array_like=True, forbid_unknown_fields=True, frozen=True):
    nonce: U64


class Contact(msgspec.Struct, array_like=True, forbid_unknown_fields=True, frozen=True):
    key: PublicKey
    host: Host
    port: Port


class FindNode(msgspec.Struct, array_like=True, forbid_unknown_fields=True, frozen=True):
    target: NodeId
    limit: Annotated[int, msgspec.Meta(ge=1, le=20)]


class Found(msgspec.Struct, array_like=True, forbid_unknown_fields=True, frozen=True):
    contacts: Annotated[list[Contact], msgspec.Meta(max_length=20)]


class Announce(msgspec.Struct, array_like=True, forbid_unknown_fields=True, frozen=True):
    root: Hash32
    signature: Signature
    height: U32


def make_registry() -> Registry:
    registry = Registry()
    registry.register("test.ping", Ping, Pong)
    registry.register("test.find_node", FindNode, Found)
    registry.register("test.announce", Announce, None)
    return registry


@pytest.fixture
def registry() -> Registry:
    return make_registry()


KEY = bytes(range(32))
PING = Ping(KEY, 7)
FOUND = Found([Contact(KEY, "node-1.localhost", 4000), Contact(KEY, "127.0.0.2", 65535)])
ANNOUNCE = Announce(b"\x01" * 32, b"\x02" * 64, 12)


def envelope(*elements: Any) -> bytes:
    """Hand-built message bytes, for the shapes our encoder never produces."""
    return msgspec.msgpack.encode(list(elements))


# --- round trips ----------------------------------------------------------------------------


def test_request_round_trips_with_its_body_validated_into_the_registered_struct(
    registry: Registry,
) -> None:
    message = registry.decode(registry.encode_request(5, PING))
    assert message == Request(5, "test.ping", PING)
    assert type(message.body) is Ping


def test_notify_round_trips_with_no_id(registry: Registry) -> None:
    data = registry.encode_notify(ANNOUNCE)
    assert msgspec.msgpack.decode(data)[:2] == [Kind.NOTIFY, "test.announce"]
    assert registry.decode(data) == Notify("test.announce", ANNOUNCE)


def test_response_carries_no_name_and_is_validated_by_decode_response(
    registry: Registry,
) -> None:
    data = registry.encode_response(9, FOUND)
    assert len(msgspec.msgpack.decode(data)) == 3  # [1, id, body]
    message = registry.decode(data)
    assert isinstance(message, Response)
    assert message.id == 9
    assert registry.decode_response("test.find_node", message.body_raw) == FOUND


def test_error_reply_round_trips_its_code_and_message(registry: Registry) -> None:
    message = registry.decode(registry.encode_error(3, ErrorCode.NOT_FOUND, "no such chunk"))
    assert message == ErrorReply(3, ErrorCode.NOT_FOUND, "no such chunk")


def test_envelope_bytes_match_the_spec(registry: Registry) -> None:
    pong = Pong(1)
    assert registry.encode_request(1, Ping(b"\x00" * 32, 2)) == (
        b"\x94\x00\x01\xa9test.ping\x92\xc4\x20" + b"\x00" * 32 + b"\x02"
    )
    assert registry.encode_response(1, pong) == b"\x93\x01\x01\x91\x01"
    assert registry.encode_error(1, ErrorCode.BUSY, "later") == b"\x94\x02\x01\x05\xa5later"
    assert registry.encode_notify(ANNOUNCE)[:16] == b"\x93\x03\xadtest.announce"


@pytest.mark.parametrize("request_id", [0, 1, 127, 128, 2**16, MAX_REQUEST_ID])
def test_request_ids_round_trip_over_the_whole_32_bit_range(
    registry: Registry, request_id: int
) -> None:
    request = registry.decode(registry.encode_request(request_id, PING))
    response = registry.decode(registry.encode_response(request_id, Pong(1)))
    error = registry.decode(registry.encode_error(request_id, ErrorCode.BUSY, ""))
    assert isinstance(request, Request)
    assert isinstance(response, Response)
    assert isinstance(error, ErrorReply)
    assert request.id == response.id == error.id == request_id


@pytest.mark.parametrize("request_id", [-1, MAX_REQUEST_ID + 1, 2**64])
def test_request_id_outside_32_bits_is_refused_when_encoding(
    registry: Registry, request_id: int
) -> None:
    with pytest.raises(ValueError):
        registry.encode_request(request_id, PING)
    with pytest.raises(ValueError):
        registry.encode_response(request_id, Pong(1))
    with pytest.raises(ValueError):
        registry.encode_error(request_id, ErrorCode.BUSY, "")


def test_request_id_beyond_32_bits_is_refused_when_decoding_with_nothing_to_answer(
    registry: Registry,
) -> None:
    with pytest.raises(MessageInvalidError) as e:
        registry.decode(envelope(0, MAX_REQUEST_ID + 1, "test.ping", [KEY, 7]))
    assert e.value.request_id is None


def test_decode_accepts_any_buffer_and_a_response_survives_the_buffer_being_reused(
    registry: Registry,
) -> None:
    buffer = bytearray(registry.encode_response(4, Pong(99)))
    message = registry.decode(memoryview(buffer))
    buffer[:] = b"\x00" * len(buffer)
    assert isinstance(message, Response)
    assert registry.decode_response("test.ping", message.body_raw) == Pong(99)
    assert registry.decode(bytearray(registry.encode_request(1, PING))) == Request(
        1, "test.ping", PING
    )


# --- bodies that break their schema -------------------------------------------------------

BAD_PING_BODIES = {
    "field of the wrong type": [KEY, "seven"],
    "bytes of 31 instead of 32": [KEY[:31], 7],
    "bytes of 33 instead of 32": [KEY + b"\x00", 7],
    "str where bytes": [KEY.hex()[:32], 7],
    "unknown extra field": [KEY, 7, "extra"],
    "missing field": [KEY],
    "negative int where unsigned": [KEY, -1],
    "bool where int": [KEY, True],
    "float where int": [KEY, 7.0],
    "map where array": {"sender": KEY, "nonce": 7},
    "nil body": None,
}


@pytest.mark.parametrize("case", sorted(BAD_PING_BODIES))
def test_request_body_breaking_its_schema_is_refused_with_the_id_to_answer(
    registry: Registry, case: str
) -> None:
    body = BAD_PING_BODIES[case]
    data = envelope(0, 77, "test.ping", body)
    with pytest.raises(MessageMalformedError) as e:
        registry.decode(data)
    assert isinstance(e.value, MessageInvalidError)
    assert not isinstance(e.value, MessageTypeUnknownError)
    assert (e.value.request_id, e.value.kind, e.value.name) == (77, Kind.REQUEST, "test.ping")
    assert e.value.code == ErrorCode.BAD_REQUEST


@pytest.mark.parametrize(
    "body",
    [
        pytest.param([[b"\x00" * 20, 1]], id="nested struct of the wrong shape"),
        pytest.param([[[KEY, "", 4000]]], id="empty host"),
        pytest.param([[[KEY, "h" * 254, 4000]]], id="host longer than 253"),
        pytest.param([[[KEY, "host", 0]]], id="port 0"),
        pytest.param([[[KEY, "host", 65536]]], id="port 65536"),
        pytest.param([[[KEY, "host", 1]] * 21], id="list longer than its bound"),
    ],
)
def test_nested_constraints_are_checked_in_response_bodies(
    registry: Registry, body: list[Any]
) -> None:
    with pytest.raises(MessageInvalidError) as e:
        registry.decode_response("test.find_node", msgspec.Raw(envelope(*body)))
    assert (e.value.kind, e.value.name, e.value.request_id) == (
        Kind.RESPONSE,
        "test.find_node",
        None,
    )


def test_str_that_is_not_utf8_is_refused(registry: Registry) -> None:
    good = registry.encode_response(1, FOUND)
    bad = good.replace(b"node-1", b"node\xff1")
    message = registry.decode(bad)  # a response's body is only checked when decoded
    assert isinstance(message, Response)
    with pytest.raises(MessageInvalidError):
        registry.decode_response("test.find_node", message.body_raw)


def test_notify_breaking_its_schema_has_nothing_to_answer(registry: Registry) -> None:
    with pytest.raises(MessageInvalidError) as e:
        registry.decode(envelope(3, "test.announce", [b"\x01" * 32, b"\x02" * 63, 1]))
    assert (e.value.request_id, e.value.kind, e.value.name) == (None, Kind.NOTIFY, "test.announce")


def test_request_of_a_notify_type_is_a_bad_request(registry: Registry) -> None:
    with pytest.raises(MessageInvalidError) as e:
        registry.decode(envelope(0, 8, "test.announce", [b"\x01" * 32, b"\x02" * 64, 1]))
    assert not isinstance(e.value, MessageTypeUnknownError)
    assert e.value.request_id == 8


def test_notify_of_a_request_type_is_refused(registry: Registry) -> None:
    with pytest.raises(MessageInvalidError) as e:
        registry.decode(envelope(3, "test.ping", [KEY, 1]))
    assert e.value.request_id is None


# --- unknown types ----------------------------------------------------------------------------


def test_unknown_request_type_carries_the_id_to_answer_unknown_type(registry: Registry) -> None:
    with pytest.raises(MessageTypeUnknownError) as e:
        registry.decode(envelope(0, 41, "chunk.get.v2", [1, 2, 3]))
    assert isinstance(e.value, MessageNameUnknownError)
    assert (e.value.request_id, e.value.name) == (41, "chunk.get.v2")
    assert e.value.code == ErrorCode.UNKNOWN_TYPE


def test_unknown_notify_type_has_nothing_to_answer(registry: Registry) -> None:
    with pytest.raises(MessageNameUnknownError) as e:
        registry.decode(envelope(3, "ledger.gossip.v9", {"anything": 1}))
    assert (e.value.request_id, e.value.kind) == (None, Kind.NOTIFY)


# --- broken envelopes -----------------------------------------------------------------------

BODY = [KEY, 7]

MALFORMED = {
    # name: (bytes, request id the error should carry)
    "empty input": (b"", None),
    "not msgpack": (b"\xc1", None),
    "not an array": (msgspec.msgpack.encode({"kind": 0}), None),
    "empty array": (envelope(), None),
    "unknown kind": (envelope(4, 1), None),
    "negative kind": (envelope(-1, 1, "test.ping", BODY), None),
    "kind as str": (envelope("0", 1, "test.ping", BODY), None),
    "request without body": (envelope(0, 5, "test.ping"), 5),
    "request with an extra element": (envelope(0, 5, "test.ping", BODY, 0), 5),
    "request with an empty name": (envelope(0, 5, "", BODY), 5),
    "request with a name of 65 characters": (envelope(0, 5, "a." + "b" * 63, BODY), 5),
    "request with a name that is bytes": (envelope(0, 5, b"test.ping", BODY), 5),
    "request with a negative id": (envelope(0, -5, "test.ping", BODY), None),
    "request with a float id": (envelope(0, 5.0, "test.ping", BODY), None),
    "request with a bool id": (envelope(0, True, "test.ping", BODY), None),
    "request followed by trailing bytes": (envelope(0, 5, "test.ping", BODY) + b"\x00", None),
    "request truncated in its body": (envelope(0, 5, "test.ping", BODY)[:-3], None),
    "response without body": (envelope(1, 5), None),
    "response with a name": (envelope(1, 5, "test.ping", [7]), None),
    "error with code 0": (envelope(2, 5, 0, "x"), None),
    "error with code 65536": (envelope(2, 5, 65536, "x"), None),
    "error with a message of 513 characters": (envelope(2, 5, 9, "x" * 513), None),
    "error with code and message in a nested array": (envelope(2, 5, [9, "x"]), None),
    "notify with an id": (envelope(3, 0, "test.announce", BODY), None),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_envelope_is_refused(registry: Registry, case: str) -> None:
    data, request_id = MALFORMED[case]
    with pytest.raises(MessageInvalidError) as e:
        registry.decode(data)
    assert not isinstance(e.value, MessageTypeUnknownError)
    assert e.value.request_id == request_id
    assert e.value.code == ErrorCode.BAD_REQUEST


ADVERSARIAL = {
    "array claiming 2**32-1 elements": b"\xdd\xff\xff\xff\xff\x00",
    "map claiming 2**32-1 entries": b"\xdf\xff\xff\xff\xff\x00",
    "bin claiming 4 GiB": b"\xc6\xff\xff\xff\xff\x00",
    "str claiming 4 GiB": b"\xdb\xff\xff\xff\xff\x00",
    "body array claiming 2**32-1 elements": envelope(0, 5, "test.ping", 0)[:-1]
    + b"\xdd\xff\xff\xff\xff",
    "body list claiming 2**32-1 contacts": envelope(1, 5, 0)[:-1] + b"\x91\xdd\xff\xff\xff\xff",
    "array nested a million deep": b"\x91" * 1_000_000 + b"\x00",
    "body nested a million deep": envelope(0, 5, "test.ping", 0)[:-1]
    + b"\x91" * 1_000_000
    + b"\x00",
    "8 MiB of nil after a request": envelope(0, 5, "test.ping", BODY) + b"\xc0" * (8 << 20),
}


@pytest.mark.parametrize("case", sorted(ADVERSARIAL))
def test_adversarial_input_fails_fast_with_a_wire_error(registry: Registry, case: str) -> None:
    data = ADVERSARIAL[case]
    with pytest.raises(MessageInvalidError):
        message = registry.decode(data)
        if isinstance(message, Response):
            registry.decode_response("test.find_node", message.body_raw)


# --- encoding misuse is a bug of the caller --------------------------------------------------


def test_encoding_refuses_bodies_not_registered_for_that_role(registry: Registry) -> None:
    class Stranger(msgspec.Struct, array_like=True, forbid_unknown_fields=True, frozen=True):
        x: int

    with pytest.raises(TypeError, match="not a registered request"):
        registry.encode_request(1, Stranger(1))
    with pytest.raises(TypeError, match="is a notify body"):
        registry.encode_request(1, ANNOUNCE)
    with pytest.raises(TypeError, match="is a request body"):
        registry.encode_notify(PING)
    with pytest.raises(TypeError, match="not a registered response"):
        registry.encode_response(1, PING)
    with pytest.raises(TypeError):
        registry.encode_request(True, PING)


@pytest.mark.parametrize("code", [0, -1, 65536, True])
def test_error_code_outside_the_wire_range_is_refused(registry: Registry, code: int) -> None:
    with pytest.raises(ValueError):
        registry.encode_error(1, code, "x")


def test_error_code_unknown_to_this_node_still_round_trips(registry: Registry) -> None:
    message = registry.decode(registry.encode_error(1, 4242, "from a newer node"))
    assert message == ErrorReply(1, 4242, "from a newer node")


def test_error_message_is_cut_to_its_bound_and_made_utf8(registry: Registry) -> None:
    message = registry.decode(registry.encode_error(1, ErrorCode.INTERNAL, "é" * 600))
    assert isinstance(message, ErrorReply)
    assert message.message == "é" * MAX_ERROR_MESSAGE
    message = registry.decode(registry.encode_error(1, ErrorCode.INTERNAL, "bad \udc80 byte"))
    assert isinstance(message, ErrorReply)
    assert message.message == "bad ? byte"


# --- registration -------------------------------------------------------------------------


def test_name_of_finds_the_type_of_a_body(registry: Registry) -> None:
    assert registry.name_of(Ping) == "test.ping"
    assert registry.name_of(Announce) == "test.announce"
    assert "test.find_node" in registry
    assert registry.names() == ["test.announce", "test.find_node", "test.ping"]
    with pytest.raises(TypeError):
        registry.name_of(Pong)


def test_registering_a_name_twice_is_refused(registry: Registry) -> None:
    class Other(msgspec.Struct, array_like=True, forbid_unknown_fields=True, frozen=True):
        pass

    with pytest.raises(ValueError, match="already registered"):
        registry.register("test.ping", Other, Pong)


def test_one_request_struct_cannot_name_two_types(registry: Registry) -> None:
    with pytest.raises(ValueError, match="already the body"):
        registry.register("test.ping2", Ping, Pong)


def test_one_response_struct_may_answer_several_types(registry: Registry) -> None:
    class Hello(msgspec.Struct, array_like=True, forbid_unknown_fields=True, frozen=True):
        nonce: U64

    registry.register("test.hello", Hello, Pong)
    message = registry.decode(registry.encode_response(2, Pong(5)))
    assert isinstance(message, Response)
    assert registry.decode_response("test.hello", message.body_raw) == Pong(5)


@pytest.mark.parametrize(
    "name",
    [
        "ping",
        "",
        "Test.ping",
        "test..ping",
        "test.ping.",
        ".test",
        "test.pïng",
        "test.ping ",
        "test.ping\n",
        "1test.ping",
        "a." + "b" * 63,
        7,
    ],
)
def test_malformed_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError):
        Registry().register(name, Ping, Pong)


def test_wellformed_names_are_accepted() -> None:
    registry = Registry()
    registry.register("dht.find_value", Ping, Pong)
    registry.register("chunk.get.v2", FindNode, Found)
    registry.register("a." + "b" * 62, Announce, None)


class Loose(msgspec.Struct, frozen=True, forbid_unknown_fields=True):  # a map, not an array
    x: int


class Lenient(msgspec.Struct, frozen=True, array_like=True):  # extra fields ignored
    x: int


class Mutable(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    x: int


class HoldsLoose(msgspec.Struct, array_like=True, forbid_unknown_fields=True, frozen=True):
    items: list[Loose]


class HoldsAny(msgspec.Struct, array_like=True, forbid_unknown_fields=True, frozen=True):
    x: Any


class HoldsRaw(msgspec.Struct, array_like=True, forbid_unknown_fields=True, frozen=True):
    x: msgspec.Raw


@dataclasses.dataclass
class Point:
    x: int


class HoldsDataclass(msgspec.Struct, array_like=True, forbid_unknown_fields=True, frozen=True):
    p: dict[str, Point]


class HoldsView(msgspec.Struct, array_like=True, forbid_unknown_fields=True, frozen=True):
    x: memoryview


@pytest.mark.parametrize(
    "schema",
    [
        Loose,
        Lenient,
        Mutable,
        HoldsLoose,
        HoldsAny,
        HoldsRaw,
        HoldsDataclass,
        Point,
        int,
    ],
)
def test_schemas_breaking_the_conventions_are_refused(schema: Any) -> None:
    with pytest.raises(TypeError):
        Registry().register("test.bad", schema, None)
    with pytest.raises(TypeError):
        Registry().register("test.bad", Ping, schema)


def test_a_view_is_refused_in_requests_and_notifies_but_allowed_in_responses() -> None:
    with pytest.raises(TypeError, match="MemoryViewType"):
        Registry().register("test.bad", HoldsView, None)
    with pytest.raises(TypeError, match="MemoryViewType"):
        Registry().register("test.bad", HoldsView, Pong)
    Registry().register("test.view", Ping, HoldsView)


def test_a_view_in_a_response_never_sees_a_reused_buffer_change() -> None:
    """A response's body is the received message's (handed over) or a copy of a
    buffer the caller keeps: a view decoded from it never changes under the reader."""
    registry = Registry()
    registry.register("test.view", Ping, HoldsView)
    payload = bytes(range(256)) * 4
    buffer = bytearray(registry.encode_response(5, HoldsView(memoryview(payload))))
    kept = registry.decode(memoryview(buffer))  # not owned: the caller reuses it
    handed = registry.decode(bytes(buffer))  # bytes never change
    buffer[:] = b"\x00" * len(buffer)
    for message in (kept, handed):
        assert isinstance(message, Response)
        body = registry.decode_response("test.view", message.body_raw)
        assert isinstance(body, HoldsView) and body.x == payload


class Tree(msgspec.Struct, array_like=True, forbid_unknown_fields=True, frozen=True):
    label: U32
    children: Annotated[list[Tree], msgspec.Meta(max_length=4)]


def test_recursive_schemas_are_accepted_and_validated(registry: Registry) -> None:
    registry.register("test.tree", Tree, None)
    tree = Tree(1, [Tree(2, []), Tree(3, [Tree(4, [])])])
    assert registry.decode(registry.encode_notify(tree)) == Notify("test.tree", tree)
    with pytest.raises(MessageInvalidError):
        registry.decode(envelope(3, "test.tree", [1, [[2, []], [-3, []]]]))


def test_default_registry_is_the_one_subsystems_share() -> None:
    assert isinstance(default_registry, Registry)


# --- error codes ----------------------------------------------------------------------------


def test_error_codes_are_the_documented_wire_values() -> None:
    assert {code.name: code.value for code in ErrorCode} == {
        "BAD_REQUEST": 1,
        "UNKNOWN_TYPE": 2,
        "NOT_FOUND": 3,
        "TOO_LARGE": 4,
        "BUSY": 5,
        "TIMEOUT": 6,
        "REFUSED": 7,
        "UNAUTHORIZED": 8,
        "INTERNAL": 9,
        "UNAVAILABLE": 10,
    }
    assert {kind.name: kind.value for kind in Kind} == {
        "REQUEST": 0,
        "RESPONSE": 1,
        "ERROR": 2,
        "NOTIFY": 3,
    }
    assert MessageInvalidError.code == ErrorCode.BAD_REQUEST
    assert MessageNameUnknownError.code == ErrorCode.UNKNOWN_TYPE


# --- constrained types ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("alias", "good", "bad"),
    [
        (PublicKey, [b"k" * 32], [b"k" * 31, b"k" * 33, "k" * 32]),
        (Signature, [b"s" * 64], [b"s" * 63, b"s" * 65]),
        (NodeId, [b"n" * 20], [b"n" * 19, b"n" * 21]),
        (Hash32, [b"h" * 32], [b"h" * 31, b""]),
        (Port, [1, 65535], [0, 65536, -1]),
        (Host, ["a", "h" * 253], ["", "h" * 254, b"host"]),
        (U32, [0, 2**32 - 1], [-1, 2**32, 1.0]),
        (U64, [0, 2**64 - 1], [-1, True]),
    ],
)
def test_constrained_types_accept_their_range_only(
    alias: Any, good: list[Any], bad: list[Any]
) -> None:
    for value in good:
        assert msgspec.msgpack.decode(msgspec.msgpack.encode(value), type=alias) == value
    for value in bad:
        with pytest.raises(msgspec.ValidationError):
            msgspec.msgpack.decode(msgspec.msgpack.encode(value), type=alias)


# --- properties -----------------------------------------------------------------------------

ids = st.one_of(st.integers(0, MAX_REQUEST_ID), st.sampled_from([0, 1, MAX_REQUEST_ID]))
contacts = st.builds(
    Contact,
    st.binary(min_size=32, max_size=32),
    st.text(min_size=1, max_size=253),
    st.integers(1, 65535),
)
bodies = st.one_of(
    st.builds(Ping, st.binary(min_size=32, max_size=32), st.integers(0, 2**64 - 1)),
    st.builds(FindNode, st.binary(min_size=20, max_size=20), st.integers(1, 20)),
    st.builds(
        Announce,
        st.binary(min_size=32, max_size=32),
        st.binary(min_size=64, max_size=64),
        st.integers(0, 2**32 - 1),
    ),
)
responses = st.one_of(
    st.builds(Pong, st.integers(0, 2**64 - 1)),
    st.builds(Found, st.lists(contacts, max_size=20)),
)


def encode_any(registry: Registry, kind: int, request_id: int, body: msgspec.Struct) -> bytes:
    if kind == Kind.RESPONSE:
        return registry.encode_response(request_id, body)
    if isinstance(body, Announce):
        return registry.encode_notify(body)
    return registry.encode_request(request_id, body)


valid_messages = st.one_of(
    st.tuples(st.just(Kind.REQUEST), ids, bodies),
    st.tuples(st.just(Kind.RESPONSE), ids, responses),
    st.tuples(st.just(Kind.ERROR), ids, st.sampled_from(list(ErrorCode)), st.text(max_size=600)),
)


def encode_valid(registry: Registry, spec: tuple[Any, ...]) -> bytes:
    if spec[0] == Kind.ERROR:
        return registry.encode_error(spec[1], spec[2], spec[3])
    return encode_any(registry, spec[0], spec[1], spec[2])


def decode_or_wire_error(registry: Registry, data: bytes) -> None:
    """Decoding ends in a message that re-encodes to itself, or in a WireError."""
    try:
        message = registry.decode(data)
    except WireError:
        return
    if isinstance(message, Request):
        assert registry.decode(registry.encode_request(message.id, message.body)) == message
    elif isinstance(message, Notify):
        assert registry.decode(registry.encode_notify(message.body)) == message
    elif isinstance(message, Response):
        for name in ("test.ping", "test.find_node"):
            with contextlib.suppress(WireError):
                registry.decode_response(name, message.body_raw)
    else:
        assert isinstance(message, ErrorReply)


@given(valid_messages)
def test_every_valid_message_round_trips(spec: tuple[Any, ...]) -> None:
    registry = make_registry()
    message = registry.decode(encode_valid(registry, spec))
    if spec[0] == Kind.ERROR:
        assert message == ErrorReply(spec[1], spec[2], spec[3][:MAX_ERROR_MESSAGE])
    elif spec[0] == Kind.RESPONSE:
        assert isinstance(message, Response)
        name = "test.ping" if isinstance(spec[2], Pong) else "test.find_node"
        assert (message.id, registry.decode_response(name, message.body_raw)) == spec[1:]
    elif isinstance(spec[2], Announce):
        assert message == Notify("test.announce", spec[2])
    else:
        assert message == Request(spec[1], registry.name_of(type(spec[2])), spec[2])


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_decode_or_raise_a_wire_error(data: bytes) -> None:
    decode_or_wire_error(make_registry(), data)


msgpack_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=40)
    | st.binary(max_size=70),
    lambda children: (
        st.lists(children, max_size=6)
        | st.dictionaries(st.text(max_size=8) | st.integers(-5, 5), children, max_size=4)
    ),
    max_leaves=24,
)


@settings(max_examples=300)
@given(msgpack_values)
def test_arbitrary_msgpack_values_decode_or_raise_a_wire_error(value: Any) -> None:
    decode_or_wire_error(make_registry(), msgspec.msgpack.encode(value))


names = st.sampled_from(["test.ping", "test.find_node", "test.announce", "nope.x", ""])
near_ids = st.sampled_from([0, 1, MAX_REQUEST_ID, MAX_REQUEST_ID + 1, -1])
field_values = st.one_of(
    msgpack_values,
    st.binary(min_size=19, max_size=33),
    st.binary(min_size=64, max_size=64),
    st.integers(-1, 2**32),
)
near_bodies = st.one_of(msgpack_values, st.lists(field_values, max_size=4))


@settings(max_examples=300)
@given(
    st.lists(st.one_of(st.integers(-1, 4), near_ids, names, near_bodies), min_size=0, max_size=5)
    | st.tuples(st.integers(0, 4), near_ids, names, near_bodies).map(list)
    | st.tuples(st.just(3), names, near_bodies).map(list)
    | st.tuples(st.just(2), near_ids, st.integers(-1, 70000), st.text(max_size=520)).map(list)
)
def test_near_envelopes_decode_or_raise_a_wire_error(elements: list[Any]) -> None:
    decode_or_wire_error(make_registry(), msgspec.msgpack.encode(elements))


@settings(max_examples=100)
@given(valid_messages, st.data())
def test_truncated_messages_are_refused(spec: tuple[Any, ...], data: st.DataObject) -> None:
    registry = make_registry()
    message = encode_valid(registry, spec)
    cut = data.draw(st.integers(0, len(message) - 1))
    with pytest.raises(MessageInvalidError):
        registry.decode(message[:cut])


@settings(max_examples=300)
@given(valid_messages, st.data())
def test_messages_with_a_flipped_byte_decode_or_raise_a_wire_error(
    spec: tuple[Any, ...], data: st.DataObject
) -> None:
    registry = make_registry()
    message = bytearray(encode_valid(registry, spec))
    index = data.draw(st.integers(0, len(message) - 1))
    message[index] ^= data.draw(st.integers(1, 255))
    decode_or_wire_error(registry, bytes(message))


# --- the node's own registry: every subsystem's schemas ---------------------------------------

H = bytes(range(32))
ME = dht.Contact(KEY, "node-1.localhost", 4000)
RECORD = dht.Record(b"p/" + H, b"value", KEY, 1_700_000_000, 3600, b"\x02" * 64)
STATUS = ledger.ChainStatus("localnet", H, 12, H, 1_700_000_060, H)
SUMMARY = ledger.ContractSummary(
    contract_id=H,
    publisher=b"\x01" * 20,
    host=b"\x02" * 20,
    status="active",
    root=H,
    chunk_count=3,
    chunk_size=2048,
    price_per_window="500",
    windows=10,
    window_blocks=4,
    window=2,
    windows_proven=1,
    windows_missed=0,
    escrow="5000",
    collateral="100",
    revision=0,
    opened_height=7,
)
NODE_REQUESTS: list[msgspec.Struct] = [
    dht.FindNode(ME, b"\x05" * 20),
    dht.Store(ME, RECORD),
    host.ChunkPutMany([host.ChunkPut(H, host.Placement(H, 0, 1, 2, 3), b"shard")]),
    host.ContractProposal(b"terms", H, 2, 3, (host.ShardRef(0, 1, H),)),
    ledger.GetStatus(STATUS),
    ledger.GetContracts(b"\x01" * 20, "host", 5),
]
NODE_RESPONSES: list[tuple[str, msgspec.Struct]] = [
    ("dht.find_value", dht.Values([RECORD], [ME])),
    ("dht.store", dht.Stored(False, "bad-signature")),
    ("chunk.packet", host.PacketReply(b"\x01\x07", memoryview(b"payload"))),
    ("host.offer", HostAd(KEY, "node-1.localhost", 4000, 8080, "localnet", "1000", 5000, 100, 1)),
    ("ledger.submit", ledger.Submitted(H, False, "nonce_replayed", "nonce 3 was used")),
    ("ledger.listing", ledger.ListingInfo(12, "100", True)),
    ("ledger.contracts", ledger.ContractList(12, 1, (SUMMARY,))),
]
# (the request's name, which names a response's schema too; the message's bytes)
NODE_MESSAGES = [
    *(
        (default_registry.name_of(type(b)), default_registry.encode_request(9, b))
        for b in NODE_REQUESTS
    ),
    *((name, default_registry.encode_response(9, body)) for name, body in NODE_RESPONSES),
    ("ledger.block", default_registry.encode_notify(ledger.NewBlock(b"block"))),
]


@settings(max_examples=250, deadline=None)
@given(data=st.data())
def test_the_node_registry_decodes_changed_messages_or_raises_a_wire_error(
    data: st.DataObject,
) -> None:
    name, raw = data.draw(st.sampled_from(NODE_MESSAGES))
    registry = default_registry
    try:
        message = registry.decode(data.draw(mutations(raw)))
    except WireError:
        return
    if isinstance(message, Request):
        assert registry.decode(registry.encode_request(message.id, message.body)) == message
    elif isinstance(message, Notify):
        assert registry.decode(registry.encode_notify(message.body)) == message
    elif isinstance(message, Response):
        try:
            body = registry.decode_response(name, message.body_raw)
        except MessageInvalidError:
            return
        assert registry.decode_response(name, msgspec.msgpack.encode(body)) == body
