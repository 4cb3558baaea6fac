"""The host's contract book: the contracts it signed and the manifests it keeps.

A host must remember what it promised across restarts: which terms it signed,
which shard of which work each chunk of a contract is, and whether the
contract is still waiting for its ``OpenContract`` (pending), open on the
chain (active) or over (closed). The chunk store knows bytes, not works; the
chain knows contracts, not placements. The book joins them, so that after a
restart the shard index is rebuilt at once and the prover knows which bytes
answer which challenge.

LevelDB at ``config.host_dir``, keys (format version 1)::

    hb/meta/version      u32 format version (1)
    hb/c/<contract id>   BookRecord: [terms, cid, k, n, [[stripe, shard, chunk id] ...],
                                      state, accepted height]   (msgpack)
    hb/m/<cid>           the manifest's canonical bytes

Every change is one write batch with ``sync=True``: durable when the method
returns. A contract moves through :data:`TRANSITIONS` only::

    pending --open--> active --close--> closed
    pending --expire--> (forgotten: accept_until passed and no OpenContract)

:func:`reconcile` says which moves the chain's state calls for; the daemon
applies them after each block (apply, then act), so a host that was down while
its contracts opened or closed catches up from the state alone.

Thread-safe: the chunk service's worker threads read the book (may this
chunk be stored?) while the daemon writes it.
"""

from __future__ import annotations

import os
import struct
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from enum import Enum, IntEnum
from typing import Any, Final

import msgspec
import plyvel

from contracts.encoding import decoder
from contracts.entries import Status
from contracts.state import State
from contracts.storage import contract_of
from contracts.tx import ContractTerms
from storenode.host.messages import Placement, ShardRef
from storenode.leveldb import ClosingDatabase, OpenErrors, open_leveldb, translated

FORMAT_VERSION: Final = 1
VERSION_KEY: Final = b"hb/meta/version"
CONTRACT_PREFIX: Final = b"hb/c/"
MANIFEST_PREFIX: Final = b"hb/m/"
_U32: Final = struct.Struct(">I")


class BookError(Exception):
    """The contract book cannot be used; the message says what to do."""


class BookCorruptError(BookError):
    def __init__(self, path: str, why: str) -> None:
        super().__init__(
            f"the host's contract book {path} is damaged ({why}): restore it from a backup; "
            "without it the host cannot prove the contracts it holds"
        )


class BookLockedError(BookError):
    def __init__(self, path: str) -> None:
        super().__init__(
            f"the host's contract book {path} is in use by another process: "
            "is another storenode running with this home?"
        )


class BookIOError(BookError):
    def __init__(self, path: str, why: str) -> None:
        super().__init__(f"cannot use the host's contract book {path}: {why}")


class BookTransitionError(AssertionError):
    """A move the transition table does not allow: a bug in the caller."""


_OPEN_ERRORS: Final = OpenErrors(
    not_found=lambda path: BookIOError(path, "it does not exist"),
    unrecognized=lambda path, why: BookIOError(path, f"it is not a contract book ({why})"),
    corrupt=BookCorruptError,
    locked=BookLockedError,
    io=BookIOError,
)


class BookState(IntEnum):
    PENDING = 0
    """Signed by the host; the publisher's OpenContract is not in a block yet."""
    ACTIVE = 1
    """Open on the chain: the host keeps the chunks and proves every window."""
    CLOSED = 2
    """Every window settled: the chunks are let go (unless another contract lists them)."""

    @property
    def label(self) -> str:
        return self.name.lower()


class Move(Enum):
    OPEN = "open"
    CLOSE = "close"
    EXPIRE = "expire"


TRANSITIONS: Final[dict[tuple[BookState, Move], BookState | None]] = {
    (BookState.PENDING, Move.OPEN): BookState.ACTIVE,
    (BookState.ACTIVE, Move.CLOSE): BookState.CLOSED,
    (BookState.PENDING, Move.EXPIRE): None,
}
"""The state after each allowed move; None: the contract is forgotten."""


def step(state: BookState, move: Move) -> BookState | None:
    try:
        return TRANSITIONS[(state, move)]
    except KeyError:
        raise BookTransitionError(f"a {state.label} contract cannot {move.value}") from None


class BookRecord(msgspec.Struct, frozen=True, forbid_unknown_fields=True, array_like=True):
    """What the book stores per contract (the value of ``hb/c/<contract id>``)."""

    terms: bytes
    """``encode(ContractTerms)``: the bytes the host signed."""
    cid: bytes
    k: int
    n: int
    shards: tuple[ShardRef, ...]
    state: BookState
    accepted_height: int


_record_encoder: Final = msgspec.msgpack.Encoder()
_record_decoder: Final = msgspec.msgpack.Decoder(BookRecord)
_terms_decoder: Final = decoder(ContractTerms)


