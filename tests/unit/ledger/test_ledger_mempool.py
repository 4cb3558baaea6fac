"""The mempool: refusals at the door with a reason, fee-and-nonce order,
replacement, queued gaps, re-checks after a block, and floods that stay bounded."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable

import pytest
from conftest import ChainFactory
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts import (
    Amount,
    Approve,
    BlockContext,
    TransferFrom,
    balance_of,
    nonce_of,
    tokens,
)
from contracts.tx import MAX_TX_SIZE
from storenode.identity import Identity
from storenode.ledger import (
    Chain,
    Genesis,
    Mempool,
    MempoolLimits,
    Tip,
    TxRejectedError,
    build_block,
)
from storenode.testing.ledger import (
    FEE,
    GENESIS_TIME,
    account,
    funded_genesis,
    signed,
    transfer,
    validator,
)

A, B, C = account(0), account(1), account(2)
V0 = validator(0)
NOW = GENESIS_TIME + 5


def pay(who: Identity, nonce: int, *, fee: int = FEE, amount: int = 5, to: bytes = b"") -> bytes:
    return transfer(who, to or C.address, amount, nonce, fee=fee)


def forged(nonce: int) -> bytes:
    """A's transfer signed by B's key."""
    raw = bytearray(pay(A, nonce))
    good_b = pay(B, nonce)
    raw[-64:] = good_b[-64:]
    return bytes(raw)


def snapshot(chain: Chain) -> tuple[object, ...]:
    pool = chain.mempool
    return (chain.tip, chain.state.root, len(pool), pool.size_bytes, pool.take(10**6, 10**9))


REJECTIONS: list[tuple[str, Callable[[], bytes], str]] = [
    ("forged", lambda: forged(0), "bad_signature"),
    ("malformed", lambda: b"\x92\x01\x02", "malformed"),
    ("non_canonical", lambda: pay(A, 0).replace(b"\x95", b"\xdc\x00\x05", 1), "malformed"),
    ("oversized", lambda: b"\x92" + b"\x00" * MAX_TX_SIZE, "oversize"),
    ("wrong_chain", lambda: transfer(A, C.address, 5, 0, chain_id="otherchain"), "wrong_chain"),
    ("fee_too_low", lambda: pay(A, 0, fee=1), "fee_too_low"),
    ("insufficient_balance", lambda: pay(A, 0, amount=tokens(2_000_000)), "insufficient_balance"),
    ("nonce_too_far", lambda: pay(A, 17), "nonce_too_far"),
]


@pytest.mark.parametrize(("name", "make", "reason"), REJECTIONS, ids=[r[0] for r in REJECTIONS])
def test_invalid_transaction_is_refused_with_its_reason_and_changes_nothing(
    open_chain: ChainFactory, name: str, make: Callable[[], bytes], reason: str
) -> None:
    chain = open_chain()
    chain.submit_tx(pay(B, 0))
    before = snapshot(chain)
    with pytest.raises(TxRejectedError) as info:
        chain.submit_tx(make())
    assert info.value.reason == reason, name
    assert snapshot(chain) == before


def test_replayed_transaction_is_refused_once_committed(open_chain: ChainFactory) -> None:
    chain = open_chain()
    raw = pay(A, 0)
    chain.submit_tx(raw)
    with pytest.raises(TxRejectedError) as info:
        chain.submit_tx(raw)
    assert info.value.reason == "duplicate"
    chain.produce_block(validator(0), NOW)
    before = snapshot(chain)
    for again in (raw, pay(A, 0, amount=6)):
        with pytest.raises(TxRejectedError) as info:
            chain.submit_tx(again)
        assert info.value.reason == "nonce_replayed"
    assert snapshot(chain) == before


def test_balance_check_counts_the_senders_earlier_pending_transactions(
    open_chain: ChainFactory,
) -> None:
    chain = open_chain()
    half = tokens(600_000)
    chain.submit_tx(pay(A, 0, amount=half))
    with pytest.raises(TxRejectedError) as info:
        chain.submit_tx(pay(A, 1, amount=half))
    assert info.value.reason == "insufficient_balance"


def test_best_fee_goes_first_across_senders_and_nonces_stay_in_order(
    open_chain: ChainFactory,
) -> None:
    chain = open_chain()
    a0 = chain.submit_tx(pay(A, 0, fee=FEE))
    a1 = chain.submit_tx(pay(A, 1, fee=100 * FEE))
    b0 = chain.submit_tx(pay(B, 0, fee=50 * FEE))
    assert chain.mempool.take(10, 10**6) == [b0, a0, a1]
    assert chain.mempool.take(2, 10**6) == [b0, a0]
    assert chain.mempool.take(10, len(b0.raw) + len(a0.raw)) == [b0, a0]
    applied = chain.produce_block(validator(0), NOW)
    assert applied.tx_ids == (b0.tx_id, a0.tx_id, a1.tx_id)
    assert len(chain.mempool) == 0


def test_nonce_gap_waits_queued_until_it_fills(open_chain: ChainFactory) -> None:
    chain = open_chain()
    later = chain.submit_tx(pay(A, 1))
    assert later.tx_id in chain.mempool and chain.mempool.take(10, 10**6) == []
    first = chain.submit_tx(pay(A, 0))
    assert chain.mempool.take(10, 10**6) == [first, later]
    assert chain.mempool.next_nonce(A.address) == 2


def test_replacement_needs_a_ten_percent_higher_fee(open_chain: ChainFactory) -> None:
    chain = open_chain()
    chain.submit_tx(pay(A, 0, fee=10 * FEE))
    with pytest.raises(TxRejectedError) as info:
        chain.submit_tx(pay(A, 0, fee=10 * FEE + 1, amount=7))
    assert info.value.reason == "replacement_underpriced"
    better = chain.submit_tx(pay(A, 0, fee=11 * FEE, amount=7))
    assert chain.mempool.take(10, 10**6) == [better] and len(chain.mempool) == 1


def test_failing_transaction_is_left_out_of_the_block_and_dropped(
    open_chain: ChainFactory,
) -> None:
    # B may move all of A's balance; B's transfer-from pays more, so it goes
    # first, and A's own transfer then fails in the block.
    chain = open_chain()
    everything = balance_of(chain.state, A.address) - 2 * FEE
    chain.submit_tx(signed(A, Approve(B.address, Amount(everything)), 0))
    chain.produce_block(validator(0), NOW)
    drain = chain.submit_tx(
        signed(B, TransferFrom(A.address, C.address, Amount(everything)), 0, fee=10 * FEE)
    )
    doomed = chain.submit_tx(pay(A, 1, amount=tokens(1)))
    applied = chain.produce_block(validator(0), NOW + 5)
    assert applied.tx_ids == (drain.tx_id,)
    assert [(d.tx_id, d.reason) for d in applied.dropped] == [
        (doomed.tx_id, "insufficient_balance")
    ]
    assert len(chain.mempool) == 0


def test_pending_transaction_that_a_new_block_invalidates_is_dropped(
    open_chain: ChainFactory,
) -> None:
    producer, follower = open_chain("p"), open_chain("f")
    everything = balance_of(producer.state, A.address) - 2 * FEE
    approve = signed(A, Approve(B.address, Amount(everything)), 0)
    producer.submit_tx(approve)
    follower.verify_and_apply(producer.produce_block(validator(0), NOW).block, NOW)
    pending = follower.submit_tx(pay(A, 1, amount=tokens(1)))
    producer.submit_tx(signed(B, TransferFrom(A.address, C.address, Amount(everything)), 0))
    applied = follower.verify_and_apply(producer.produce_block(validator(0), NOW + 5).block, NOW)
    assert [(d.tx_id, d.reason) for d in applied.dropped] == [
        (pending.tx_id, "insufficient_balance")
    ]
    assert pending.tx_id not in follower.mempool


# -- floods ---------------------------------------------------------------------------


def test_flood_from_one_sender_keeps_only_its_allowance(genesis: Genesis) -> None:
    limits = MempoolLimits(max_per_sender=64, max_nonce_gap=16)
    pool = Mempool(genesis.state(), _ctx(genesis), limits=limits)
    reasons: dict[str, int] = {}
    for nonce in range(10_000):
        try:
            pool.add(pay(A, nonce))
        except TxRejectedError as exc:
            reasons[exc.reason] = reasons.get(exc.reason, 0) + 1
    assert len(pool) == 64
    assert len(pool.take(10_000, 10**9)) == 64
    assert reasons == {"sender_full": 16 + 1, "nonce_too_far": 10_000 - 64 - 17}


SENDERS, PER_SENDER = 1_250, 8


@pytest.fixture(scope="module")
def flood() -> tuple[Genesis, list[tuple[int, bytes]]]:
    """10,000 transfers from 1,250 funded senders, 8 each; every sender pays
    its own fee, and they arrive interleaved."""
    rng = random.Random(7)
    genesis = funded_genesis(SENDERS, balance=tokens(10))
    fees = rng.sample(range(1, 100_000), SENDERS)
    txs = []
    for i in range(SENDERS):
        who = account(i)
        fee = FEE + fees[i] * 10**9
        txs += [(fee, transfer(who, C.address, 1, n, fee=fee)) for n in range(PER_SENDER)]
    order = sorted(range(len(txs)), key=lambda k: (k % PER_SENDER, rng.random()))
    return genesis, [txs[k] for k in order]


@pytest.mark.parametrize(
    "limits",
    [
        MempoolLimits(max_txs=1_500, max_bytes=10**9, max_per_sender=6),
        MempoolLimits(max_txs=10**6, max_bytes=150_000, max_per_sender=6),
    ],
    ids=["count_bound", "bytes_bound"],
)
def test_flood_from_many_senders_stays_bounded_and_keeps_the_best_fees(
    flood: tuple[Genesis, list[tuple[int, bytes]]], limits: MempoolLimits
) -> None:
    genesis, txs = flood
    pool = Mempool(genesis.state(), _ctx(genesis), limits=limits)
    refused_fees: list[int] = []
    reasons: dict[str, int] = {}
    for fee, raw in txs:
        try:
            pool.add(raw)
        except TxRejectedError as exc:
            reasons[exc.reason] = reasons.get(exc.reason, 0) + 1
            if exc.reason == "mempool_full":
                refused_fees.append(fee)
        assert len(pool) <= limits.max_txs and pool.size_bytes <= limits.max_bytes
    # A sender whose transactions were evicted may send more; the rest hit their cap.
    assert 0 < reasons["sender_full"] <= SENDERS * (PER_SENDER - limits.max_per_sender)
    assert reasons["mempool_full"] > 0
    full = len(pool) == limits.max_txs or pool.size_bytes > limits.max_bytes - MAX_TX_SIZE
    assert full
    kept = pool.take(10**6, 10**9)
    assert len(kept) == len(pool) > 900
    kept_fees = [int(v.tx.fee) for v in kept]
    kept_raws = {v.raw for v in kept}
    left_out = set(refused_fees) | {fee for fee, raw in txs if raw not in kept_raws}
    evicted_or_refused = left_out - set(kept_fees)
    assert min(kept_fees) >= max(evicted_or_refused)
    assert kept_fees == sorted(kept_fees, reverse=True)
    per_sender: dict[bytes, int] = {}
    for v in kept:
        per_sender[v.sender] = per_sender.get(v.sender, 0) + 1
    assert max(per_sender.values()) <= limits.max_per_sender


def _ctx(genesis: Genesis) -> BlockContext:
    return BlockContext(1, genesis.time + 5, validator(0).address, genesis.hash)


def test_full_pool_evicts_only_for_a_valid_better_paying_transaction(genesis: Genesis) -> None:
    pool = Mempool(genesis.state(), _ctx(genesis), limits=MempoolLimits(max_txs=3))
    cheap = [pool.add(pay(account(i), 0, fee=(i + 1) * FEE)) for i in range(3)]
    with pytest.raises(TxRejectedError) as info:
        pool.add(pay(account(3), 0, fee=FEE))
    assert info.value.reason == "mempool_full"
    forged_rich = bytearray(pay(account(3), 0, fee=100 * FEE))
    forged_rich[-1] ^= 1
    with pytest.raises(TxRejectedError) as info:
        pool.add(bytes(forged_rich))
    assert info.value.reason == "bad_signature"
    assert pool.take(10, 10**6) == cheap[::-1]
    rich = pool.add(pay(account(3), 0, fee=100 * FEE))
    assert pool.take(10, 10**6) == [rich, cheap[2], cheap[1]]
    # Never a predecessor of the newcomer: account 3's next rides on its first.
    pool.add(pay(account(3), 1, fee=2 * FEE + 1))
    assert cheap[1].tx_id not in pool and len(pool) == 3


# -- random arrivals ------------------------------------------------------------------

SENDERS_P = [account(i) for i in range(4)]
FEES_P = (FEE, 2 * FEE, 5 * FEE)
AMOUNTS_P = (5, tokens(400_000))  # the second drains a sender after two or three


@pytest.fixture(scope="module")
def presigned() -> dict[tuple[int, int, int, int], bytes]:
    """(sender, nonce, fee index, amount index) -> signed transfer."""
    return {
        (s, n, f, a): pay(SENDERS_P[s], n, fee=FEES_P[f], amount=AMOUNTS_P[a])
        for s in range(4)
        for n in range(8)
        for f in range(3)
        for a in range(2)
    }


@settings(max_examples=40)
@given(
    steps=st.lists(
        st.one_of(
            st.tuples(st.integers(0, 3), st.integers(0, 7), st.integers(0, 2), st.integers(0, 1)),
            st.just("block"),
        ),
        max_size=40,
    )
)
def test_pool_invariants_hold_over_random_arrivals_and_blocks(
    presigned: dict[tuple[int, int, int, int], bytes], steps: list[object]
) -> None:
    genesis = funded_genesis(4)
    limits = MempoolLimits(max_txs=9, max_bytes=10**6, max_per_sender=4, max_nonce_gap=2)
    state = genesis.state()
    tip = Tip(0, genesis.hash, genesis.time, state.root)
    pool = Mempool(state, _next_ctx(genesis, tip), limits=limits)
    for step in steps:
        if step == "block":
            built = build_block(genesis, tip, state, pool.take(10**6, 10**9), V0, tip.time + 5)
            assert built.failed == ()  # what the pool offers always applies
            state = built.state.commit()
            tip = Tip(tip.height + 1, built.block.hash, built.block.header.time, state.root)
            pool.remove_committed(built.block, built.tx_ids)
            pool.recheck(state, _next_ctx(genesis, tip))
        else:
            with contextlib.suppress(TxRejectedError):
                pool.add(presigned[step])  # type: ignore[index]
        assert len(pool) <= limits.max_txs and pool.size_bytes <= limits.max_bytes
        pending = {s.address: pool.pending(s.address) for s in SENDERS_P}
        assert len(pool) == sum(map(len, pending.values()))
        assert pool.size_bytes == sum(len(v.raw) for txs in pending.values() for v in txs)
        assert all(len(txs) <= limits.max_per_sender for txs in pending.values())
        offered = pool.take(10**6, 10**9)
        for who in SENDERS_P:
            nonces = [v.tx.nonce for v in offered if v.sender == who.address]
            base = nonce_of(state, who.address)
            assert nonces == list(range(base, pool.next_nonce(who.address)))


def _next_ctx(genesis: Genesis, tip: Tip) -> BlockContext:
    return BlockContext(tip.height + 1, tip.time + 5, V0.address, tip.hash)
