"""Invariants over random transaction sequences (hypothesis stateful testing).

Any mix of transfers, allowances, burns, registrations, sales, storage
contracts, proofs (right and wrong), revisions, replays and empty blocks:

* total supply = Σ balances + Σ escrow + Σ collateral, at every step;
* the supply only falls, and by exactly what was burned;
* no balance is ever negative;
* a rejected transaction leaves the state as it was;
* replaying the same blocks on a fresh genesis gives the same state root.
"""

from __future__ import annotations

from contract_harness import ALICE, BOB, CAROL, DAVE, Chain, StoredData, fingerprint
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from contracts import (
    TOKEN,
    Approve,
    Burn,
    Buy,
    OpenContract,
    RegisterWork,
    ReviseContract,
    Revision,
    SetListing,
    Share,
    SignedTx,
    StorageContract,
    SubmitProof,
    Transfer,
    TransferFrom,
    TransferWork,
    challenge_of,
    contract_id,
    contract_of,
    sign_revision,
    sign_terms,
    total_burned,
    total_supply,
    verify_tx,
    work_of,
)
from contracts.entries import Account, Status
from contracts.errors import (
    BalanceInsufficientError,
    ContractClosedError,
    NonceReplayedError,
    ProofOutOfWindowError,
    ProofPathInvalidError,
    TxRejectedError,
    WindowProvenError,
)
from contracts.events import Burned
from contracts.tx import Body
from storenode.identity import Identity