@dataclass(frozen=True, slots=True)
class BookContract:
    """One contract as the host keeps it. ``shards`` are the contract's chunks in
    order: the contract root is ``contract_root([s.chunk_id for s in shards])``."""

    id: bytes
    terms: ContractTerms
    terms_raw: bytes
    cid: bytes
    k: int
    n: int
    shards: tuple[ShardRef, ...]
    state: BookState
    accepted_height: int

    @property
    def live(self) -> bool:
        """Pending or active: the host keeps (or will keep) its chunks."""
        return self.state is not BookState.CLOSED

    @property
    def chunk_size(self) -> int:
        return self.terms.chunk_size

    @property
    def nbytes(self) -> int:
        return self.terms.chunk_count * self.terms.chunk_size

    @property
    def chunk_ids(self) -> list[bytes]:
        return [s.chunk_id for s in self.shards]

    def placement(self, shard: ShardRef) -> Placement:
        return Placement(self.cid, shard.stripe, shard.shard, self.k, self.n)

    def record(self) -> BookRecord:
        return BookRecord(
            self.terms_raw,
            self.cid,
            self.k,
            self.n,
            self.shards,
            self.state,
            self.accepted_height,
        )


def reconcile(
    contracts: Iterable[BookContract], state: State, height: int
) -> list[tuple[BookContract, Move]]:
    """The moves the chain's ``state`` at ``height`` calls for, in order: a pending
    contract the chain holds opens (and closes too if the chain closed it
    meanwhile); an active one the chain closed closes; a pending one whose
    ``accept_until`` is behind ``height`` and that the chain does not hold
    expires (it can no longer be opened)."""
    moves: list[tuple[BookContract, Move]] = []
    for c in contracts:
        if c.state is BookState.CLOSED:
            continue
        on_chain = contract_of(state, c.id)
        if on_chain is None:
            if c.state is BookState.PENDING and height > c.terms.accept_until:
                moves.append((c, Move.EXPIRE))
            continue
        if c.state is BookState.PENDING:
            moves.append((c, Move.OPEN))
        if on_chain.status is Status.CLOSED:
            moves.append((c, Move.CLOSE))
    return moves


