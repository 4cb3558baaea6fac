"""Helpers for ledger tests and benches: deterministic keys, a genesis, signed
transactions, and stored data with the Merkle trees that answer challenges.

Everything here is derived from small integers, so a test, a bench and a
subprocess they start agree on every key and byte without sharing state.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, Final

from contracts import (
    Amount,
    ContractTerms,
    OpenContract,
    SubmitProof,
    Transfer,
    Tx,
    challenge_of,
    contract_id,
    encode_tx,
    sign_terms,
    sign_tx,
    tokens,
)
from contracts.state import State
from contracts.tx import Body
from storenode.coding.merkle import MerkleTree, prove_chained, segment
from storenode.identity import Identity
from storenode.ledger.genesis import Genesis, make_genesis

CHAIN_ID: Final = "testnet"
GENESIS_TIME: Final = 1_700_000_000
FEE: Final = tokens("0.001")
START_BALANCE: Final = tokens(1_000_000)


def _identity(kind: bytes, n: int) -> Identity:
    return Identity.from_seed(hashlib.sha256(b"storenode test %s %d" % (kind, n)).digest())


def account(n: int) -> Identity:
    """Test account ``n`` (a funded allocation in :func:`funded_genesis`)."""
    return _identity(b"account", n)


def validator(n: int) -> Identity:
    return _identity(b"validator", n)


def funded_genesis(
    accounts: int = 8,
    validators: int = 1,
    *,
    balance: int = START_BALANCE,
    time: int = GENESIS_TIME,
    **kw: Any,
) -> Genesis:
    """A genesis funding ``account(0 .. accounts - 1)`` with ``balance`` each,
    produced by ``validator(0 .. validators - 1)``. ``kw``: :func:`make_genesis`'s."""
    kw.setdefault("min_window_blocks", 2)
    kw.setdefault("window_blocks", 4)
    return make_genesis(
        CHAIN_ID,
        [validator(i).public_key for i in range(validators)],
        {account(i).address: balance for i in range(accounts)},
        time=time,
        **kw,
    )


def signed(
    who: Identity, body: Body, nonce: int, *, fee: int = FEE, chain_id: str = CHAIN_ID
) -> bytes:
    """``encode(SignedTx)`` of ``body`` sent by ``who``."""
    return encode_tx(sign_tx(who, Tx(chain_id, who.public_key, nonce, Amount(fee), body)))


def transfer(
    who: Identity, to: bytes, amount: int, nonce: int, *, fee: int = FEE, chain_id: str = CHAIN_ID
) -> bytes:
    return signed(who, Transfer(to, Amount(amount)), nonce, fee=fee, chain_id=chain_id)


class StoredData:
    """Chunks a host keeps under its contracts, with their Merkle trees."""

    def __init__(self, chunks: Sequence[bytes]) -> None:
        self.chunks = list(chunks)
        self.trees = [MerkleTree.of_chunk(c) for c in self.chunks]
        self.contract_tree = MerkleTree([t.root for t in self.trees])

    @classmethod
    def make(cls, chunk_count: int = 3, chunk_size: int = 2560, seed: int = 0) -> StoredData:
        def chunk(i: int) -> bytes:
            out = b"".join(
                hashlib.sha256(b"%d/%d/%d" % (seed, i, c)).digest()
                for c in range(-(-chunk_size // 32))
            )
            return out[:chunk_size]

        return cls([chunk(i) for i in range(chunk_count)])

    @property
    def root(self) -> bytes:
        return self.contract_tree.root

    def terms(
        self,
        publisher: Identity,
        host: Identity,
        *,
        price: int = tokens(10),
        windows: int = 4,
        window_blocks: int = 4,
        collateral: int = tokens(20),
        accept_until: int = 1_000_000,
        salt: int = 0,
        chain_id: str = CHAIN_ID,
    ) -> ContractTerms:
        return ContractTerms(
            chain_id=chain_id,
            publisher=publisher.public_key,
            host=host.public_key,
            root=self.root,
            chunk_count=len(self.chunks),
            chunk_size=len(self.chunks[0]),
            price_per_window=Amount(price),
            windows=windows,
            window_blocks=window_blocks,
            collateral=Amount(collateral),
            accept_until=accept_until,
            salt=salt,
        )

    def proof_body(self, state: State, cid: bytes) -> SubmitProof:
        """The right answer to the challenge of contract ``cid``'s open window."""
        ch = challenge_of(state, cid)
        if ch is None:
            raise ValueError("no window of that contract is open")
        proof = prove_chained(
            self.trees[ch.chunk_index], self.contract_tree, ch.chunk_index, ch.segment_index
        )
        seg = bytes(segment(self.chunks[ch.chunk_index], ch.segment_index))
        return SubmitProof(cid, ch.window, seg, proof.to_bytes())


def open_contract(
    publisher: Identity, host: Identity, terms: ContractTerms, nonce: int
) -> tuple[bytes, bytes]:
    """``(contract id, encode(SignedTx))`` of the publisher's OpenContract."""
    body = OpenContract(terms, sign_terms(host, terms))
    return contract_id(terms), signed(publisher, body, nonce)
