"""The chain store: blocks, their indexes and the contract state in LevelDB (plyvel).

Keys (format version 1; integers big endian; spec: docs/specs/ledger.md,
"Blocks and chain")::

    lg/meta/version     u32 format version (1)
    lg/meta/genesis     encode(Genesis): the chain this store holds
    lg/meta/tip         u64 height || 32-byte hash of the tip block (the genesis hash at 0)
    lg/block/<u64 h>    encode(Block) of block h (h >= 1)
    lg/hash/<hash>      u64 height of the block with that hash
    lg/tx/<tx id>       u64 height || u32 index of the transaction in its block
    lg/state/<key>      encode(entry): one contract state entry (contracts' keys)

:meth:`ChainStore.apply_block` writes a block, its hash and transaction
indexes, the block's state changes, the new tip and any writes of other
subsystems in **one write batch with sync=True**, and only then moves the
in-memory tip and state: after a crash the store holds every block up to its
tip and the state at that tip, never part of a block. Opening rebuilds the
state from the ``lg/state/`` entries and checks its root against the tip
header's state root.
"""

from __future__ import annotations

import hashlib
import os
import struct
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final

from contracts import State
from contracts.encoding import encode
from storenode.ledger.block import Block, block_hash, decode_block, encode_block
from storenode.ledger.errors import (
    BlockInvalidError,
    ChainStoreClosedError,
    ChainStoreConflictError,
    ChainStoreCorruptError,
    ChainStoreGenesisMismatchError,
    ChainStoreIOError,
    ChainStoreLockedError,
    ChainStoreNotFoundError,
    ChainStoreUnrecognizedError,
    ChainStoreVersionError,
)
from storenode.ledger.genesis import Genesis, genesis_hash
from storenode.leveldb import ClosingDatabase, OpenErrors, open_leveldb, translated

FORMAT_VERSION: Final = 1
PREFIX: Final = b"lg/"
VERSION_KEY: Final = b"lg/meta/version"
GENESIS_KEY: Final = b"lg/meta/genesis"
TIP_KEY: Final = b"lg/meta/tip"
BLOCK_PREFIX: Final = b"lg/block/"
HASH_PREFIX: Final = b"lg/hash/"
TX_PREFIX: Final = b"lg/tx/"
STATE_PREFIX: Final = b"lg/state/"

_U32: Final = struct.Struct(">I")
_U64: Final = struct.Struct(">Q")
_TIP: Final = struct.Struct(">Q32s")
_TX_AT: Final = struct.Struct(">QI")

Write = tuple[bytes, bytes | None]
"""``(key, value)`` to put, or ``(key, None)`` to delete."""


@dataclass(frozen=True, slots=True)
class Tip:
    """The last block applied (height 0: the genesis)."""

    height: int
    hash: bytes
    time: int
    state_root: bytes


def block_key(height: int) -> bytes:
    return BLOCK_PREFIX + _U64.pack(height)


