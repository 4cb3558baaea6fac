"""The chain: producers and followers agree byte for byte, invalid blocks change
nothing, proposers rotate, and a block's events come back for the caller to act on."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import msgspec
import pytest
from conftest import ChainFactory

from contracts import (
    Amount,
    Burn,
    Event,
    RegisterWork,
    balance_of,
    begin_block,
    challenge_of,
    tokens,
)
from contracts.events import (
    ContractClosed,
    ProofAccepted,
    WindowOpened,
    WindowSettled,
    WorkRegistered,
)
from storenode.identity import Identity
from storenode.ledger import (
    Block,
    BlockInvalidError,
    BlockNotNextError,
    Chain,
    Genesis,
    ProposerNotScheduledError,
    encode_block,
    sign_block,
    tx_root,
)
from storenode.testing.ledger import (
    GENESIS_TIME,
    StoredData,
    account,
    funded_genesis,
    open_contract,
    signed,
    transfer,
    validator,
)

A, B, C, HOST = account(0), account(1), account(2), account(3)
V0 = validator(0)


def db_items(chain: Chain) -> dict[bytes, bytes]:
    return dict(chain.store.db.iterator())


def run_workload(chain: Chain, blocks: int, *, data: StoredData) -> tuple[list[Block], list[Event]]:
    """Blocks of mixed transactions by ``chain``'s only validator: transfers,
    a burn, a registered work, a storage contract and its proofs."""
    produced = []
    events: list[Event] = []
    terms = data.terms(A, HOST, windows=2, window_blocks=4, price=tokens(3))
    cid = None
    for h in range(1, blocks + 1):
        nonce = chain.mempool.next_nonce
        if h == 1:
            cid, raw = open_contract(A, HOST, terms, nonce(A.address))
            chain.submit_tx(raw)
        chain.submit_tx(transfer(B, C.address, tokens(h), nonce(B.address)))
        chain.submit_tx(transfer(C, A.address, h, nonce(C.address)))
        if h == 2:
            chain.submit_tx(signed(B, Burn(Amount(tokens(1))), nonce(B.address)))
            fingerprint = hashlib.sha256(b"a work").digest()
            work = RegisterWork(fingerprint, "Song", "1", "2024-01-01", "Artist", fingerprint)
            chain.submit_tx(signed(C, work, nonce(C.address)))
        assert cid is not None
        begun = begin_block(chain.state, chain.next_context())[0]
        challenge = challenge_of(begun, cid)
        if challenge is not None and not challenge.proven:
            chain.submit_tx(signed(HOST, data.proof_body(begun, cid), nonce(HOST.address)))
        applied = chain.produce_block(V0, GENESIS_TIME + 5 * h)
        assert applied.dropped == ()
        produced.append(applied.block)
        events += applied.events
    return produced, events


def test_two_followers_fed_the_same_blocks_store_identical_bytes(
    open_chain: ChainFactory,
) -> None:
    producer = open_chain("producer")
    blocks, events = run_workload(producer, 12, data=StoredData.make())
    kinds = [type(e) for e in events]
    assert kinds.count(ProofAccepted) == 2 and ContractClosed in kinds and WorkRegistered in kinds
    followers = [open_chain("f1"), open_chain("f2")]
    for block in blocks:
        now = block.header.time
        roots = {f.verify_and_apply(encode_block(block), now).hash for f in followers}
        assert roots == {block.hash}
        assert {f.state.root for f in followers} == {block.header.state_root}
    assert producer.state.root == followers[0].state.root == followers[1].state.root
    assert db_items(followers[0]) == db_items(followers[1]) == db_items(producer)
    assert len(list(followers[0].store.state_entries())) == len(followers[0].state)


# -- invalid blocks -------------------------------------------------------------------


def resign(
    block: Block, signer: Identity, txs: Sequence[bytes] | None = None, **kw: object
) -> Block:
    """``block`` with header fields changed (and other transactions), signed again."""
    txs = block.transactions if txs is None else tuple(txs)
    header = msgspec.structs.replace(block.header, tx_root=tx_root(txs))
    header = msgspec.structs.replace(header, **kw)
    return sign_block(signer, header, txs)


def flip_signature(block: Block) -> Block:
    return msgspec.structs.replace(
        block, signature=bytes([block.signature[0] ^ 1]) + block.signature[1:]
    )


BAD_BLOCKS: list[tuple[str, Callable[[Block, Block], Block | bytes], str]] = [
    ("bad_signature", lambda b, prev: flip_signature(b), "bad_signature"),
    (
        "signed_by_stranger",
        lambda b, prev: resign(b, account(5), producer=account(5).public_key),
        "wrong_proposer",
    ),
    ("wrong_previous", lambda b, prev: resign(b, V0, previous_hash=b"\x00" * 32), "wrong_previous"),
    ("wrong_state_root", lambda b, prev: resign(b, V0, state_root=b"\x00" * 32), "bad_state_root"),
    (
        "tx_root_mismatch",
        lambda b, prev: msgspec.structs.replace(b, transactions=b.transactions[:1]),
        "bad_tx_root",
    ),
    (
        "replayed_tx",
        lambda b, prev: resign(b, V0, txs=[*b.transactions, prev.transactions[0]]),
        "bad_tx",
    ),
    (
        "forged_tx",
        lambda b, prev: resign(b, V0, txs=[transfer(A, C.address, 1, 2)[:-64] + bytes(64)]),
        "bad_tx",
    ),
    ("malformed_tx", lambda b, prev: resign(b, V0, txs=[b"\x92\x01\x02"]), "bad_tx"),
    (
        "time_not_after_previous",
        lambda b, prev: resign(b, V0, time=prev.header.time),
        "time_not_after_previous",
    ),
    ("time_in_future", lambda b, prev: resign(b, V0, time=GENESIS_TIME + 10_000), "time_in_future"),
    ("malformed_bytes", lambda b, prev: encode_block(b)[:-3], "malformed"),
]


@pytest.mark.parametrize(("name", "mangle", "reason"), BAD_BLOCKS, ids=[b[0] for b in BAD_BLOCKS])
def test_invalid_block_is_rejected_and_leaves_the_store_untouched(
    open_chain: ChainFactory,
    name: str,
    mangle: Callable[[Block, Block], Block | bytes],
    reason: str,
) -> None:
    producer, follower = open_chain("p"), open_chain("f")
    producer.submit_tx(transfer(A, C.address, 5, 0))
    first = producer.produce_block(V0, GENESIS_TIME + 5).block
    follower.verify_and_apply(first, GENESIS_TIME + 5)
    producer.submit_tx(transfer(A, C.address, 5, 1))
    producer.submit_tx(transfer(B, C.address, 5, 0))
    good = producer.produce_block(V0, GENESIS_TIME + 10).block
    pending = follower.submit_tx(transfer(C, A.address, 1, 0))
    before = (follower.tip, follower.state.root, db_items(follower))
    with pytest.raises(BlockInvalidError) as info:
        follower.verify_and_apply(mangle(good, first), GENESIS_TIME + 10)
    assert info.value.reason == reason, name
    assert (follower.tip, follower.state.root, db_items(follower)) == before
    assert pending.tx_id in follower.mempool
    follower.verify_and_apply(good, GENESIS_TIME + 10)  # the real one still applies
    assert follower.state.root == producer.state.root


def test_bad_transaction_names_its_index_and_reason(open_chain: ChainFactory) -> None:
    producer, follower = open_chain("p"), open_chain("f")
    producer.submit_tx(transfer(A, C.address, 5, 0))
    block = producer.produce_block(V0, GENESIS_TIME + 5).block
    replay = resign(block, V0, txs=[*block.transactions, *block.transactions])
    with pytest.raises(BlockInvalidError) as info:
        follower.verify_and_apply(replay, GENESIS_TIME + 5)
    assert (info.value.tx_index, info.value.tx_reason) == (1, "nonce_replayed")


def test_block_that_is_not_the_next_is_refused_without_being_judged(
    open_chain: ChainFactory,
) -> None:
    producer, follower = open_chain("p"), open_chain("f")
    blocks = [producer.produce_block(V0, GENESIS_TIME + 5 * h).block for h in (1, 2, 3)]
    with pytest.raises(BlockNotNextError) as info:
        follower.verify_and_apply(blocks[2], GENESIS_TIME + 15)
    assert info.value.ahead and (info.value.height, info.value.tip) == (3, 0)
    follower.verify_and_apply(blocks[0], GENESIS_TIME + 15)
    with pytest.raises(BlockNotNextError) as info:
        follower.verify_and_apply(blocks[0], GENESIS_TIME + 15)
    assert not info.value.ahead


def test_block_over_the_genesis_size_limit_is_rejected(
    open_chain: ChainFactory, tmp_path: Path
) -> None:
    small = funded_genesis(8, max_block_txs=2)
    big = funded_genesis(8, max_block_txs=3)
    producer = open_chain("p", big)
    for who in (A, B, C):
        producer.submit_tx(transfer(who, HOST.address, 1, 0))
    block = producer.produce_block(V0, GENESIS_TIME + 5).block
    assert len(block.transactions) == 3
    # The same bytes under a genesis that allows two: only the limit differs,
    # so relabel the block as that chain's (previous hash = its genesis hash).
    follower = open_chain("f", small)
    relabelled = resign(block, V0, previous_hash=small.hash)
    with pytest.raises(BlockInvalidError) as info:
        follower.verify_and_apply(relabelled, GENESIS_TIME + 5)
    assert info.value.reason == "too_large"


# -- validators -----------------------------------------------------------------------


def test_three_validators_take_turns_and_a_turn_cannot_be_taken(
    open_chain: ChainFactory,
) -> None:
    genesis = funded_genesis(8, validators=3)
    nodes = [open_chain(f"v{i}", genesis) for i in range(3)]
    follower = open_chain("follower", genesis)
    producers = []
    for h in range(1, 7):
        scheduled = validator(h % 3)
        for i, node in enumerate(nodes):
            assert node.next_proposer() == scheduled.public_key
            if validator(i) != scheduled:
                with pytest.raises(ProposerNotScheduledError):
                    node.produce_block(validator(i), GENESIS_TIME + 5 * h)
        maker = nodes[h % 3]
        maker.submit_tx(transfer(A, B.address, h, h - 1))
        block = maker.produce_block(scheduled, GENESIS_TIME + 5 * h).block
        producers.append(block.header.producer)
        # A rival block for the same height by a validator whose turn it is not.
        other = validator((h + 1) % 3)
        rival = resign(block, other, producer=other.public_key)
        with pytest.raises(BlockInvalidError) as info:
            follower.verify_and_apply(rival, GENESIS_TIME + 5 * h)
        assert info.value.reason == "wrong_proposer"
        for node in [*nodes, follower]:
            if node is not maker:
                node.verify_and_apply(block, GENESIS_TIME + 5 * h)
    assert producers == [validator(h % 3).public_key for h in range(1, 7)]
    assert len({n.state.root for n in [*nodes, follower]}) == 1
    # Fees went to whoever produced each block.
    assert all(balance_of(follower.state, validator(i).address) > 0 for i in range(3))


# -- apply, then act ------------------------------------------------------------------


class Recorder:
    """An indexer that records, in the block's own batch, the windows a host must prove."""

    def __init__(self, host: bytes) -> None:
        self.host = host

    def writes_for(self, block: Block, events: Sequence[Event]) -> Iterable[tuple[bytes, bytes]]:
        for event in events:
            if isinstance(event, WindowOpened):
                yield b"host/window/" + event.contract_id, event.window.to_bytes(4, "big")


