"""Storage contracts: every path of a contract's life, named after what a
publisher or a host would notice."""

from __future__ import annotations

import hashlib

import pytest
from contract_harness import ALICE, BOB, CAROL, FEE, START_BALANCE, Chain, StoredData

from contracts import (
    OpenContract,
    Status,
    SubmitProof,
    balance_of,
    challenge_of,
    contract_of,
    contracts_of,
    sign_terms,
    standing_of,
    tokens,
    total_burned,
    total_supply,
)
from contracts.entries import Role
from contracts.errors import (
    AcceptanceExpiredError,
    BalanceInsufficientError,
    ChainIdMismatchError,
    ContractClosedError,
    ContractExistsError,
    ContractUnknownError,
    PartySignatureInvalidError,
    ProofOutOfWindowError,
    ProofPathInvalidError,
    ProofSegmentWrongError,
    RevisionStaleError,
    SenderUnauthorizedError,
    TermsInvalidError,
    WindowProvenError,
)
from contracts.events import ContractClosed, WindowOpened, WindowSettled
from contracts.lifecycle import window_seed
from storenode.coding.merkle import ChainedProof, Proof

PRICE = tokens(10)
COLLATERAL = tokens(20)
WINDOWS = 4
W = 5  # blocks per window


@pytest.fixture
def data() -> StoredData:
    return StoredData.make()


@pytest.fixture
def chain() -> Chain:
    return Chain()


def opened(chain: Chain, data: StoredData, **terms: int) -> bytes:
    """Open a contract in block 1; window 0 is blocks 2..6, window w starts at 2 + 5w."""
    contract_id: bytes = chain.open(chain.terms(data, **terms))
    return contract_id


def settled(chain: Chain, cid: bytes) -> list[WindowSettled]:
    return [e for e in chain.events if isinstance(e, WindowSettled) and e.contract_id == cid]


def other_segment(chain: Chain, cid: bytes, data: StoredData) -> SubmitProof:
    """A valid proof of a segment the window did not ask for."""
    ch = challenge_of(chain.state, cid)
    assert ch is not None
    seg_index = (ch.segment_index + 1) % ch.segment_count
    seg, proof = data.prove(ch.chunk_index, seg_index)
    return SubmitProof(cid, ch.window, seg, proof)


# -- opening ------------------------------------------------------------------------------


def test_open_locks_publisher_escrow_and_host_collateral(chain: Chain, data: StoredData) -> None:
    supply = total_supply(chain.state)
    cid = opened(chain, data)
    contract = contract_of(chain.state, cid)
    assert contract is not None
    assert contract.escrow == PRICE * WINDOWS
    assert contract.collateral == COLLATERAL
    assert contract.status is Status.PENDING
    assert balance_of(chain.state, ALICE.address) == START_BALANCE - PRICE * WINDOWS - FEE
    assert balance_of(chain.state, BOB.address) == START_BALANCE - COLLATERAL
    assert total_supply(chain.state) == supply
    assert contracts_of(chain.state, ALICE.address) == [(cid, Role.PUBLISHER)]
    assert contracts_of(chain.state, BOB.address) == [(cid, Role.HOST)]


def test_first_window_opens_in_the_next_block_seeded_by_the_opening_block(
    chain: Chain, data: StoredData
) -> None:
    cid = opened(chain, data)
    events = chain.begin()
    assert chain.ctx is not None
    contract = contract_of(chain.state, cid)
    assert contract is not None and contract.status is Status.ACTIVE
    assert contract.seed == window_seed(cid, chain.ctx.previous_hash)
    assert contract.seed == hashlib.sha256(cid + chain.ctx.previous_hash).digest()
    (opened_event,) = [e for e in events if isinstance(e, WindowOpened)]
    assert (opened_event.window, opened_event.start, opened_event.end) == (0, 2, 2 + W - 1)


def test_forged_host_acceptance_is_rejected(chain: Chain, data: StoredData) -> None:
    terms = chain.terms(data)
    before = chain.state
    with pytest.raises(PartySignatureInvalidError):
        chain.send(ALICE, OpenContract(terms, sign_terms(CAROL, terms)))
    assert chain.state.root == before.root


