"""A chain in a test: signs transactions, runs blocks, and holds stored data
with its Merkle trees so that tests can answer challenges.

Every block's hash is SHA-256 over its height and the state root before it,
so a run is the same every time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from contracts import (
    Amount,
    BlockContext,
    ContractTerms,
    Event,
    OpenContract,
    Params,
    ReviseContract,
    Revision,
    SignedTx,
    State,
    SubmitProof,
    Tx,
    VerifiedTx,
    apply,
    begin_block,
    challenge_of,
    contract_id,
    genesis_state,
    nonce_of,
    sign_revision,
    sign_terms,
    sign_tx,
    tokens,
    verify_tx,
)
from contracts.tx import Body
from storenode.coding.merkle import MerkleTree, prove_chained, segment
from storenode.identity import Identity

CHAIN_ID = "testnet"
FEE = tokens("0.001")
PARAMS = Params(
    chain_id=CHAIN_ID,
    min_fee=tokens("0.0001"),
    min_window_blocks=2,
    max_window_blocks=50,
    max_windows=20,
    max_chunk_count=64,
    max_chunk_size=8192,
)


def identity(n: int) -> Identity:
    return Identity.from_seed(bytes([n]) * 32)


ALICE, BOB, CAROL, DAVE = (identity(n) for n in range(1, 5))
PRODUCER = identity(99)
START_BALANCE = tokens(1_000)


def fingerprint(n: int) -> bytes:
    return hashlib.sha256(b"work %d" % n).digest()


@dataclass
class StoredData:
    """Chunks a host keeps under one contract, with their trees."""

    chunks: list[bytes]

    def __post_init__(self) -> None:
        self.trees = [MerkleTree.of_chunk(c) for c in self.chunks]
        self.contract_tree = MerkleTree([t.root for t in self.trees])

    @classmethod
    def make(cls, chunk_count: int = 3, chunk_size: int = 2560, seed: int = 0) -> StoredData:
        def chunk(i: int) -> bytes:
            out = b""
            counter = 0
            while len(out) < chunk_size:
                out += hashlib.sha256(b"%d/%d/%d" % (seed, i, counter)).digest()
                counter += 1
            return out[:chunk_size]

        return cls([chunk(i) for i in range(chunk_count)])

    @property
    def root(self) -> bytes:
        return self.contract_tree.root

    @property
    def chunk_size(self) -> int:
        return len(self.chunks[0])

    def prove(self, chunk_index: int, segment_index: int) -> tuple[bytes, bytes]:
        """(segment bytes, ChainedProof bytes)."""
        proof = prove_chained(
            self.trees[chunk_index], self.contract_tree, chunk_index, segment_index
        )
        return bytes(segment(self.chunks[chunk_index], segment_index)), proof.to_bytes()


@dataclass
class Chain:
    """Genesis plus the blocks applied so far; ``state`` is the current block's,
    after the transactions applied in it so far (block 1 is begun at once)."""

    allocations: dict[bytes, int] = field(
        default_factory=lambda: {i.address: START_BALANCE for i in (ALICE, BOB, CAROL, DAVE)}
    )
    params: Params = PARAMS

    def __post_init__(self) -> None:
        self.state: State = genesis_state(self.allocations, self.params)
        self.height = 0
        self.ctx: BlockContext | None = None
        self.events: list[Event] = []
        self.begin()  # transactions go into block 1 until a test begins another

    # -- blocks ----------------------------------------------------------------------

    def begin(self) -> tuple[Event, ...]:
        """Start the next block (committing the one before)."""
        self.state = self.state.commit()
        self.height += 1
        previous = hashlib.sha256(b"block %d " % (self.height - 1) + self.state.root).digest()
        self.ctx = BlockContext(
            height=self.height,
            time=1_700_000_000 + 5 * self.height,
            producer=PRODUCER.address,
            previous_hash=previous,
        )
        self.state, events = begin_block(self.state, self.ctx)
        self.events.extend(events)
        return events

    def advance(self, blocks: int) -> None:
        for _ in range(blocks):
            self.begin()

    def advance_to(self, height: int) -> None:
        """Begin blocks until ``height`` is the current one."""
        while self.height < height:
            self.begin()

    # -- transactions ----------------------------------------------------------------

    def signed(
        self,
        who: Identity,
        body: Body,
        *,
        fee: int = FEE,
        nonce: int | None = None,
        chain_id: str = CHAIN_ID,
    ) -> SignedTx:
        if nonce is None:
            nonce = nonce_of(self.state, who.address)
        tx = Tx(chain_id, who.public_key, nonce, Amount(fee), body)
        return sign_tx(who, tx)

    def apply(self, vtx: VerifiedTx) -> tuple[Event, ...]:
        """Apply in the current block."""
        assert self.ctx is not None
        self.state, events = apply(self.state, vtx, self.ctx)
        self.events.extend(events)
        return events

    def send(self, who: Identity, body: Body, **kw: int | str) -> tuple[Event, ...]:
        return self.apply(verify_tx(self.signed(who, body, **kw)))  # type: ignore[arg-type]

    # -- storage contracts -----------------------------------------------------------

    def terms(
        self,
        data: StoredData,
        *,
        publisher: Identity = ALICE,
        host: Identity = BOB,
        price: int = tokens(10),
        windows: int = 4,
        window_blocks: int = 5,
        collateral: int = tokens(20),
        accept_until: int = 1_000,
        salt: int = 0,
    ) -> ContractTerms:
        return ContractTerms(
            chain_id=CHAIN_ID,
            publisher=publisher.public_key,
            host=host.public_key,
            root=data.root,
            chunk_count=len(data.chunks),
            chunk_size=data.chunk_size,
            price_per_window=Amount(price),
            windows=windows,
            window_blocks=window_blocks,
            collateral=Amount(collateral),
            accept_until=accept_until,
            salt=salt,
        )

    def open(
        self, terms: ContractTerms, *, publisher: Identity = ALICE, host: Identity = BOB
    ) -> bytes:
        self.send(publisher, OpenContract(terms, sign_terms(host, terms)))
        return contract_id(terms)

    def proof_body(self, cid: bytes, data: StoredData) -> SubmitProof:
        """The right answer to the open window's challenge."""
        ch = challenge_of(self.state, cid)
        assert ch is not None, "no window is open"
        seg, proof = data.prove(ch.chunk_index, ch.segment_index)
        return SubmitProof(cid, ch.window, seg, proof)

    def revise(
        self,
        cid: bytes,
        revision: int,
        data: StoredData,
        signers: Sequence[Identity] = (ALICE, BOB),
        sender: Identity = ALICE,
    ) -> tuple[Event, ...]:
        rev = Revision(cid, revision, data.root, len(data.chunks))
        publisher_sig = sign_revision(signers[0], rev)
        host_sig = sign_revision(signers[1], rev)
        return self.send(sender, ReviseContract(rev, publisher_sig, host_sig))
