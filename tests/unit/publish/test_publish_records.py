"""What publishers and hosts put in the DHT: host ads, manifest pointers and pieces,
read back from whatever a record's owner wrote."""

from __future__ import annotations

import random

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from mutations import byte_mutations, mutations

from storenode.identity import Identity
from storenode.publish.records import (
    PIECE_SIZE,
    HostAd,
    RecordFormatError,
    decode_host_ad,
    decode_pointer,
    encode_host_ad,
    encode_pointer,
    join_manifest,
    split_manifest,
)

HOST = Identity.from_seed(bytes([7]) * 32)
AD = HostAd(
    key=HOST.public_key,
    host="node-3.localhost",
    port=7403,
    http_port=8403,
    chain_id="localnet",
    price="1000000000000",
    collateral_bps=5000,
    max_windows=100,
    free=2**40,
)
RAW_AD = encode_host_ad(AD)
MANIFEST_BYTES = random.Random(3).randbytes(2 * PIECE_SIZE + 100)
POINTER, PIECES = split_manifest(MANIFEST_BYTES)


def test_a_host_ad_round_trips_and_must_name_its_records_owner() -> None:
    assert decode_host_ad(RAW_AD, owner=HOST.public_key) == AD
    with pytest.raises(RecordFormatError, match="another host"):
        decode_host_ad(RAW_AD, owner=bytes(32))


def test_a_manifest_is_split_into_pieces_that_join_back_to_it() -> None:
    assert (POINTER.size, POINTER.pieces, len(PIECES)) == (len(MANIFEST_BYTES), 3, 3)
    assert decode_pointer(encode_pointer(POINTER)) == POINTER
    assert join_manifest(POINTER, PIECES) == MANIFEST_BYTES
    with pytest.raises(RecordFormatError):
        join_manifest(POINTER, [PIECES[0], PIECES[2], PIECES[1]])


@settings(max_examples=300, deadline=None)
@given(raw=mutations(RAW_AD) | st.binary(max_size=120))
@example(raw=RAW_AD.replace(b"node-3.localhost", b"node-3.localhos\xff"))  # not UTF-8
@example(raw=RAW_AD.replace(b"localnet", b"localne\xc3"))
def test_any_host_ad_value_is_an_ad_of_its_owner_or_a_format_error(raw: bytes) -> None:
    try:
        ad = decode_host_ad(raw, owner=HOST.public_key)
    except RecordFormatError:
        return
    assert ad.key == HOST.public_key


@settings(max_examples=200, deadline=None)
@given(raw=mutations(encode_pointer(POINTER)) | st.binary(max_size=60))
def test_any_pointer_value_is_a_consistent_pointer_or_a_format_error(raw: bytes) -> None:
    try:
        pointer = decode_pointer(raw)
    except RecordFormatError:
        return
    assert (pointer.pieces - 1) * PIECE_SIZE < pointer.size <= pointer.pieces * PIECE_SIZE


@settings(max_examples=100, deadline=None)
@given(
    pieces=st.lists(st.sampled_from(PIECES) | st.binary(max_size=64), max_size=4),
    data=st.data(),
)
def test_pieces_join_only_to_the_bytes_their_pointer_names(
    pieces: list[bytes], data: st.DataObject
) -> None:
    if len(pieces) > 0 and data.draw(st.booleans()):
        at = data.draw(st.integers(0, len(pieces) - 1))
        pieces[at] = data.draw(byte_mutations(pieces[at]))
    try:
        raw = join_manifest(POINTER, pieces)
    except RecordFormatError:
        return
    assert raw == MANIFEST_BYTES