PEOPLE = st.sampled_from([ALICE, BOB, CAROL, DAVE])
AMOUNTS = st.integers(0, 1_200).map(lambda n: n * TOKEN // 2)
WORKS = st.integers(0, 1)
DATA = [StoredData.make(3, seed=0), StoredData.make(5, seed=1), StoredData.make(1, seed=2)]

Step = SignedTx | None  # None: begin the next block


def person(address: bytes) -> Identity:
    found: Identity = next(i for i in (ALICE, BOB, CAROL, DAVE) if i.address == address)
    return found


class Ledger(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.chain = Chain()
        self.log: list[Step] = []
        self.contracts: dict[bytes, StoredData] = {}
        self.salt = 0
        self.supply = total_supply(self.chain.state)
        self.seen_events = len(self.chain.events)

    # -- helpers -------------------------------------------------------------------------

    def send(self, who: Identity, body: Body) -> TxRejectedError | None:
        """Apply ``body`` from ``who``; the rejection, if any (the state then unchanged)."""
        signed = self.chain.signed(who, body)
        before = self.chain.state
        root = before.root
        try:
            self.chain.apply(verify_tx(signed))
        except TxRejectedError as rejection:
            assert self.chain.state is before and before.root == root
            return rejection
        self.log.append(signed)
        return None

    # -- rules ---------------------------------------------------------------------------

    @rule(who=PEOPLE, to=PEOPLE, amount=AMOUNTS)
    def transfer(self, who: Identity, to: Identity, amount: int) -> None:
        self.send(who, Transfer(to.address, amount))  # type: ignore[arg-type]

    @rule(who=PEOPLE, spender=PEOPLE, amount=AMOUNTS)
    def approve(self, who: Identity, spender: Identity, amount: int) -> None:
        self.send(who, Approve(spender.address, amount))  # type: ignore[arg-type]

    @rule(spender=PEOPLE, owner=PEOPLE, to=PEOPLE, amount=AMOUNTS)
    def transfer_from(self, spender: Identity, owner: Identity, to: Identity, amount: int) -> None:
        self.send(spender, TransferFrom(owner.address, to.address, amount))  # type: ignore[arg-type]

    @rule(who=PEOPLE, amount=AMOUNTS)
    def burn(self, who: Identity, amount: int) -> None:
        self.send(who, Burn(amount))  # type: ignore[arg-type]

    @rule(who=PEOPLE, n=WORKS)
    def register(self, who: Identity, n: int) -> None:
        self.send(who, RegisterWork(fingerprint(n), f"work {n}", "1", "2024", "someone", bytes(32)))

    def _owner_or(self, who: Identity, n: int, by_owner: bool) -> Identity:
        """The work's owner when ``by_owner`` and it exists, else ``who``."""
        work = work_of(self.chain.state, fingerprint(n))
        return person(work.owner) if by_owner and work is not None else who

    @rule(who=PEOPLE, n=WORKS, to=PEOPLE, by_owner=st.booleans())
    def transfer_work(self, who: Identity, n: int, to: Identity, by_owner: bool) -> None:
        self.send(self._owner_or(who, n, by_owner), TransferWork(fingerprint(n), to.address))

    @rule(
        who=PEOPLE,
        n=WORKS,
        price=AMOUNTS,
        first=st.integers(1, 10_000),
        other=PEOPLE,
        by_owner=st.booleans(),
    )
    def set_listing(
        self, who: Identity, n: int, price: int, first: int, other: Identity, by_owner: bool
    ) -> None:
        who = self._owner_or(who, n, by_owner)
        shares: tuple[Share, ...] = (Share(who.address, first),)
        if first < 10_000 and other != who:
            shares += (Share(other.address, 10_000 - first),)
        self.send(who, SetListing(fingerprint(n), price // 16, shares))  # type: ignore[arg-type]

    @rule(who=PEOPLE, n=WORKS, max_price=AMOUNTS)
    def buy(self, who: Identity, n: int, max_price: int) -> None:
        self.send(who, Buy(fingerprint(n), max_price))  # type: ignore[arg-type]

    @rule(
        publisher=PEOPLE,
        host=PEOPLE,
        data=st.sampled_from(DATA),
        price=AMOUNTS,
        windows=st.integers(1, 4),
        window_blocks=st.integers(2, 4),
        collateral=AMOUNTS,
    )
    def open_contract(
        self,
        publisher: Identity,
        host: Identity,
        data: StoredData,
        price: int,
        windows: int,
        window_blocks: int,
        collateral: int,
    ) -> None:
        self.salt += 1
        terms = self.chain.terms(
            data,
            publisher=publisher,
            host=host,
            price=price // 8,
            windows=windows,
            window_blocks=window_blocks,
            collateral=collateral,
            salt=self.salt,
        )
        if self.send(publisher, OpenContract(terms, sign_terms(host, terms))) is None:
            self.contracts[contract_id(terms)] = data

    def _contract(self, pick: int) -> tuple[bytes, StorageContract]:
        """Contract ``pick``, among the active ones if any is (or among all)."""
        state = self.chain.state
        active = [cid for cid in sorted(self.contracts) if challenge_of(state, cid) is not None]
        cids = active if active and pick % 4 else sorted(self.contracts)
        cid = cids[pick % len(cids)]
        contract = contract_of(self.chain.state, cid)
        assert contract is not None
        return cid, contract

    @precondition(lambda self: self.contracts)
    @rule(pick=st.integers(0, 100), honest=st.booleans())
    def prove(self, pick: int, honest: bool) -> None:
        cid, contract = self._contract(pick)
        host = person(contract.host)
        challenge = challenge_of(self.chain.state, cid)
        if challenge is None:
            seg, proof = self.contracts[cid].prove(0, 0)
            rejection = self.send(host, SubmitProof(cid, contract.window, seg, proof))
            assert isinstance(rejection, ProofOutOfWindowError | BalanceInsufficientError)
            return
        seg, proof = self.contracts[cid].prove(challenge.chunk_index, challenge.segment_index)
        if not honest:
            seg = bytes(len(seg))
        rejection = self.send(host, SubmitProof(cid, challenge.window, seg, proof))
        if isinstance(rejection, BalanceInsufficientError):
            return  # the host cannot pay the fee
        if challenge.proven:
            assert isinstance(rejection, WindowProvenError)
        elif honest:
            assert rejection is None
        else:
            assert isinstance(rejection, ProofPathInvalidError)

    @precondition(lambda self: self.contracts)
    @rule(pick=st.integers(0, 100), data=st.sampled_from(DATA))
    def revise(self, pick: int, data: StoredData) -> None:
        cid, contract = self._contract(pick)
        rev = Revision(cid, contract.revision + 1, data.root, len(data.chunks))
        publisher, host = (person(contract.publisher), person(contract.host))
        body = ReviseContract(rev, sign_revision(publisher, rev), sign_revision(host, rev))
        rejection = self.send(publisher, body)
        if contract.status is Status.CLOSED:
            assert isinstance(rejection, ContractClosedError | BalanceInsufficientError)
        elif rejection is None:
            self.contracts[cid] = data
        else:
            assert isinstance(rejection, BalanceInsufficientError)

    @precondition(lambda self: any(step is not None for step in self.log))
    @rule(pick=st.integers(0, 10_000))
    def replay(self, pick: int) -> None:
        applied = [step for step in self.log if step is not None]
        signed = applied[pick % len(applied)]
        before = self.chain.state
        try:
            self.chain.apply(verify_tx(signed))
        except NonceReplayedError:
            assert self.chain.state is before
        else:
            raise AssertionError("a replayed transaction was applied")

    @rule(blocks=st.integers(1, 3))
    def next_blocks(self, blocks: int) -> None:
        for _ in range(blocks):
            self.chain.begin()
            self.log.append(None)

    @rule()
    def block_with_every_window_proven(self) -> None:
        """Begin a block in which every host proves its open window."""
        self.chain.begin()
        self.log.append(None)
        for cid, data in sorted(self.contracts.items()):
            challenge = challenge_of(self.chain.state, cid)
            contract = contract_of(self.chain.state, cid)
            if challenge is None or challenge.proven or contract is None:
                continue
            seg, proof = data.prove(challenge.chunk_index, challenge.segment_index)
            body = SubmitProof(cid, challenge.window, seg, proof)
            rejection = self.send(person(contract.host), body)
            assert rejection is None or isinstance(rejection, BalanceInsufficientError)

    # -- invariants ----------------------------------------------------------------------

    @invariant()
    def supply_is_balances_plus_escrow_plus_collateral(self) -> None:
        balances = locked = 0
        for _, entry in self.chain.state.items():
            if isinstance(entry, Account):
                assert entry.balance >= 0
                balances += entry.balance
            elif isinstance(entry, StorageContract):
                assert entry.escrow >= 0 and entry.collateral >= 0
                locked += entry.escrow + entry.collateral
                if entry.status is Status.CLOSED:
                    assert entry.escrow == entry.collateral == 0
        assert total_supply(self.chain.state) == balances + locked

    @invariant()
    def supply_falls_only_by_burns(self) -> None:
        new_events = self.chain.events[self.seen_events :]
        burned = sum(e.amount for e in new_events if isinstance(e, Burned))
        supply = total_supply(self.chain.state)
        assert supply == self.supply - burned
        assert supply + total_burned(self.chain.state) == 4_000 * TOKEN
        self.supply, self.seen_events = supply, len(self.chain.events)

    def teardown(self) -> None:
        replayed = Chain()
        for step in self.log:
            if step is None:
                replayed.begin()
            else:
                replayed.apply(verify_tx(step))
        assert replayed.state.root == self.chain.state.root
        assert replayed.events == self.chain.events


Ledger.TestCase.settings = settings(stateful_step_count=40)
test_ledger_invariants = Ledger.TestCase
