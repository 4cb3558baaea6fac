"""Blocks and the genesis: the documented bytes, hashes, signature domain,
proposer schedule, the genesis file, and whatever bytes a peer passes off as either."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from mutations import mutations

from contracts import tokens
from storenode.coding.merkle import leaf_hash, node_hash
from storenode.identity import SignatureInvalidError, signing_message, verify
from storenode.ledger import (
    BLOCK_DOMAIN,
    BlockInvalidError,
    GenesisInvalidError,
    Header,
    block_hash,
    decode_block,
    encode_block,
    genesis_from_json,
    genesis_hash,
    genesis_to_json,
    load_genesis,
    make_genesis,
    save_genesis,
    sign_block,
    tx_root,
)
from storenode.ledger.block import EMPTY_TX_ROOT, MAX_BLOCK_SIZE, encode_header
from storenode.testing.ledger import (
    CHAIN_ID,
    GENESIS_TIME,
    account,
    funded_genesis,
    transfer,
    validator,
)

PRODUCER = validator(0)


def header(**kw: object) -> Header:
    fields: dict[str, object] = {
        "version": 1,
        "height": 7,
        "previous_hash": b"\x11" * 32,
        "time": 1_700_000_035,
        "producer": PRODUCER.public_key,
        "tx_root": EMPTY_TX_ROOT,
        "state_root": b"\x22" * 32,
    }
    fields.update(kw)
    return Header(**fields)  # type: ignore[arg-type]


def test_header_bytes_follow_the_documented_layout() -> None:
    h = header()
    raw = encode_block(sign_block(PRODUCER, h, []))
    expected_header = (
        b"\x97\x01\x07"
        + b"\xc4\x20"
        + b"\x11" * 32
        + b"\xce"
        + (1_700_000_035).to_bytes(4, "big")
        + b"\xc4\x20"
        + PRODUCER.public_key
        + b"\xc4\x20"
        + EMPTY_TX_ROOT
        + b"\xc4\x20"
        + b"\x22" * 32
    )
    assert len(expected_header) == 3 + 34 + 5 + 3 * 34  # 144 bytes
    assert raw[:1] == b"\x93"  # [header, transactions, signature]
    assert raw[1 : 1 + len(expected_header)] == expected_header
    rest = raw[1 + len(expected_header) :]
    assert rest[:3] == b"\x90\xc4\x40" and len(rest) == 3 + 64
    assert block_hash(h) == hashlib.sha256(expected_header).digest()


def test_signature_covers_the_header_in_the_block_domain() -> None:
    h = header()
    block = sign_block(PRODUCER, h, [])
    verify(PRODUCER.public_key, BLOCK_DOMAIN, encode_header(h), block.signature)
    assert signing_message(BLOCK_DOMAIN, b"")[:18] == b"\x11storenode/block/1"
    with pytest.raises(SignatureInvalidError):
        verify(PRODUCER.public_key, b"storenode/tx/1", encode_header(h), block.signature)


def test_block_hash_ignores_the_signature_and_commits_to_every_header_field() -> None:
    h = header()
    a, b = sign_block(PRODUCER, h, []), sign_block(PRODUCER, h, [])
    assert a.hash == b.hash == block_hash(h)
    for change in ({"height": 8}, {"time": 1}, {"state_root": b"\x33" * 32}):
        assert block_hash(header(**change)) != block_hash(h)


def test_tx_root_is_the_rfc6962_tree_over_the_raw_transactions() -> None:
    raws = [transfer(account(0), account(1).address, n + 1, n) for n in range(3)]
    leaves = [leaf_hash(r) for r in raws]
    assert tx_root(raws) == node_hash(node_hash(leaves[0], leaves[1]), leaves[2])
    assert tx_root([]) == EMPTY_TX_ROOT == hashlib.sha256(b"").digest()
    assert tx_root(raws[::-1]) != tx_root(raws)


def test_block_round_trips_through_its_bytes() -> None:
    raws = [transfer(account(0), account(1).address, 5, 0)]
    block = sign_block(PRODUCER, header(tx_root=tx_root(raws)), raws)
    assert decode_block(encode_block(block)) == block


@pytest.mark.parametrize(
    "mangle",
    [
        lambda raw: raw[:-1],  # truncated
        lambda raw: raw + b"\x00",  # trailing byte
        lambda raw: b"\x94" + raw[1:] + b"\xc0",  # an extra field
        lambda raw: raw.replace(b"\x97\x01\x07", b"\x97\x02\x07", 1),  # unknown version
        lambda raw: raw.replace(b"\x97\x01\x07", b"\x97\x01\xcc\x07", 1),  # wide integer
    ],
)
def test_malformed_or_non_canonical_block_bytes_are_refused(mangle: object) -> None:
    raw = encode_block(sign_block(PRODUCER, header(), []))
    with pytest.raises(BlockInvalidError) as info:
        decode_block(mangle(raw))  # type: ignore[operator]
    assert info.value.reason == "malformed"


def test_oversized_block_bytes_are_refused_before_decoding() -> None:
    with pytest.raises(BlockInvalidError) as info:
        decode_block(b"\x93" + b"\x00" * MAX_BLOCK_SIZE)
    assert info.value.reason == "oversize"


BLOCK_TXS = [transfer(account(0), account(1).address, 5, n) for n in range(2)]
RAW_BLOCK = encode_block(sign_block(PRODUCER, header(tx_root=tx_root(BLOCK_TXS)), BLOCK_TXS))


@settings(max_examples=200, deadline=None)
@given(raw=mutations(RAW_BLOCK) | st.binary(max_size=300))
def test_any_bytes_are_a_canonical_block_or_refused(raw: bytes) -> None:
    try:
        block = decode_block(raw)
    except BlockInvalidError as e:
        assert e.reason in ("malformed", "oversize")
        return
    assert encode_block(block) == raw


def test_signing_with_another_key_than_the_producer_is_refused() -> None:
    with pytest.raises(ValueError):
        sign_block(validator(1), header(), [])


# -- genesis --------------------------------------------------------------------------


def test_proposers_rotate_through_every_validator() -> None:
    genesis = funded_genesis(2, validators=3)
    keys = [validator(i).public_key for i in range(3)]
    assert [genesis.proposer_for(h) for h in range(1, 7)] == [keys[(h) % 3] for h in range(1, 7)]
    assert set(keys) == {genesis.proposer_for(h) for h in range(3)}


def test_genesis_file_round_trips_with_hex_bytes_and_decimal_amounts(tmp_path: Path) -> None:
    genesis = funded_genesis(3, validators=2, burn_bps=300)
    path = tmp_path / "genesis.json"
    save_genesis(genesis, path)
    doc = json.loads(path.read_text())
    assert doc["chain_id"] == CHAIN_ID
    assert doc["validators"] == [validator(i).public_key.hex() for i in range(2)]
    assert doc["allocations"]["0x" + account(0).address.hex()] == str(int(tokens(1_000_000)))
    assert doc["params"]["burn_bps"] == 300
    assert doc["params"]["min_fee"] == str(int(tokens("0.0001")))
    loaded = load_genesis(path)
    assert loaded == genesis and genesis_hash(loaded) == genesis.hash
    assert genesis_to_json(loaded) == path.read_bytes()


def test_genesis_hash_commits_to_every_parameter() -> None:
    base = funded_genesis(3)
    assert funded_genesis(3).hash == base.hash
    for other in (
        funded_genesis(4),
        funded_genesis(3, validators=2),
        funded_genesis(3, burn_bps=100),
        funded_genesis(3, block_time=2),
        funded_genesis(3, time=GENESIS_TIME + 1),
    ):
        assert other.hash != base.hash


def test_default_genesis_burns_two_percent_and_allows_no_empty_validator_set() -> None:
    genesis = make_genesis("localnet", [PRODUCER.public_key], {}, time=0)
    assert genesis.params.burn_bps == 200 and genesis.block_time == 5
    with pytest.raises(GenesisInvalidError):
        make_genesis("localnet", [], {}, time=0)


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (lambda d: d.update(extra=1), "keys"),
        (lambda d: d.pop("params"), "keys"),
        (lambda d: d.update(validators=["zz"]), "hex"),
        (lambda d: d.update(validators=["00" * 31]), "31 bytes"),
        (lambda d: d.update(validators=[d["validators"][0]] * 2), "twice"),
        (lambda d: d.update(validators=["ff" * 32]), "Ed25519"),
        (lambda d: d["allocations"].update({"0x" + "00" * 20: "-5"}), "decimal"),
        (lambda d: d["allocations"].update({"0x" + "00" * 20: 5}), "string"),
        (lambda d: d["allocations"].update({"0x" + "00" * 20: "0"}), "allocation"),
        (lambda d: d["params"].update(burn_bps=10_001), "bounds"),
        (lambda d: d["params"].update(unknown=1), "params"),
        (lambda d: d.update(window_blocks=1), "window_blocks"),
        (lambda d: d.update(block_time=0), "bounds"),
        (lambda d: d.update(chain_id="Not A Chain"), "bounds"),
    ],
)
def test_bad_genesis_file_is_refused_with_what_is_wrong(edit: object, words: str) -> None:
    doc = json.loads(genesis_to_json(funded_genesis(2)))
    edit(doc)  # type: ignore[operator]
    with pytest.raises(GenesisInvalidError, match=words):
        genesis_from_json(json.dumps(doc))


GENESIS_JSON = genesis_to_json(funded_genesis(2, validators=2))


@settings(max_examples=150, deadline=None)
@given(text=mutations(GENESIS_JSON, "json") | st.binary(max_size=200))
@example(text=GENESIS_JSON.replace(b'"testnet"', b'"testne\xff"'))  # not UTF-8
@example(text=b"[" * 5000 + b"]" * 5000)  # nested past the recursion limit
@example(text=GENESIS_JSON.replace(b'"time": 1700000000', b'"time": 1' + b"0" * 30))
@example(text=GENESIS_JSON.replace(b'"burn_bps": ', b'"block_time": 1, "burn_bps": '))
@example(text=GENESIS_JSON.replace(b'"min_fee": "', b'"min_fee": "' + b"1" * 5000))
def test_any_genesis_file_is_a_genesis_or_says_what_is_wrong(text: bytes) -> None:
    try:
        genesis = genesis_from_json(text)
    except GenesisInvalidError:
        return
    assert genesis_from_json(genesis_to_json(genesis)) == genesis
