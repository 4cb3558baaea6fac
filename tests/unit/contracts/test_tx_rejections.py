"""Transactions that must not apply: forged, replayed, malformed, oversized,
for another chain, unaffordable. Each gets its typed error and a stable
reason, and the state is left exactly as it was."""

from __future__ import annotations

import msgspec
import pytest
from contract_harness import ALICE, BOB, START_BALANCE, Chain
from msgspec.structs import replace

from contracts import (
    MAX_TX_SIZE,
    Amount,
    BlockContext,
    SubmitProof,
    Transfer,
    apply,
    balance_of,
    decode_tx,
    encode_tx,
    nonce_of,
    tokens,
    verify_tx,
)
from contracts.errors import (
    BalanceInsufficientError,
    BlockContextError,
    ChainIdMismatchError,
    FeeTooLowError,
    NonceGapError,
    NonceReplayedError,
    TxMalformedError,
    TxOversizeError,
    TxRejectedError,
    TxSignatureInvalidError,
)


@pytest.fixture
def chain() -> Chain:
    return Chain()


def assert_unchanged(chain: Chain, before_root: bytes) -> None:
    assert chain.state.root == before_root
    assert balance_of(chain.state, ALICE.address) == START_BALANCE
    assert nonce_of(chain.state, ALICE.address) == 0


def test_forged_signature_is_rejected(chain: Chain) -> None:
    signed = chain.signed(ALICE, Transfer(BOB.address, tokens(1)))
    forged = replace(signed, signature=bytes(64))
    with pytest.raises(TxSignatureInvalidError) as caught:
        verify_tx(forged)
    assert caught.value.reason == "bad_signature"


def test_signature_over_other_bytes_is_rejected(chain: Chain) -> None:
    signed = chain.signed(ALICE, Transfer(BOB.address, tokens(1)))
    raised = replace(signed.tx, body=Transfer(BOB.address, tokens(1_000)))
    with pytest.raises(TxSignatureInvalidError):
        verify_tx(replace(signed, tx=raised))


def test_transaction_signed_by_another_key_is_rejected(chain: Chain) -> None:
    mine = chain.signed(BOB, Transfer(BOB.address, tokens(1)))
    claimed = replace(mine.tx, sender=ALICE.public_key)
    with pytest.raises(TxSignatureInvalidError):
        verify_tx(replace(mine, tx=claimed))


def test_replayed_nonce_is_rejected_and_changes_nothing(chain: Chain) -> None:
    vtx = verify_tx(chain.signed(ALICE, Transfer(BOB.address, tokens(1))))
    chain.apply(vtx)
    after_first = chain.state.root
    with pytest.raises(NonceReplayedError) as caught:
        chain.apply(vtx)
    assert caught.value.reason == "nonce_replayed"
    assert chain.state.root == after_first
    chain.begin()  # still a replay in a later block
    with pytest.raises(NonceReplayedError):
        chain.apply(vtx)


def test_nonce_ahead_of_the_account_is_rejected(chain: Chain) -> None:
    before = chain.state.root
    with pytest.raises(NonceGapError):
        chain.send(ALICE, Transfer(BOB.address, tokens(1)), nonce=1)
    assert_unchanged(chain, before)


def test_wrong_chain_id_is_rejected_and_changes_nothing(chain: Chain) -> None:
    before = chain.state.root
    with pytest.raises(ChainIdMismatchError) as caught:
        chain.send(ALICE, Transfer(BOB.address, tokens(1)), chain_id="othernet")
    assert caught.value.reason == "wrong_chain"
    assert_unchanged(chain, before)


def test_insufficient_balance_is_rejected_and_changes_nothing(chain: Chain) -> None:
    before = chain.state.root
    with pytest.raises(BalanceInsufficientError) as caught:
        chain.send(ALICE, Transfer(BOB.address, START_BALANCE + 1))
    assert caught.value.reason == "insufficient_balance"
    assert_unchanged(chain, before)


def test_an_overdraft_is_explained_in_tokens_not_base_units(chain: Chain) -> None:
    with pytest.raises(BalanceInsufficientError) as caught:
        chain.send(ALICE, Transfer(BOB.address, tokens("2000000.5")))
    message = str(caught.value)
    assert "2000000.5 tokens" in message
    assert "base units" not in message and "Amount(" not in message


def test_fee_below_the_minimum_is_rejected(chain: Chain) -> None:
    before = chain.state.root
    with pytest.raises(FeeTooLowError):
        chain.send(ALICE, Transfer(BOB.address, tokens(1)), fee=tokens("0.00001"))
    assert_unchanged(chain, before)


def test_fee_above_the_balance_is_rejected(chain: Chain) -> None:
    with pytest.raises(BalanceInsufficientError):
        chain.send(ALICE, Transfer(BOB.address, Amount(0)), fee=START_BALANCE + 1)