def test_applied_block_returns_the_events_a_host_acts_on_after_the_commit(
    open_chain: ChainFactory,
) -> None:
    data = StoredData.make()
    chain = open_chain(indexers=[Recorder(HOST.address)])
    terms = data.terms(A, HOST, windows=2, window_blocks=2, price=tokens(10))
    cid, raw = open_contract(A, HOST, terms, 0)
    chain.submit_tx(raw)
    chain.produce_block(V0, GENESIS_TIME + 5)
    opened = chain.produce_block(V0, GENESIS_TIME + 10)
    windows = [e for e in opened.events if isinstance(e, WindowOpened)]
    assert [(w.contract_id, w.window) for w in windows] == [(cid, 0)]
    # The indexer's write landed with the block; the host now acts on the event.
    assert chain.store.db.get(b"host/window/" + cid) == b"\x00\x00\x00\x00"
    chain.submit_tx(signed(HOST, data.proof_body(chain.state, cid), 0))
    proven = chain.produce_block(V0, GENESIS_TIME + 15)
    assert ProofAccepted(cid, 0) in proven.events
    settled = chain.produce_block(V0, GENESIS_TIME + 20)
    paid = [e for e in settled.events if isinstance(e, WindowSettled)]
    assert [(p.window, p.proven, int(p.paid)) for p in paid] == [(0, True, tokens("9.8"))]


