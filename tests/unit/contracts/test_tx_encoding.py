"""Canonical bytes: amounts, the transaction layout the spec documents, any
bytes a peer sends as a transaction, and entries read back from storage."""

from __future__ import annotations

import hashlib

import msgspec
import pytest
from contract_harness import ALICE, BOB, fingerprint
from hypothesis import example, given, settings
from hypothesis import strategies as st
from mutations import mutations

from contracts import (
    TOKEN,
    Amount,
    Burn,
    ContractTerms,
    OpenContract,
    RegisterWork,
    SignedTx,
    Transfer,
    Tx,
    TxMalformedError,
    decode_tx,
    encode_tx,
    sign_tx,
    tokens,
    tx_id,
    verify_tx,
)
from contracts.encoding import MAX_AMOUNT, Record, amount_bytes, decoder, encode
from contracts.entries import Account, account_key, decode_entry
from contracts.events import Burned, BurnReason
from contracts.tx import Body


class Holder(Record, frozen=True):
    amount: Amount


HOLDER = decoder(Holder)


def test_amount_is_an_int_of_base_units_within_256_bits() -> None:
    assert tokens(1) == TOKEN == 10**18
    assert tokens("0.25") == 25 * 10**16
    assert tokens("12.000000000000000001") == 12 * TOKEN + 1
    assert Amount(MAX_AMOUNT) == 2**256 - 1
    for bad in (-1, 2**256):
        with pytest.raises(ValueError):
            Amount(bad)
    with pytest.raises(TypeError):
        Amount(1.5)  # type: ignore[arg-type]
    for text in ("1.0000000000000000001", "-1", "1e3", ""):
        with pytest.raises(ValueError):
            tokens(text)


def test_plain_int_given_for_an_amount_is_stored_as_an_amount() -> None:
    body = Transfer(BOB.address, 5 * TOKEN)  # type: ignore[arg-type]
    assert type(body.amount) is Amount
    with pytest.raises(ValueError):
        Transfer(BOB.address, -1)  # type: ignore[arg-type]


@given(st.integers(0, MAX_AMOUNT))
def test_amount_round_trips_as_minimal_big_endian_bytes(value: int) -> None:
    raw = encode(Holder(Amount(value)))
    payload = msgspec.msgpack.decode(raw)[0]
    assert payload == value.to_bytes((value.bit_length() + 7) // 8, "big")
    assert HOLDER.decode(raw).amount == value


@pytest.mark.parametrize(
    "payload",
    [b"\x00", b"\x00\x01", b"\x01" * 33, 5, "5"],
    ids=["zero-byte", "leading-zero", "33-bytes", "msgpack-int", "string"],
)
def test_non_canonical_amount_is_refused(payload: object) -> None:
    with pytest.raises(msgspec.ValidationError):
        HOLDER.decode(msgspec.msgpack.encode([payload]))


def test_transfer_bytes_follow_the_documented_layout() -> None:
    tx = Tx("testnet", ALICE.public_key, 7, tokens("0.001"), Transfer(BOB.address, tokens(5)))
    expected = (
        "95"  # array of 5: the Tx
        "a7"
        + b"testnet".hex()  # chain id
        + "c420"
        + ALICE.public_key.hex()  # sender
        + "07"  # nonce
        + "c407"
        + "038d7ea4c68000"  # fee: 10**15 base units
        + "93"
        + "01"  # body: array of 3, tag 1 (Transfer)
        + "c414"
        + BOB.address.hex()  # to
        + "c408"
        + "4563918244f40000"  # amount: 5 * 10**18
    )
    assert encode(tx).hex() == expected
    assert tx_id(tx) == hashlib.sha256(bytes.fromhex(expected)).digest()
    signed = sign_tx(ALICE, tx)
    assert encode_tx(signed) == bytes.fromhex("92" + expected + "c440") + signed.signature
    assert verify_tx(decode_tx(encode_tx(signed))).tx_id == tx_id(tx)


def test_verified_transaction_names_its_sender_address() -> None:
    tx = Tx("testnet", ALICE.public_key, 0, tokens(1), Burn(tokens(1)))
    assert verify_tx(sign_tx(ALICE, tx)).sender == ALICE.address


def test_signing_with_a_key_other_than_the_sender_is_refused() -> None:
    tx = Tx("testnet", ALICE.public_key, 0, tokens(1), Burn(tokens(1)))
    with pytest.raises(ValueError):
        sign_tx(BOB, tx)


def _signed(body: Body) -> bytes:
    return encode_tx(sign_tx(ALICE, Tx("testnet", ALICE.public_key, 3, tokens("0.001"), body)))


TERMS = ContractTerms(
    chain_id="testnet",
    publisher=ALICE.public_key,
    host=BOB.public_key,
    root=fingerprint(1),
    chunk_count=3,
    chunk_size=2560,
    price_per_window=tokens("0.5"),
    windows=10,
    window_blocks=4,
    collateral=tokens(1),
    accept_until=60,
    salt=7,
)
AMOUNT_5 = msgspec.msgpack.encode(amount_bytes(tokens(5)))
SIGNED_TXS = [
    _signed(Transfer(BOB.address, tokens(5))),
    _signed(RegisterWork(fingerprint(1), "Track 1", "1", "2024-01-01", "Alice", fingerprint(2))),
    _signed(OpenContract(TERMS, bytes(64))),
]


@settings(max_examples=300, deadline=None)
@given(raw=st.sampled_from(SIGNED_TXS).flatmap(mutations) | st.binary(max_size=300))
@example(raw=SIGNED_TXS[0].replace(b"testnet", b"testne\xff"))  # a chain id that is not UTF-8
@example(raw=SIGNED_TXS[1].replace(b"Track 1", b"Track \xc3"))
@example(raw=SIGNED_TXS[0].replace(AMOUNT_5, b"\x91" * 3000 + b"\xc0"))  # nested past the limit
def test_any_bytes_are_a_canonical_transaction_or_malformed(raw: bytes) -> None:
    try:
        signed = decode_tx(raw)
    except TxMalformedError:  # TxOversizeError is one
        return
    assert isinstance(signed, SignedTx) and encode_tx(signed) == raw


def test_entries_read_back_from_storage() -> None:
    account = Account(balance=tokens(5), nonce=3)
    assert (
        encode(account).hex()
        == "95" + "c408" + "4563918244f40000" + "03" + "c4" + "00" + "00" + "00"
    )
    assert decode_entry(account_key(ALICE.address), encode(account)) == account
    with pytest.raises(ValueError):
        decode_entry(b"\x7f\x00\x00", encode(account))  # no such tag
    with pytest.raises(ValueError):
        decode_entry(account_key(ALICE.address), b"\x91\x01")


def test_events_encode_like_transaction_bodies() -> None:
    event = Burned(ALICE.address, tokens(1), BurnReason.PAYOUT)
    assert msgspec.msgpack.decode(encode(event))[0] == 3  # the tag leads
    assert decoder(Burned).decode(encode(event)) == event
