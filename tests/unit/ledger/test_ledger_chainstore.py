"""The chain store: the documented key layout, one batch per block, and the
checks made when a store is opened."""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

import plyvel
import pytest

from contracts import decode_tx, tx_id
from contracts.encoding import encode
from storenode.ledger import Chain, ChainStore, Genesis, encode_block
from storenode.ledger.errors import (
    ChainStoreConflictError,
    ChainStoreCorruptError,
    ChainStoreGenesisMismatchError,
    ChainStoreLockedError,
    ChainStoreNotFoundError,
    ChainStoreUnrecognizedError,
    ChainStoreVersionError,
)
from storenode.testing.ledger import GENESIS_TIME, account, funded_genesis, transfer, validator

V0 = validator(0)
Dump = Callable[[Path], dict[bytes, bytes]]


def one_block_chain(path: Path, genesis: Genesis) -> tuple[bytes, bytes]:
    """A chain with one block of one transfer; (block hash, tx id)."""
    with Chain.open(path, genesis) as chain:
        vtx = chain.submit_tx(transfer(account(0), account(1).address, 5, 0))
        applied = chain.produce_block(V0, GENESIS_TIME + 5)
        return applied.hash, vtx.tx_id


def test_keys_follow_the_documented_layout(tmp_path: Path, genesis: Genesis, dump: Dump) -> None:
    digest, tid = one_block_chain(tmp_path / "c", genesis)
    with ChainStore(tmp_path / "c", genesis) as store:
        block = store.block(1)
        assert block is not None
        state = {k: v for k, v in store.state_entries()}
        assert state == {k: encode(e) for k, e in store.state.items()}
    items = dump(tmp_path / "c")
    assert items[b"lg/meta/version"] == b"\x00\x00\x00\x01"
    assert items[b"lg/meta/genesis"] == encode(genesis)
    assert items[b"lg/meta/tip"] == struct.pack(">Q", 1) + digest
    assert items[b"lg/block/" + struct.pack(">Q", 1)] == encode_block(block)
    assert items[b"lg/hash/" + digest] == struct.pack(">Q", 1)
    assert items[b"lg/tx/" + tid] == struct.pack(">QI", 1, 0)
    assert {k[len(b"lg/state/") :]: v for k, v in items.items() if k.startswith(b"lg/state/")} == (
        state
    )
    fixed = {b"lg/meta/version", b"lg/meta/genesis", b"lg/meta/tip"}
    prefixes = (b"lg/block/", b"lg/hash/", b"lg/tx/", b"lg/state/")
    assert all(k in fixed or k.startswith(prefixes) for k in items)


def test_lookups_find_blocks_and_transactions_by_hash_and_id(
    tmp_path: Path, genesis: Genesis
) -> None:
    digest, tid = one_block_chain(tmp_path / "c", genesis)
    with ChainStore(tmp_path / "c", genesis) as store:
        assert store.height_of(digest) == 1 and store.height_of(genesis.hash) == 0
        assert store.height_of(b"\x00" * 32) is None
        assert store.tx_location(tid) == (1, 0) and store.tx_location(b"\x00" * 32) is None
        found = store.transaction(tid)
        assert found is not None and tx_id(decode_tx(found[0]).tx) == tid
        assert list(store.blocks_bytes(0, 5)) == [store.block_bytes(1)]
        assert store.block(2) is None and store.tip.height == 1


def test_apply_block_that_does_not_follow_the_tip_writes_nothing(
    tmp_path: Path, genesis: Genesis, dump: Dump
) -> None:
    with Chain.open(tmp_path / "p", genesis) as producer:
        b1 = producer.produce_block(V0, GENESIS_TIME + 5)
        b2 = producer.produce_block(V0, GENESIS_TIME + 10)
        state = producer.state
    with ChainStore(tmp_path / "c", genesis) as store:
        before = dict(store.db.iterator())
        with pytest.raises(ChainStoreConflictError):
            store.apply_block(b2.block, state, b2.tx_ids)
        assert dict(store.db.iterator()) == before and store.tip.height == 0
    del b1


def test_extra_writes_may_not_touch_the_ledgers_keys(tmp_path: Path, genesis: Genesis) -> None:
    with Chain.open(tmp_path / "p", genesis) as producer:
        built = producer.produce_block(V0, GENESIS_TIME + 5)
    with ChainStore(tmp_path / "c", genesis) as store:
        with pytest.raises(ValueError):
            store.apply_block(built.block, store.state, (), extra_writes=[(b"lg/meta/tip", b"")])
        assert store.tip.height == 0


def test_store_of_another_genesis_is_refused(tmp_path: Path, genesis: Genesis) -> None:
    one_block_chain(tmp_path / "c", genesis)
    with pytest.raises(ChainStoreGenesisMismatchError):
        ChainStore(tmp_path / "c", funded_genesis(9))


def test_strangers_and_missing_stores_are_refused(tmp_path: Path, genesis: Genesis) -> None:
    with pytest.raises(ChainStoreNotFoundError):
        ChainStore(tmp_path / "none", genesis, create=False)
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(ChainStoreUnrecognizedError):
        ChainStore(tmp_path / "file", genesis)
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "notes.txt").write_text("mine")
    with pytest.raises(ChainStoreUnrecognizedError):
        ChainStore(tmp_path / "dir", genesis)
    db = plyvel.DB(str(tmp_path / "other"), create_if_missing=True)
    db.put(b"k", b"v")
    db.close()
    with pytest.raises(ChainStoreUnrecognizedError):
        ChainStore(tmp_path / "other", genesis)


def test_second_opener_is_told_the_store_is_in_use(tmp_path: Path, genesis: Genesis) -> None:
    with ChainStore(tmp_path / "c", genesis), pytest.raises(ChainStoreLockedError):
        ChainStore(tmp_path / "c", genesis)


@pytest.mark.parametrize(
    ("key", "value", "error", "words"),
    [
        (b"lg/meta/version", b"\x00\x00\x00\x02", ChainStoreVersionError, "version 2"),
        (b"lg/meta/tip", b"\x00" * 3, ChainStoreCorruptError, "tip"),
        (b"lg/state/\x01" + b"\x00" * 20, b"\x95\x01", ChainStoreCorruptError, "state entry"),
        # A well-formed account that the tip's state root does not commit to.
        (
            b"lg/state/\x01" + b"\x00" * 20,
            b"\x95\xc4\x01\x07\x00\xc4\x00\x00\x00",
            ChainStoreCorruptError,
            "state root",
        ),
    ],
    ids=["version", "tip", "entry", "root"],
)
def test_damaged_store_is_refused_on_open(
    tmp_path: Path, genesis: Genesis, key: bytes, value: bytes, error: type[Exception], words: str
) -> None:
    one_block_chain(tmp_path / "c", genesis)
    db = plyvel.DB(str(tmp_path / "c"))
    db.put(key, value)
    db.close()
    with pytest.raises(error, match=words):
        ChainStore(tmp_path / "c", genesis)