class ChainStore(ClosingDatabase):
    """The blocks and state of one chain in a LevelDB directory.

    ``path`` is created (with its parents) when ``create`` is true and nothing
    is there; an empty store starts at the genesis. One process at a time may
    hold a store open (LevelDB's lock). Writes are serialized by a lock.
    """

    def __init__(
        self, path: str | os.PathLike[str], genesis: Genesis, *, create: bool = True
    ) -> None:
        self._path = os.fspath(path)
        self._genesis = genesis
        self._genesis_hash = genesis_hash(genesis)
        self._lock = threading.Lock()
        self._closed = True
        self._db: Any = self._open(create)
        try:
            self._tip, self._state = self._load_or_init()
        except BaseException:
            self._db.close()
            raise
        self._closed = False

    # -- reading ------------------------------------------------------------------------

    @property
    def path(self) -> str:
        return self._path

    @property
    def genesis(self) -> Genesis:
        return self._genesis

    @property
    def tip(self) -> Tip:
        return self._tip

    @property
    def state(self) -> State:
        """The committed contract state at the tip."""
        return self._state

    def block_bytes(self, height: int) -> bytes | None:
        """``encode(Block)`` of block ``height`` as stored (what a peer syncing asks for)."""
        self._check_open()
        with self._guard():
            raw: bytes | None = self._db.get(block_key(height))
        return raw

    def block(self, height: int) -> Block | None:
        raw = self.block_bytes(height)
        if raw is None:
            return None
        try:
            return decode_block(raw)
        except BlockInvalidError as exc:
            raise ChainStoreCorruptError(self._path, f"block {height}: {exc}") from None

    def height_of(self, block_hash: bytes) -> int | None:
        """The height of the block with that hash (0 for the genesis hash)."""
        if block_hash == self._genesis_hash:
            return 0
        self._check_open()
        with self._guard():
            raw: bytes | None = self._db.get(HASH_PREFIX + block_hash)
        return None if raw is None else self._u64(raw, "a block-hash index")

    def tx_location(self, tx_id: bytes) -> tuple[int, int] | None:
        """``(height, index)`` of a committed transaction, or None."""
        self._check_open()
        with self._guard():
            raw: bytes | None = self._db.get(TX_PREFIX + tx_id)
        if raw is None:
            return None
        if len(raw) != _TX_AT.size:
            raise ChainStoreCorruptError(self._path, "a transaction index is malformed")
        height, index = _TX_AT.unpack(raw)
        return height, index

    def transaction(self, tx_id: bytes) -> tuple[bytes, int, int] | None:
        """``(encode(SignedTx), height, index)`` of a committed transaction, or None."""
        where = self.tx_location(tx_id)
        if where is None:
            return None
        block = self.block(where[0])
        if block is None or where[1] >= len(block.transactions):
            raise ChainStoreCorruptError(self._path, f"transaction {tx_id.hex()} is lost")
        return block.transactions[where[1]], where[0], where[1]

    def blocks_bytes(self, start: int, stop: int) -> Iterator[bytes]:
        """Stored blocks ``start .. stop - 1`` (stopping early at the tip)."""
        self._check_open()
        start = max(start, 1)
        with (
            self._guard(),
            self._db.iterator(start=block_key(start), stop=block_key(stop)) as it,
        ):
            for _, raw in it:
                yield raw

    def state_entries(self) -> Iterator[tuple[bytes, bytes]]:
        """Every stored ``(state key, encode(entry))``, in key order."""
        self._check_open()
        with self._guard():
            yield from self._iter_state()

    def _iter_state(self) -> Iterator[tuple[bytes, bytes]]:
        with self._db.iterator(prefix=STATE_PREFIX) as it:
            for key, value in it:
                yield key[len(STATE_PREFIX) :], value

    # -- writing ------------------------------------------------------------------------

    def apply_block(
        self,
        block: Block,
        state: State,
        tx_ids: Sequence[bytes],
        *,
        extra_writes: Iterable[Write] = (),
    ) -> State:
        """Store ``block`` as the new tip with ``state``, the state after it (its
        pending changes since the tip are what is written), and return the
        committed state. ``tx_ids`` are the ids of ``block.transactions`` in
        order. ``extra_writes`` are other subsystems' writes for the same block
        (keys outside ``lg/``). One write batch, ``sync=True``; the in-memory
        tip moves only after it returned.

        The caller has validated the block (:mod:`storenode.ledger.chain`); a
        block that does not follow the tip, or whose state root is not the
        state's, raises :class:`ChainStoreConflictError` and writes nothing.
        """
        header = block.header
        if len(tx_ids) != len(block.transactions):
            raise ValueError("one transaction id per transaction of the block")
        extra = list(extra_writes)
        if any(key.startswith(PREFIX) for key, _ in extra):
            raise ValueError("extra writes must not use the ledger's lg/ keys")
        with self._lock, self._guard():
            self._check_open()
            tip = self._tip
            if header.height != tip.height + 1 or header.previous_hash != tip.hash:
                raise ChainStoreConflictError(
                    self._path,
                    f"block {header.height} does not follow the stored tip {tip.height}",
                )
            changes = state.changes()
            committed = state.commit()
            if committed.root != header.state_root:
                raise ChainStoreConflictError(
                    self._path, f"block {header.height}'s state root is not the state's"
                )
            digest = block_hash(header)
            wb = self._db.write_batch(sync=True)
            wb.put(block_key(header.height), encode_block(block))
            wb.put(HASH_PREFIX + digest, _U64.pack(header.height))
            for index, tx_id in enumerate(tx_ids):
                wb.put(TX_PREFIX + tx_id, _TX_AT.pack(header.height, index))
            for key, value in changes:
                if value is None:
                    wb.delete(STATE_PREFIX + key)
                else:
                    wb.put(STATE_PREFIX + key, value)
            for key, value in extra:
                if value is None:
                    wb.delete(key)
                else:
                    wb.put(key, value)
            wb.put(TIP_KEY, _TIP.pack(header.height, digest))
            wb.write()
            self._tip = Tip(header.height, digest, header.time, header.state_root)
            self._state = committed
            return committed

    @property
    def db(self) -> Any:
        """The plyvel database, for other subsystems' reads under their own prefixes."""
        self._check_open()
        return self._db

    def __repr__(self) -> str:
        return f"ChainStore({self._path!r}, tip={self._tip.height})"

    # -- opening ------------------------------------------------------------------------

    def _open(self, create: bool) -> Any:
        return open_leveldb(self._path, create=create, errors=_OPEN_ERRORS)

    def _load_or_init(self) -> tuple[Tip, State]:
        genesis = self._genesis
        with self._guard():
            raw: bytes | None = self._db.get(VERSION_KEY)
            if raw is None:
                with self._db.iterator(include_value=False) as it:
                    if next(it, None) is not None:
                        raise ChainStoreUnrecognizedError(
                            self._path, "a LevelDB database without a chain-store version"
                        )
                return self._init()
            if len(raw) != _U32.size:
                raise ChainStoreCorruptError(self._path, f"version record of {len(raw)} bytes")
            (version,) = _U32.unpack(raw)
            if version != FORMAT_VERSION:
                raise ChainStoreVersionError(self._path, version, FORMAT_VERSION)
            stored = self._db.get(GENESIS_KEY)
            if stored is None:
                raise ChainStoreCorruptError(self._path, "the genesis record is missing")
            if stored != encode(genesis):
                raise ChainStoreGenesisMismatchError(
                    self._path, hashlib.sha256(stored).digest(), self._genesis_hash
                )
            tip_raw = self._db.get(TIP_KEY)
            if tip_raw is None or len(tip_raw) != _TIP.size:
                raise ChainStoreCorruptError(self._path, "the tip record is missing or malformed")
            height, digest = _TIP.unpack(tip_raw)
            try:
                state = State.from_entries(self._iter_state())
            except ValueError as exc:
                raise ChainStoreCorruptError(self._path, f"a state entry: {exc}") from None
        if height == 0:
            if digest != self._genesis_hash:
                raise ChainStoreCorruptError(self._path, "the tip at 0 is not the genesis")
            tip = Tip(0, digest, genesis.time, genesis.state().root)
        else:
            block = self._stored_block(height)
            if block_hash(block.header) != digest:
                raise ChainStoreCorruptError(self._path, f"block {height} is not the tip's hash")
            tip = Tip(height, digest, block.header.time, block.header.state_root)
        if state.root != tip.state_root:
            raise ChainStoreCorruptError(
                self._path, f"the stored state's root is not block {height}'s state root"
            )
        return tip, state

    def _init(self) -> tuple[Tip, State]:
        genesis = self._genesis
        state = genesis.state()
        wb = self._db.write_batch(sync=True)
        wb.put(VERSION_KEY, _U32.pack(FORMAT_VERSION))
        wb.put(GENESIS_KEY, encode(genesis))
        wb.put(TIP_KEY, _TIP.pack(0, self._genesis_hash))
        for key, entry in state.items():
            wb.put(STATE_PREFIX + key, encode(entry))
        wb.write()
        return Tip(0, self._genesis_hash, genesis.time, state.root), state

    def _stored_block(self, height: int) -> Block:
        raw: bytes | None = self._db.get(block_key(height))
        if raw is None:
            raise ChainStoreCorruptError(self._path, f"the tip block {height} is missing")
        try:
            return decode_block(raw)
        except BlockInvalidError as exc:
            raise ChainStoreCorruptError(self._path, f"block {height}: {exc}") from None

    # -- helpers ------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise ChainStoreClosedError(self._path)

    @contextmanager
    def _guard(self) -> Iterator[None]:
        """Translate plyvel's errors into chain-store errors."""
        try:
            with translated(self._path, _OPEN_ERRORS):
                yield
        except RuntimeError as e:
            if self._closed:  # plyvel: the database was closed under us
                raise ChainStoreClosedError(self._path) from e
            raise

    def _u64(self, raw: bytes, what: str) -> int:
        if len(raw) != _U64.size:
            raise ChainStoreCorruptError(self._path, f"{what} is malformed")
        value: int = _U64.unpack(raw)[0]
        return value


_OPEN_ERRORS = OpenErrors(
    not_found=ChainStoreNotFoundError,
    unrecognized=ChainStoreUnrecognizedError,
    corrupt=ChainStoreCorruptError,
    locked=ChainStoreLockedError,
    io=ChainStoreIOError,
)
