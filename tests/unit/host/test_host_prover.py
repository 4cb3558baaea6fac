"""The prover's core against the real contracts: which windows are due, proofs the
chain accepts, and the totals an operator sees."""

from __future__ import annotations

import hashlib

from contracts import (
    BlockContext,
    Params,
    State,
    apply,
    begin_block,
    contract_id,
    decode_tx,
    genesis_state,
    nonce_of,
    tokens,
    verify_tx,
)
from contracts.encoding import encode
from contracts.events import ContractClosed, Event, ProofAccepted, WindowSettled
from contracts.tx import SubmitProof
from storenode.coding.merkle import MerkleTree
from storenode.host.book import BookContract, BookState
from storenode.host.earnings import Totals, totals
from storenode.host.messages import ShardRef
from storenode.host.prover import TipView, build_proof, proofs_due
from storenode.testing.ledger import CHAIN_ID, StoredData, account, open_contract, signed

PUBLISHER, HOST = account(0), account(1)
WINDOW = 3


class Ledger:
    """Blocks applied to a state, as a node would, without a chain store."""

    def __init__(self) -> None:
        params = Params(chain_id=CHAIN_ID, min_window_blocks=2, min_fee=tokens("0.0001"))
        allocations = {a.address: tokens(1000) for a in (PUBLISHER, HOST)}
        self.state: State = genesis_state(allocations, params)
        self.height = 0
        self.events: list[Event] = []
        self.block()

    def block(self, *raws: bytes) -> None:
        """Commit the block under way and apply the next one, with ``raws``."""
        self.height += 1
        ctx = BlockContext(
            height=self.height,
            time=1_700_000_000 + self.height,
            producer=account(7).address,
            previous_hash=hashlib.sha256(b"%d" % self.height).digest(),
        )
        self.state, events = begin_block(self.state.commit(), ctx)
        self.events.extend(events)
        for raw in raws:
            self.state, events = apply(self.state, verify_tx(decode_tx(raw)), ctx)
            self.events.extend(events)
        self.state = self.state.commit()

    def view(self, pending: frozenset[tuple[bytes, int]] = frozenset()) -> TipView:
        return TipView(self.height, self.state, nonce_of(self.state, HOST.address), pending)


def opened(ledger: Ledger, data: StoredData, windows: int = 3) -> BookContract:
    terms = data.terms(
        PUBLISHER,
        HOST,
        price=tokens(1),
        windows=windows,
        window_blocks=WINDOW,
        collateral=tokens(1),
    )
    cid, raw = open_contract(PUBLISHER, HOST, terms, nonce_of(ledger.state, PUBLISHER.address))
    ledger.block(raw)
    shards = tuple(ShardRef(i, 0, t.root) for i, t in enumerate(data.trees))
    assert cid == contract_id(terms)
    return BookContract(cid, terms, encode(terms), bytes(32), 1, 1, shards, BookState.ACTIVE, 1)


def prove(ledger: Ledger, data: StoredData, c: BookContract) -> tuple[Event, ...]:
    """Answer the due window of ``c`` with the prover's proof, in the next block."""
    (due,) = proofs_due(ledger.view(), [c])
    body = build_proof(due, data.chunks[due.chunk_index], MerkleTree(c.chunk_ids))
    before = len(ledger.events)
    ledger.block(signed(HOST, body, nonce_of(ledger.state, HOST.address)))
    return tuple(ledger.events[before:])


def test_the_prover_answers_an_open_window_with_a_proof_the_chain_accepts() -> None:
    ledger, data = Ledger(), StoredData.make(chunk_count=5, chunk_size=3000)
    c = opened(ledger, data)
    assert proofs_due(ledger.view(), [c]) == []  # the first window opens with the next block
    ledger.block()
    events = prove(ledger, data, c)
    assert ProofAccepted(c.id, 0) in events
    assert proofs_due(ledger.view(), [c]) == []  # proven: nothing more to do in this window


def test_a_window_is_not_due_while_its_proof_is_pending_or_when_no_block_is_left() -> None:
    ledger, data = Ledger(), StoredData.make()
    c = opened(ledger, data)
    ledger.block()  # window 0: this block and the next two
    (due,) = proofs_due(ledger.view(), [c])
    assert (due.window, due.end) == (0, ledger.height + WINDOW - 1)
    assert proofs_due(ledger.view(frozenset({(c.id, 0)})), [c]) == []
    ledger.block()
    ledger.block()  # the window's last block: the next one settles it
    assert ledger.height == due.end and proofs_due(ledger.view(), [c]) == []


def test_totals_follow_from_the_state_as_the_settlements_paid_and_burned() -> None:
    ledger, data = Ledger(), StoredData.make()
    c = opened(ledger, data, windows=3)
    ledger.block()
    prove(ledger, data, c)  # window 0 proven; windows 1 and 2 missed
    while not any(isinstance(e, ContractClosed) for e in ledger.events):
        ledger.block()
    settled = [e for e in ledger.events if isinstance(e, WindowSettled)]
    (closed,) = [e for e in ledger.events if isinstance(e, ContractClosed)]
    assert [e.proven for e in settled] == [True, False, False] and closed.penalty > 0
    assert totals(ledger.state, [c]) == Totals(
        windows_proven=1,
        windows_missed=2,
        earned=sum(e.paid for e in settled),
        burned=sum(e.burned for e in settled) + closed.penalty,
    )


def test_a_pending_contract_counts_nothing() -> None:
    ledger, data = Ledger(), StoredData.make()
    terms = data.terms(PUBLISHER, HOST)
    c = BookContract(
        contract_id(terms), terms, encode(terms), bytes(32), 1, 1, (), BookState.PENDING, 1
    )
    assert totals(ledger.state, [c]) == Totals()
    assert proofs_due(ledger.view(), [c]) == []


def test_a_proof_body_names_its_contract_and_window() -> None:
    ledger, data = Ledger(), StoredData.make()
    c = opened(ledger, data)
    ledger.block()
    (due,) = proofs_due(ledger.view(), [c])
    body = build_proof(due, data.chunks[due.chunk_index], MerkleTree(c.chunk_ids))
    assert isinstance(body, SubmitProof) and (body.contract_id, body.window) == (c.id, 0)
    assert (
        body.segment
        == data.chunks[due.chunk_index][due.segment_index * 1024 : (due.segment_index + 1) * 1024]
    )