def test_acceptance_after_its_last_height_is_rejected(chain: Chain, data: StoredData) -> None:
    chain.advance(3)
    with pytest.raises(AcceptanceExpiredError):
        opened(chain, data, accept_until=2)


def test_publisher_must_send_its_own_terms(chain: Chain, data: StoredData) -> None:
    terms = chain.terms(data)
    with pytest.raises(SenderUnauthorizedError):
        chain.send(CAROL, OpenContract(terms, sign_terms(BOB, terms)))


def test_terms_for_another_chain_are_rejected(chain: Chain, data: StoredData) -> None:
    from msgspec.structs import replace

    terms = replace(chain.terms(data), chain_id="othernet")
    with pytest.raises(ChainIdMismatchError):
        chain.send(ALICE, OpenContract(terms, sign_terms(BOB, terms)))


@pytest.mark.parametrize(
    "terms",
    [{"window_blocks": 1}, {"window_blocks": 51}, {"windows": 21}],
    ids=["window-too-short", "window-too-long", "too-many-windows"],
)
def test_terms_outside_chain_limits_are_rejected(
    chain: Chain, data: StoredData, terms: dict[str, int]
) -> None:
    with pytest.raises(TermsInvalidError):
        opened(chain, data, **terms)


def test_same_acceptance_cannot_open_a_second_contract(chain: Chain, data: StoredData) -> None:
    terms = chain.terms(data)
    chain.open(terms)
    with pytest.raises(ContractExistsError):
        chain.open(terms)
    assert balance_of(chain.state, BOB.address) == START_BALANCE - COLLATERAL


def test_host_without_the_collateral_cannot_be_bound(chain: Chain, data: StoredData) -> None:
    with pytest.raises(BalanceInsufficientError):
        opened(chain, data, collateral=START_BALANCE + 1)


