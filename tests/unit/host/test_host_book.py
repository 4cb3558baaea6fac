"""The host's contract book: durable records, the moves the chain calls for, and
the space its live contracts promise."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import plyvel
import pytest

from contracts import Amount, ContractTerms, Params, State, genesis_state
from contracts.encoding import encode
from contracts.entries import Entry, Status, StorageContract, contract_key
from storenode.coding.merkle import contract_root
from storenode.host.book import (
    BookContract,
    BookCorruptError,
    BookIOError,
    BookLockedError,
    BookState,
    BookTransitionError,
    HostBook,
    Move,
    reconcile,
)
from storenode.host.messages import ShardRef
from storenode.testing.ledger import account

CID = hashlib.sha256(b"work").digest()
SIZE = 2048


def chunk(n: int) -> bytes:
    return hashlib.sha256(b"chunk %d" % n).digest()


def contract(
    n: int, chunks: list[int], *, accept_until: int = 10, state: BookState = BookState.PENDING
) -> BookContract:
    refs = tuple(ShardRef(i, 0, chunk(c)) for i, c in enumerate(chunks))
    terms = ContractTerms(
        chain_id="testnet",
        publisher=account(0).public_key,
        host=account(1).public_key,
        root=contract_root([r.chunk_id for r in refs]),
        chunk_count=len(refs),
        chunk_size=SIZE,
        price_per_window=Amount(1000),
        windows=4,
        window_blocks=4,
        collateral=Amount(500),
        accept_until=accept_until,
        salt=n,
    )
    cid = hashlib.sha256(encode(terms)).digest()
    return BookContract(cid, terms, encode(terms), CID, 2, 4, refs, state, 3)


def chain_state(**on_chain: Status) -> State:
    """A state holding a storage contract, with the given status, for each name."""
    base = genesis_state({account(0).address: 10**24}, Params(chain_id="testnet"))
    writes: dict[bytes, Entry | None] = {}
    for name, status in on_chain.items():
        c = CONTRACTS[name]
        writes[contract_key(c.id)] = StorageContract(
            publisher=account(0).address,
            publisher_key=account(0).public_key,
            host=account(1).address,
            host_key=account(1).public_key,
            root=c.terms.root,
            chunk_count=c.terms.chunk_count,
            chunk_size=SIZE,
            price_per_window=c.terms.price_per_window,
            windows=4,
            window_blocks=4,
            escrow=Amount(4000),
            collateral=Amount(500),
            revision=0,
            status=status,
            window=0,
            window_start=5,
            seed=b"",
            proven=False,
            windows_proven=0,
            windows_missed=0,
            opened_height=4,
        )
    return base.with_writes(writes).commit()


CONTRACTS = {
    "waiting": contract(1, [1, 2], accept_until=10),
    "opened": contract(2, [3], accept_until=10),
    "opened_and_over": contract(3, [4], accept_until=10),
    "running": contract(4, [5], state=BookState.ACTIVE),
    "over": contract(5, [6], state=BookState.ACTIVE),
}


def test_a_contract_added_is_there_after_reopening_with_every_field(tmp_path: Path) -> None:
    c = contract(1, [1, 2, 3])
    with HostBook(tmp_path / "book") as book:
        book.add(c)
        book.put_manifest(CID, b"manifest bytes")
    with HostBook(tmp_path / "book") as book:
        assert book.contracts() == [c]
        assert book.get(c.id) == c and book.works() == [CID]
        assert book.manifest(CID) == b"manifest bytes" and book.manifests() == [CID]
        book.delete_manifest(CID)
    with HostBook(tmp_path / "book") as book:
        assert book.manifest(CID) is None and book.manifests() == []


def test_adding_a_contract_twice_is_refused(tmp_path: Path) -> None:
    with HostBook(tmp_path / "book") as book:
        book.add(contract(1, [1]))
        with pytest.raises(ValueError, match="already in the book"):
            book.add(contract(1, [1]))


def test_reconcile_asks_for_the_moves_the_chain_state_calls_for() -> None:
    state = chain_state(
        opened=Status.PENDING,
        opened_and_over=Status.CLOSED,
        running=Status.ACTIVE,
        over=Status.CLOSED,
    )
    moves = reconcile(CONTRACTS.values(), state, height=10)
    named = {c.id: name for name, c in CONTRACTS.items()}
    assert [(named[c.id], m) for c, m in moves] == [
        ("opened", Move.OPEN),
        ("opened_and_over", Move.OPEN),
        ("opened_and_over", Move.CLOSE),
        ("over", Move.CLOSE),
    ]
    # Past accept_until, a contract the chain never opened expires; at it, it may still open.
    late = reconcile([CONTRACTS["waiting"]], state, height=11)
    assert late == [(CONTRACTS["waiting"], Move.EXPIRE)]


def test_moves_are_durable_and_an_expired_contract_is_forgotten(tmp_path: Path) -> None:
    waiting, opened = CONTRACTS["waiting"], CONTRACTS["opened_and_over"]
    with HostBook(tmp_path / "book") as book:
        book.add(waiting)
        book.add(opened)
        after = book.apply([(waiting, Move.EXPIRE), (opened, Move.OPEN), (opened, Move.CLOSE)])
        assert {c.id: c.state for c in after} == {
            waiting.id: BookState.PENDING,  # as it was when forgotten
            opened.id: BookState.CLOSED,
        }
    with HostBook(tmp_path / "book") as book:
        assert book.get(waiting.id) is None
        assert book.get(opened.id) == replace(opened, state=BookState.CLOSED)
        with pytest.raises(BookTransitionError, match="a closed contract cannot open"):
            book.apply([(opened, Move.OPEN)])


def test_promised_space_counts_shared_chunks_once_and_frees_when_contracts_end(
    tmp_path: Path,
) -> None:
    a, b = contract(1, [1, 2, 3]), contract(2, [3, 4])  # chunk 3 in both
    with HostBook(tmp_path / "book") as book:
        book.add(a)
        assert book.promised_bytes == 3 * SIZE
        assert book.new_bytes(b.shards, SIZE) == 1 * SIZE
        book.add(b)
        assert book.promised_bytes == 4 * SIZE
        assert {c.id for c in book.listing(chunk(3))} == {a.id, b.id}
        book.apply([(a, Move.EXPIRE)])
        assert book.promised_bytes == 2 * SIZE
        assert book.lists(chunk(3)) and not book.lists(chunk(1))
        book.apply([(b, Move.OPEN), (b, Move.CLOSE)])
        assert book.promised_bytes == 0 and book.works() == []
        assert [c.state for c in book.contracts()] == [BookState.CLOSED]


def test_a_damaged_record_stops_the_book_with_a_clear_error(tmp_path: Path) -> None:
    c = contract(1, [1])
    with HostBook(tmp_path / "book") as book:
        book.add(c)
    db = plyvel.DB(str(tmp_path / "book"))
    db.put(b"hb/c/" + c.id, b"\x93garbage")
    db.close()
    with pytest.raises(BookCorruptError, match="restore it from a backup"):
        HostBook(tmp_path / "book")


def test_a_book_in_use_or_a_foreign_database_is_refused(tmp_path: Path) -> None:
    with HostBook(tmp_path / "book"), pytest.raises(BookLockedError, match="another process"):
        HostBook(tmp_path / "book")
    db = plyvel.DB(str(tmp_path / "other"), create_if_missing=True)
    db.put(b"some", b"thing")
    db.close()
    with pytest.raises(BookIOError, match="not a book"):
        HostBook(tmp_path / "other")
