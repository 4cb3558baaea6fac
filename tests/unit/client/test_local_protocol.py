"""The local socket's messages (:mod:`storenode.client.local_protocol`): both
parsers take any bytes and give a typed message or :class:`LocalMessageError`,
and every reply the node builds parses back to what it said."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from storenode.client.content import (
    ContentCorruptError,
    ContentError,
    ContentInfo,
    ContentNotFoundError,
    ContentUnavailableError,
    PaymentRequiredError,
)
from storenode.client.local_protocol import (
    KINDS,
    MAX_MESSAGE,
    DoneReply,
    ErrorReply,
    FetchRequest,
    InfoReply,
    LocalMessageError,
    WrittenReply,
    encode,
    error_of,
    error_reply,
    fetch_request,
    info_reply,
    parse_reply,
    parse_request,
    plain_error_reply,
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
near_messages = st.dictionaries(
    st.sampled_from(
        ["fetch", "info", "written", "done", "error", "kind", "at", "price", "cap", "errno"]
    ),
    json_values,
    max_size=5,
).map(lambda doc: json.dumps(doc).encode())


@given(st.binary(max_size=MAX_MESSAGE + 10) | near_messages)
def test_any_packet_is_a_request_or_a_typed_refusal(packet: bytes) -> None:
    try:
        request = parse_request(packet)
    except LocalMessageError:
        return
    assert isinstance(request, FetchRequest) and len(request.cid) == 32


@given(st.binary(max_size=MAX_MESSAGE + 10) | near_messages)
def test_any_packet_is_a_reply_or_a_typed_refusal(packet: bytes) -> None:
    try:
        reply = parse_reply(packet)
    except LocalMessageError:
        return
    assert isinstance(reply, InfoReply | WrittenReply | DoneReply | ErrorReply)
    if isinstance(reply, WrittenReply | DoneReply):
        assert reply.length >= 0
    if isinstance(reply, ErrorReply):
        assert reply.kind in KINDS
        assert reply.at is None or reply.at >= 0


@given(st.binary(min_size=32, max_size=32))
def test_a_request_names_the_cid_it_was_built_with(cid: bytes) -> None:
    assert parse_request(fetch_request(cid)) == FetchRequest(cid)


@given(
    st.binary(min_size=32, max_size=32),
    st.text(max_size=300),
    st.text(max_size=100),
    st.integers(min_value=0, max_value=2**63),
    st.booleans(),
)
def test_the_info_the_node_sends_is_the_info_read(
    cid: bytes, name: str, media_type: str, length: int, registered: bool
) -> None:
    info = ContentInfo(cid, name, media_type, length, registered)
    assert parse_reply(info_reply(info)) == InfoReply(info)


@pytest.mark.parametrize(
    "error",
    [
        ContentNotFoundError("no manifest found for work 00"),
        PaymentRequiredError("work costs 2 tokens, above your cap of 1", price=2, cap=1),
        ContentUnavailableError("only 1 of 3 hosts answered"),
        ContentCorruptError("stripe 0 does not match its hash"),
    ],
)
@pytest.mark.parametrize("at", [None, 0, 12_345])
def test_a_works_error_comes_back_as_the_same_error(error: ContentError, at: int | None) -> None:
    reply = parse_reply(error_reply(error, at))
    assert isinstance(reply, ErrorReply)
    assert reply.at == at
    back = error_of(reply)
    assert type(back) is type(error)
    assert str(back) == str(error)
    if isinstance(error, PaymentRequiredError):
        assert isinstance(back, PaymentRequiredError)
        assert (back.price, back.cap) == (error.price, error.cap)


def test_an_error_of_another_kind_is_unavailable_and_a_long_message_is_cut() -> None:
    reply = parse_reply(error_reply(ContentError("x" * 10_000), 5))
    assert isinstance(reply, ErrorReply)
    assert reply.kind == "failed"
    assert len(reply.message) == 2048
    assert isinstance(error_of(reply), ContentUnavailableError)


def test_a_write_failure_says_its_errno() -> None:
    reply = parse_reply(plain_error_reply("write_failed", "No space left on device", 7, errno=28))
    assert reply == ErrorReply("write_failed", "No space left on device", 7, 0, 0, 28)


def test_nothing_larger_than_a_packet_is_sent() -> None:
    with pytest.raises(ValueError, match="over 4096"):
        encode({"error": "x" * MAX_MESSAGE})