def test_publisher_without_the_escrow_cannot_open(chain: Chain, data: StoredData) -> None:
    with pytest.raises(BalanceInsufficientError):
        opened(chain, data, price=START_BALANCE // 2, windows=2)


# -- proofs -------------------------------------------------------------------------------


def test_proof_on_time_pays_host_minus_the_burn(chain: Chain, data: StoredData) -> None:
    cid = opened(chain, data)
    chain.begin()  # window 0 opens
    chain.send(BOB, chain.proof_body(cid, data))
    host_before = balance_of(chain.state, BOB.address)
    supply_before = total_supply(chain.state)
    chain.advance_to(2 + W)  # window 0 settles as block 7 begins
    (settlement,) = settled(chain, cid)
    burn = PRICE * 200 // 10_000
    assert settlement.proven
    assert (settlement.paid, settlement.burned, settlement.refunded) == (PRICE - burn, burn, 0)
    assert balance_of(chain.state, BOB.address) == host_before + PRICE - burn
    assert total_supply(chain.state) == supply_before - burn
    assert standing_of(chain.state, BOB.address).burned == burn
    contract = contract_of(chain.state, cid)
    assert contract is not None and contract.escrow == PRICE * (WINDOWS - 1)


def test_proof_in_the_last_block_of_its_window_counts(chain: Chain, data: StoredData) -> None:
    cid = opened(chain, data)
    chain.advance_to(2 + W - 1)
    chain.send(BOB, chain.proof_body(cid, data))
    chain.begin()
    assert settled(chain, cid)[0].proven


def test_late_proof_is_rejected(chain: Chain, data: StoredData) -> None:
    cid = opened(chain, data)
    chain.begin()
    late = chain.proof_body(cid, data)  # the right answer for window 0...
    chain.advance_to(2 + W)  # ...but window 0 has been settled
    before = chain.state
    with pytest.raises(ProofOutOfWindowError):
        chain.send(BOB, late)
    assert chain.state.root == before.root
    assert not settled(chain, cid)[0].proven


def test_proof_before_the_first_window_opens_is_rejected(chain: Chain, data: StoredData) -> None:
    cid = opened(chain, data)
    seg, proof = data.prove(0, 0)
    with pytest.raises(ProofOutOfWindowError):
        chain.send(BOB, SubmitProof(cid, 0, seg, proof))


def test_proof_for_a_future_window_is_rejected(chain: Chain, data: StoredData) -> None:
    cid = opened(chain, data)
    chain.begin()
    body = chain.proof_body(cid, data)
    from msgspec.structs import replace

    with pytest.raises(ProofOutOfWindowError):
        chain.send(BOB, replace(body, window=1))


def test_proof_after_the_contract_closed_is_rejected(chain: Chain, data: StoredData) -> None:
    cid = opened(chain, data, windows=1)
    chain.begin()
    body = chain.proof_body(cid, data)
    chain.advance(W)
    with pytest.raises(ProofOutOfWindowError):
        chain.send(BOB, body)


def test_wrong_segment_is_rejected(chain: Chain, data: StoredData) -> None:
    cid = opened(chain, data)
    chain.begin()
    with pytest.raises(ProofSegmentWrongError):
        chain.send(BOB, other_segment(chain, cid, data))


def test_segment_of_the_wrong_chunk_is_rejected(chain: Chain, data: StoredData) -> None:
    cid = opened(chain, data)
    chain.begin()
    ch = challenge_of(chain.state, cid)
    assert ch is not None
    seg, proof = data.prove((ch.chunk_index + 1) % 3, ch.segment_index)
    with pytest.raises(ProofSegmentWrongError):
        chain.send(BOB, SubmitProof(cid, ch.window, seg, proof))


def test_bad_path_is_rejected(chain: Chain, data: StoredData) -> None:
    cid = opened(chain, data)
    chain.begin()
    good = chain.proof_body(cid, data)
    proof = ChainedProof.from_bytes(good.proof)
    forged_path = (bytes(32), *proof.segment.path[1:])
    forged = ChainedProof(
        Proof(proof.segment.index, proof.segment.leaf_count, forged_path), proof.chunk
    )
    from msgspec.structs import replace

    before = chain.state
    for body in (
        replace(good, proof=forged.to_bytes()),  # a path hash replaced
        replace(good, segment=bytes(len(good.segment))),  # the segment's bytes replaced
        replace(good, proof=good.proof[:-1]),  # malformed proof bytes
    ):
        with pytest.raises(ProofPathInvalidError):
            chain.send(BOB, body)
    assert chain.state.root == before.root
    chain.send(BOB, good)  # the window is still open to the right answer


def test_window_is_proven_once(chain: Chain, data: StoredData) -> None:
    cid = opened(chain, data)
    chain.begin()
    body = chain.proof_body(cid, data)
    chain.send(BOB, body)
    with pytest.raises(WindowProvenError):
        chain.send(BOB, body)


def test_only_the_host_submits_proofs(chain: Chain, data: StoredData) -> None:
    cid = opened(chain, data)
    chain.begin()
    with pytest.raises(SenderUnauthorizedError):
        chain.send(CAROL, chain.proof_body(cid, data))


def test_proof_for_an_unknown_contract_is_rejected(chain: Chain, data: StoredData) -> None:
    seg, proof = data.prove(0, 0)
    with pytest.raises(ContractUnknownError):
        chain.send(BOB, SubmitProof(bytes(32), 0, seg, proof))


# -- settlement ---------------------------------------------------------------------------


def test_missed_window_refunds_the_publisher(chain: Chain, data: StoredData) -> None:
    cid = opened(chain, data)
    chain.begin()
    publisher_before = balance_of(chain.state, ALICE.address)
    supply_before = total_supply(chain.state)
    chain.advance_to(2 + W)
    (settlement,) = settled(chain, cid)
    assert not settlement.proven
    assert (settlement.paid, settlement.burned, settlement.refunded) == (0, 0, PRICE)
    assert balance_of(chain.state, ALICE.address) == publisher_before + PRICE
    assert total_supply(chain.state) == supply_before
    assert standing_of(chain.state, BOB.address).windows_missed == 1


def run_contract(chain: Chain, cid: bytes, data: StoredData, prove: list[bool]) -> None:
    """Go through every window, proving those marked True; ends with the contract closed."""
    for proven in prove:
        chain.begin()  # opens the window (settling the one before)
        if proven:
            chain.send(BOB, chain.proof_body(cid, data))
        chain.advance(W - 1)
    chain.begin()  # settles the last window and closes


def test_host_that_missed_more_than_half_loses_part_of_its_collateral(
    chain: Chain, data: StoredData
) -> None:
    cid = opened(chain, data)
    burned_before = total_burned(chain.state)
    run_contract(chain, cid, data, [True, False, False, False])
    (closed,) = [e for e in chain.events if isinstance(e, ContractClosed)]
    penalty = COLLATERAL * 5_000 // 10_000
    assert (closed.windows_missed, closed.penalty, closed.returned) == (
        3,
        penalty,
        COLLATERAL - penalty,
    )
    payout_burn = PRICE * 200 // 10_000
    assert total_burned(chain.state) == burned_before + payout_burn + penalty
    assert balance_of(chain.state, BOB.address) == (
        START_BALANCE
        - FEE
        + (PRICE - payout_burn)
        - penalty  # one proof sent; half collateral lost
    )
    # the penalty is not a burn that builds reputation
    assert standing_of(chain.state, BOB.address).burned == payout_burn
    contract = contract_of(chain.state, cid)
    assert contract is not None
    assert (contract.status, contract.collateral, contract.escrow) == (Status.CLOSED, 0, 0)


def test_host_that_missed_exactly_half_gets_all_its_collateral_back(
    chain: Chain, data: StoredData
) -> None:
    cid = opened(chain, data)
    run_contract(chain, cid, data, [True, False, True, False])
    (closed,) = [e for e in chain.events if isinstance(e, ContractClosed)]
    assert (closed.windows_missed, closed.penalty, closed.returned) == (2, 0, COLLATERAL)
    assert balance_of(chain.state, ALICE.address) == START_BALANCE - FEE - 2 * PRICE


def test_contract_that_ends_leaves_nothing_locked(chain: Chain, data: StoredData) -> None:
    cid = opened(chain, data)
    run_contract(chain, cid, data, [True, True, True, True])
    settlements = settled(chain, cid)
    assert [s.window for s in settlements] == [0, 1, 2, 3]
    assert all(s.proven for s in settlements)
    contract = contract_of(chain.state, cid)
    assert contract is not None and contract.status is Status.CLOSED
    assert challenge_of(chain.state, cid) is None
    assert standing_of(chain.state, BOB.address).windows_proven == WINDOWS


# -- revisions ----------------------------------------------------------------------------


def test_revision_signed_by_both_parties_replaces_root_and_chunks(
    chain: Chain, data: StoredData
) -> None:
    cid = opened(chain, data)
    chain.begin()
    bigger = StoredData.make(chunk_count=5, seed=1)
    chain.revise(cid, 1, bigger)
    contract = contract_of(chain.state, cid)
    assert contract is not None
    assert (contract.root, contract.chunk_count, contract.revision) == (bigger.root, 5, 1)
    chain.send(BOB, chain.proof_body(cid, bigger))  # the challenge is against the new root


def test_revision_without_the_host_signature_is_rejected(chain: Chain, data: StoredData) -> None:
    cid = opened(chain, data)
    before = chain.state
    with pytest.raises(PartySignatureInvalidError):
        chain.revise(cid, 1, StoredData.make(seed=1), signers=(ALICE, CAROL))
    with pytest.raises(PartySignatureInvalidError):
        chain.revise(cid, 1, StoredData.make(seed=1), signers=(CAROL, BOB))
    assert chain.state.root == before.root


def test_revision_must_have_a_higher_number(chain: Chain, data: StoredData) -> None:
    cid = opened(chain, data)
    chain.revise(cid, 2, StoredData.make(seed=1))
    for stale in (2, 1, 0):
        with pytest.raises(RevisionStaleError):
            chain.revise(cid, stale, StoredData.make(seed=2))
    chain.revise(cid, 3, StoredData.make(seed=2))


def test_closed_contract_cannot_be_revised(chain: Chain, data: StoredData) -> None:
    cid = opened(chain, data, windows=1)
    chain.advance(1 + W)
    with pytest.raises(ContractClosedError):
        chain.revise(cid, 1, StoredData.make(seed=1))


def test_host_may_contract_with_itself(chain: Chain, data: StoredData) -> None:
    cid = chain.open(chain.terms(data, publisher=BOB, host=BOB), publisher=BOB, host=BOB)
    assert contracts_of(chain.state, BOB.address) == [(cid, Role.BOTH)]
    assert (
        balance_of(chain.state, BOB.address) == START_BALANCE - FEE - PRICE * WINDOWS - COLLATERAL
    )