class HostBook(ClosingDatabase):
    """The contract book in a LevelDB directory (created when ``path`` is new)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._lock = threading.Lock()
        self._db: Any = open_leveldb(self.path, create=True, errors=_OPEN_ERRORS)
        self._closed = False
        self._contracts: dict[bytes, BookContract] = {}
        # chunk id -> (contract id, stripe, shard) of each live contract's slot holding it
        self._listing: dict[bytes, set[tuple[bytes, int, int]]] = {}
        self._sizes: dict[bytes, int] = {}  # chunk id -> size, for chunks of live contracts
        self._promised = 0
        self._manifests: set[bytes] = set()
        try:
            self._load()
        except BaseException:
            self._db.close()
            raise

    # -- reading -------------------------------------------------------------------------

    def contracts(self) -> list[BookContract]:
        """Every contract in the book, by id."""
        with self._lock:
            return [self._contracts[k] for k in sorted(self._contracts)]

    def live(self) -> list[BookContract]:
        return [c for c in self.contracts() if c.live]

    def get(self, contract_id: bytes) -> BookContract | None:
        with self._lock:
            return self._contracts.get(contract_id)

    def listing(self, chunk_id: bytes) -> list[BookContract]:
        """The live contracts that list ``chunk_id``."""
        with self._lock:
            ids = sorted({slot[0] for slot in self._listing.get(chunk_id, ())})
            return [self._contracts[i] for i in ids]

    def slots(self, chunk_id: bytes) -> list[tuple[BookContract, int, int]]:
        """Where live contracts list ``chunk_id``: (contract, stripe, shard)."""
        with self._lock:
            return [
                (self._contracts[i], stripe, shard)
                for i, stripe, shard in sorted(self._listing.get(chunk_id, ()))
            ]

    def lists(self, chunk_id: bytes) -> bool:
        """Whether a live contract lists ``chunk_id``."""
        with self._lock:
            return chunk_id in self._listing

    @property
    def promised_bytes(self) -> int:
        """Bytes of the distinct chunks that live contracts list: what the host
        has promised to keep (a chunk listed twice counts once)."""
        with self._lock:
            return self._promised

    def new_bytes(self, shards: Iterable[ShardRef], chunk_size: int) -> int:
        """Bytes ``shards`` would add to :attr:`promised_bytes`."""
        with self._lock:
            fresh = {s.chunk_id for s in shards} - self._listing.keys()
        return len(fresh) * chunk_size

    def works(self) -> list[bytes]:
        """The CIDs of the works live contracts hold, sorted."""
        with self._lock:
            return sorted({c.cid for c in self._contracts.values() if c.live})

    def manifest(self, cid: bytes) -> bytes | None:
        with self._lock:
            self._check_open()
            if cid not in self._manifests:
                return None
            with translated(self.path, _OPEN_ERRORS):
                raw: bytes | None = self._db.get(MANIFEST_PREFIX + cid)
            return raw

    def manifests(self) -> list[bytes]:
        """The CIDs whose manifest the book keeps, sorted."""
        with self._lock:
            return sorted(self._manifests)

    # -- writing (durable when they return) ------------------------------------------------

    def add(self, contract: BookContract) -> None:
        """Record a newly signed contract (its id must be new to the book)."""
        with self._lock:
            self._check_open()
            if contract.id in self._contracts:
                raise ValueError(f"contract {contract.id.hex()} is already in the book")
            self._write(puts=[(contract.id, contract)])
            self._contracts[contract.id] = contract
            self._index(contract)

    def apply(self, moves: Iterable[tuple[BookContract, Move]]) -> list[BookContract]:
        """Make ``moves`` (from :func:`reconcile`) in one durable batch; the
        contracts as they are after them (a forgotten one in its last state)."""
        with self._lock:
            self._check_open()
            after: dict[bytes, BookContract] = {}
            gone: set[bytes] = set()
            for contract, move in moves:
                current = after.get(contract.id, self._contracts[contract.id])
                state = step(current.state, move)
                if state is None:
                    gone.add(contract.id)
                    after[contract.id] = current
                else:
                    after[contract.id] = replace(current, state=state)
            if not after:
                return []
            self._write(
                puts=[(i, c) for i, c in after.items() if i not in gone],
                deletes=list(gone),
            )
            for i, c in after.items():
                self._unindex(self._contracts[i])
                if i in gone:
                    del self._contracts[i]
                else:
                    self._contracts[i] = c
                    self._index(c)
            return list(after.values())

    def put_manifest(self, cid: bytes, raw: bytes) -> None:
        with self._lock:
            self._check_open()
            with translated(self.path, _OPEN_ERRORS):
                self._db.put(MANIFEST_PREFIX + cid, raw, sync=True)
            self._manifests.add(cid)

    def delete_manifest(self, cid: bytes) -> None:
        with self._lock:
            self._check_open()
            with translated(self.path, _OPEN_ERRORS):
                self._db.delete(MANIFEST_PREFIX + cid, sync=True)
            self._manifests.discard(cid)

    # -- inside ----------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise BookIOError(self.path, "it is closed")

    def _write(
        self, *, puts: Iterable[tuple[bytes, BookContract]] = (), deletes: Iterable[bytes] = ()
    ) -> None:
        with translated(self.path, _OPEN_ERRORS):
            wb = self._db.write_batch(sync=True)
            for contract_id, contract in puts:
                wb.put(CONTRACT_PREFIX + contract_id, _record_encoder.encode(contract.record()))
            for contract_id in deletes:
                wb.delete(CONTRACT_PREFIX + contract_id)
            wb.write()

    def _index(self, c: BookContract) -> None:
        if not c.live:
            return
        for s in c.shards:
            holders = self._listing.setdefault(s.chunk_id, set())
            if not holders:
                self._sizes[s.chunk_id] = c.chunk_size
                self._promised += c.chunk_size
            holders.add((c.id, s.stripe, s.shard))

    def _unindex(self, c: BookContract) -> None:
        if not c.live:
            return
        for s in c.shards:
            chunk_id = s.chunk_id
            holders = self._listing.get(chunk_id)
            if holders is None:
                continue
            holders.discard((c.id, s.stripe, s.shard))
            if not holders:
                del self._listing[chunk_id]
                self._promised -= self._sizes.pop(chunk_id)

    def _load(self) -> None:
        with translated(self.path, _OPEN_ERRORS):
            raw = self._db.get(VERSION_KEY)
            if raw is None:
                with self._db.iterator(include_value=False) as it:
                    if next(it, None) is not None:
                        raise BookIOError(self.path, "a LevelDB database that is not a book")
                self._db.put(VERSION_KEY, _U32.pack(FORMAT_VERSION), sync=True)
                return
            if raw != _U32.pack(FORMAT_VERSION):
                raise BookIOError(
                    self.path,
                    f"format version {raw.hex()}, this storenode reads version {FORMAT_VERSION}",
                )
            for key, value in self._items(CONTRACT_PREFIX):
                contract = self._decode(key[len(CONTRACT_PREFIX) :], value)
                self._contracts[contract.id] = contract
                self._index(contract)
            for key, _ in self._items(MANIFEST_PREFIX):
                self._manifests.add(key[len(MANIFEST_PREFIX) :])

    def _items(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        with self._db.iterator(prefix=prefix) as it:
            yield from it

    def _decode(self, contract_id: bytes, value: bytes) -> BookContract:
        try:
            r = _record_decoder.decode(value)
            terms = _terms_decoder.decode(r.terms)
        except (msgspec.DecodeError, plyvel.Error) as e:
            raise BookCorruptError(self.path, f"contract {contract_id.hex()}: {e}") from None
        return BookContract(
            contract_id, terms, r.terms, r.cid, r.k, r.n, r.shards, r.state, r.accepted_height
        )
