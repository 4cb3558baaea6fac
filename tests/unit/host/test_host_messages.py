"""``chunk.packets`` and ``chunk.repair`` on the wire: the requests and answers
round-trip through the registry; anything else a peer could send is refused with a
wire error."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from storenode.host import (
    MAX_CHUNK_SIZE,
    MAX_PACKET_BATCH,
    PacketsReply,
    PacketsRequest,
    RepairRequest,
    StripePacket,
)
from storenode.host.messages import MAX_PATH
from storenode.wire.errors import MessageInvalidError, WireError
from storenode.wire.messages import Request, Response, default_registry

CID = bytes(range(32))

stripes = st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=MAX_PACKET_BATCH, unique=True)
packets = st.builds(
    StripePacket,
    st.integers(0, 2**32 - 1),
    st.binary(min_size=1, max_size=255),
    st.binary(max_size=64).map(memoryview),
)


@given(stripes)
def test_a_batch_request_round_trips(asked: list[int]) -> None:
    body = PacketsRequest(CID, asked)
    message = default_registry.decode(default_registry.encode_request(3, body))
    assert message == Request(3, "chunk.packets", body)


@given(st.lists(packets, max_size=MAX_PACKET_BATCH))
def test_a_batch_answer_round_trips(answer: list[StripePacket]) -> None:
    body = PacketsReply(answer)
    message = default_registry.decode(default_registry.encode_response(3, body))
    assert isinstance(message, Response)
    decoded = default_registry.decode_response("chunk.packets", message.body_raw)
    assert isinstance(decoded, PacketsReply)
    assert [(p.stripe, p.coefficients, bytes(p.payload)) for p in decoded.packets] == [
        (p.stripe, p.coefficients, bytes(p.payload)) for p in answer
    ]


def _request(body: object) -> bytes:
    return msgspec.msgpack.encode((0, 9, "chunk.packets", body))


@pytest.mark.parametrize(
    "body",
    [
        [CID, []],  # no stripe
        [CID, list(range(MAX_PACKET_BATCH + 1))],  # too many
        [CID, [2**32]],  # not a stripe index
        [CID, [-1]],
        [CID[:31], [0]],  # not a CID
        [CID, 0],
        [CID, [0], "extra"],
        [CID],
    ],
    ids=["empty", "too-many", "u32", "negative", "short-cid", "not-a-list", "extra", "short"],
)
def test_malformed_batch_requests_are_refused(body: object) -> None:
    with pytest.raises(MessageInvalidError):
        default_registry.decode(_request(body))


@pytest.mark.parametrize(
    "answer",
    [
        [[0, b"", b"x"]],  # no coefficient
        [[0, b"\x01" * 256, b"x"]],  # more than 255
        [[0, b"\x01", b"x" * (MAX_CHUNK_SIZE + 1)]],
        [[0, b"\x01", b"x"]] * (MAX_PACKET_BATCH + 1),
        [[2**32, b"\x01", b"x"]],
        [[0, b"\x01"]],
    ],
    ids=["no-coefficient", "long-coefficients", "big-payload", "too-many", "u32", "short"],
)
def test_malformed_batch_answers_are_refused(answer: Any) -> None:
    with pytest.raises(MessageInvalidError):
        default_registry.decode_response("chunk.packets", msgspec.msgpack.encode([answer]))


values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)  # what msgpack carries
    | st.binary(max_size=40)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4),
    max_leaves=12,
)


@given(values)
def test_any_batch_request_a_peer_sends_decodes_or_raises_a_wire_error(body: Any) -> None:
    try:
        message = default_registry.decode(_request(body))
    except WireError:
        return
    assert isinstance(message, Request) and isinstance(message.body, PacketsRequest)
    assert 1 <= len(message.body.stripes) <= MAX_PACKET_BATCH


@given(values)
def test_any_batch_answer_a_host_sends_decodes_or_raises_a_wire_error(body: Any) -> None:
    try:
        reply = default_registry.decode_response("chunk.packets", msgspec.msgpack.encode(body))
    except WireError:
        return
    assert isinstance(reply, PacketsReply)


hashes = st.binary(min_size=32, max_size=32)


@given(
    st.integers(0, 2**32 - 1),
    st.integers(0, 254),
    hashes,
    st.integers(0, 2**32 - 1),
    st.lists(hashes, max_size=MAX_PATH),
)
def test_a_repair_request_round_trips(
    stripe: int, shard: int, contract: bytes, index: int, path: list[bytes]
) -> None:
    body = RepairRequest(CID, stripe, shard, contract, index, path)
    message = default_registry.decode(default_registry.encode_request(5, body))
    assert message == Request(5, "chunk.repair", body)


@pytest.mark.parametrize(
    "body",
    [
        [CID, 0, 255, CID, 0, []],  # no shard 255 (n is at most 255)
        [CID, 0, 0, CID[:31], 0, []],
        [CID, 0, 0, CID, -1, []],
        [CID, 0, 0, CID, 0, [CID] * (MAX_PATH + 1)],
        [CID, 0, 0, CID, 0, [CID[:5]]],
        [CID, 0, 0, CID, 0],
    ],
    ids=["shard", "short-contract", "index", "long-path", "short-hash", "short"],
)
def test_malformed_repair_requests_are_refused(body: object) -> None:
    with pytest.raises(MessageInvalidError):
        default_registry.decode(msgspec.msgpack.encode((0, 9, "chunk.repair", body)))


@given(values)
def test_any_repair_request_a_peer_sends_decodes_or_raises_a_wire_error(body: Any) -> None:
    try:
        message = default_registry.decode(msgspec.msgpack.encode((0, 9, "chunk.repair", body)))
    except WireError:
        return
    assert isinstance(message, Request) and isinstance(message.body, RepairRequest)