def test_follower_reuses_the_signature_checks_of_its_mempool(
    open_chain: ChainFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    producer, follower = open_chain("p"), open_chain("f")
    raw = transfer(A, B.address, 5, 0)
    producer.submit_tx(raw)
    follower.submit_tx(raw)
    block = producer.produce_block(V0, GENESIS_TIME + 5).block
    import storenode.ledger.verify as verify_module

    def no_verify(*_: object) -> None:
        raise AssertionError("the signature was checked again")

    monkeypatch.setattr(verify_module, "verify_tx", no_verify)
    follower.verify_and_apply(block, GENESIS_TIME + 5)
    assert follower.state.root == producer.state.root and len(follower.mempool) == 0


def test_reopened_chain_continues_from_its_tip(tmp_path: Path, genesis: Genesis) -> None:
    with Chain.open(tmp_path / "c", genesis) as chain:
        chain.submit_tx(transfer(A, B.address, 5, 0))
        chain.produce_block(V0, GENESIS_TIME + 5)
        tip, root = chain.tip, chain.state.root
    with Chain.open(tmp_path / "c", genesis) as chain:
        assert (chain.tip, chain.state.root) == (tip, root)
        chain.submit_tx(transfer(A, B.address, 5, 1))
        assert chain.produce_block(V0, GENESIS_TIME + 10).height == 2