def test_rejected_transaction_leaves_the_given_state_untouched(chain: Chain) -> None:
    state = chain.state
    root = state.root
    vtx = verify_tx(chain.signed(ALICE, Transfer(BOB.address, START_BALANCE * 2)))
    assert chain.ctx is not None
    with pytest.raises(TxRejectedError):
        apply(state, vtx, chain.ctx)
    assert state.root == root and state.commit().root == root


def test_transaction_applied_outside_its_block_is_a_context_error(chain: Chain) -> None:
    vtx = verify_tx(chain.signed(ALICE, Transfer(BOB.address, tokens(1))))
    assert chain.ctx is not None
    later = BlockContext(5, chain.ctx.time, chain.ctx.producer, chain.ctx.previous_hash)
    with pytest.raises(BlockContextError):
        apply(chain.state, vtx, later)


# -- bytes -------------------------------------------------------------------------------


def good_bytes(chain: Chain) -> bytes:
    return encode_tx(chain.signed(ALICE, Transfer(BOB.address, tokens(1))))


def test_canonical_bytes_decode_to_the_signed_transaction(chain: Chain) -> None:
    signed = chain.signed(ALICE, Transfer(BOB.address, tokens(1)))
    assert decode_tx(encode_tx(signed)) == signed


@pytest.mark.parametrize(
    "mangle",
    [
        lambda raw: b"",
        lambda raw: b"\xc1",  # never used in msgpack
        lambda raw: raw[:-1],  # truncated
        lambda raw: raw + b"\x00",  # trailing byte
        lambda raw: b"\x93" + raw[1:] + b"\x00",  # an extra field
        lambda raw: raw.replace(b"testnet", b"TESTNET"),  # chain id outside its pattern
    ],
    ids=["empty", "invalid-msgpack", "truncated", "trailing", "extra-field", "bad-chain-id"],
)
def test_malformed_bytes_are_rejected(chain: Chain, mangle: object) -> None:
    raw = good_bytes(chain)
    with pytest.raises(TxMalformedError) as caught:
        decode_tx(mangle(raw))  # type: ignore[operator]
    assert caught.value.reason == "malformed"


def test_unknown_body_tag_is_rejected(chain: Chain) -> None:
    tx = msgspec.msgpack.decode(good_bytes(chain))
    tx[0][4][0] = 99
    with pytest.raises(TxMalformedError):
        decode_tx(msgspec.msgpack.encode(tx))


def test_non_canonical_encoding_is_rejected(chain: Chain) -> None:
    raw = good_bytes(chain)
    # the nonce 0 as a uint8 (cc 00) instead of the one-byte fixint 00
    tx = msgspec.msgpack.decode(raw)
    head = msgspec.msgpack.encode(tx[0][:2])[1:]
    at = raw.index(head) + len(head)
    assert raw[at : at + 1] == b"\x00"
    stretched = raw[:at] + b"\xcc\x00" + raw[at + 1 :]
    assert msgspec.msgpack.decode(stretched) == tx
    with pytest.raises(TxMalformedError, match="canonical"):
        decode_tx(stretched)


def test_amount_with_a_leading_zero_byte_is_rejected(chain: Chain) -> None:
    tx = msgspec.msgpack.decode(good_bytes(chain))
    tx[0][4][2] = b"\x00" + tx[0][4][2]
    with pytest.raises(TxMalformedError):
        decode_tx(msgspec.msgpack.encode(tx))


def test_oversized_transaction_is_rejected_before_decoding(chain: Chain) -> None:
    with pytest.raises(TxOversizeError) as caught:
        decode_tx(b"\x00" * (MAX_TX_SIZE + 1))
    assert caught.value.reason == "oversize"


def test_largest_proof_transaction_fits(chain: Chain) -> None:
    body = SubmitProof(bytes(32), 2**32 - 1, bytes(1024), bytes(2 + 2 * 18 + 64 * 32))
    raw = encode_tx(chain.signed(ALICE, body))
    assert len(raw) <= MAX_TX_SIZE
    assert decode_tx(raw).tx.body == body


def test_transaction_built_in_python_is_checked_like_one_received(chain: Chain) -> None:
    from contracts import ContractTerms, OpenContract

    terms = ContractTerms(
        "testnet",
        ALICE.public_key,
        BOB.public_key,
        bytes(32),
        0,
        1024,
        Amount(1),
        1,
        5,
        Amount(0),
        10,
        0,
    )  # no chunks: no decoder would let this through
    signed = chain.signed(ALICE, OpenContract(terms, bytes(64)))
    with pytest.raises(TxMalformedError):
        verify_tx(signed)
