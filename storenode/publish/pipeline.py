"""The publish pipeline: put a work on hosts under storage contracts.

:func:`open_publisher` starts a transient node with the home's identity (an
RPC node on 127.0.0.1, a DHT service bootstrapped from the config's peers and
``client.node``, a ledger client of the home's node) and gives a
:class:`Publisher`; :meth:`Publisher.publish` then does, for one work:

1. **fingerprint**: the CID, keccak256 of the file (mapped, not read into memory);
2. **idempotence**: the registry entry and the journal (:mod:`.journal`) say
   whether the work is already published (nothing is sent), registered to
   someone else (:class:`WorkOwnedError`), or half done (resume);
3. **coding pass**: each stripe is RS-coded and its chunk ids and hash kept
   (the shards are dropped: they are coded again for the upload, so memory
   stays bounded), then the manifest is signed;
4. **contracts** (:mod:`.contracting`): host ads from the DHT directory,
   reputations from the ledger, placement, and every host's verified
   acceptance of its terms; a host that refuses or does not answer is left
   out and the shards placed again;
5. **ledger** (:mod:`.transactions`): RegisterWork, one OpenContract per host
   and SetListing when a price is given, in nonce order;
6. **upload** (:mod:`.upload`): the stripes coded again and every shard sent
   to its host, many in flight, while the transactions are awaited in their
   blocks;
7. **manifest** (:mod:`.upload`): to every host of the work and into the DHT.

The journal is saved after every step (and about once a second during the
upload), so an interrupted publish resumes where it stopped.
"""

from __future__ import annotations

import logging
import mmap
import random
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager, suppress
from pathlib import Path
from typing import Final

import trio

from contracts.encoding import format_tokens
from contracts.storage import contract_id
from storenode.client.ledger import DEFAULT_TIMEOUT, LedgerClient, home_node
from storenode.dht import Contact, DhtNode
from storenode.groups import single
from storenode.home import Home
from storenode.identity import Identity, address_of, keccak256
from storenode.ledger import load_genesis
from storenode.ledger.genesis import Genesis
from storenode.ledger.messages import WorkInfo
from storenode.net.dht import DhtService
from storenode.net.rpc import RpcNode, open_rpc_node
from storenode.publish.contracting import Contracting
from storenode.publish.errors import (
    ChainMismatchError,
    JournalError,
    PublishInputError,
    WorkOwnedError,
)
from storenode.publish.journal import Journal, JournalStore, Stage
from storenode.publish.manifest import (
    ManifestError,
    StripeEntry,
    decode_manifest,
    encode_manifest,
    encode_stripes,
    sign_manifest,
)
from storenode.publish.plan import escrow_of
from storenode.publish.session import (
    PER_HOST,
    JournalSaver,
    NoProgress,
    Progress,
    PublishOptions,
    Work,
    WorkResult,
)
from storenode.publish.stripes import stripe_size_for
from storenode.publish.transactions import Transactions, asks_new_price
from storenode.publish.upload import CODING_BATCH, Uploader
from storenode.publish.works import WorkFile

log = logging.getLogger(__name__)

LISTEN_HOST: Final = "127.0.0.1"
"""Where the publisher's transient node listens (a port the system picks)."""


class Publisher:
    """Publishes works as the home's identity. Build it with :func:`open_publisher`."""

    def __init__(
        self,
        rpc: RpcNode,
        dht: DhtService,
        ledger: LedgerClient,
        identity: Identity,
        genesis: Genesis,
        journals: JournalStore,
        *,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.ledger = ledger
        self.identity = identity
        self.genesis = genesis
        self.journals = journals
        self.clock = clock
        self.saver = JournalSaver(journals)
        coding = trio.CapacityLimiter(1)
        self.coding_limiter = coding
        rng = rng if rng is not None else random.SystemRandom()
        self.contracting = Contracting(rpc, dht, ledger, identity, genesis, self.saver, rng)
        self.transactions = Transactions(ledger, identity, genesis, self.saver, clock=clock)
        self.uploader = Uploader(rpc, dht, self.saver, coding)

    async def publish(
        self, file: WorkFile, options: PublishOptions, progress: Progress | None = None
    ) -> WorkResult:
        """Publish one work (see the module docstring), or find it already published."""
        progress = progress if progress is not None else NoProgress()
        with _mapped(file.path) as data:
            # The fingerprint (keccak256 releases the GIL) and the coding pass
            # (SHA-256 of 1 KiB segments, which does not) run on both cores at
            # once. Whether the coding is needed is known only from the
            # fingerprint: when it is not (a journal to resume, a work already
            # registered), it is cancelled.
            progress.phase(file, "fingerprint and coding", data.nbytes)
            try:
                async with trio.open_nursery() as nursery:
                    coding = _CodingPass(self, data, options, progress)
                    nursery.start_soon(coding.run)
                    cid = await trio.to_thread.run_sync(keccak256, data)
                    work = await self._prepare(file, data, cid, options, progress, coding)
                    nursery.cancel_scope.cancel()
            except BaseExceptionGroup as group:
                raise single(group) from None
            if isinstance(work, WorkResult):
                progress.finish(work)
                return work
            return await self._complete(work, options, progress)

    # -- what is there, and the coding pass ----------------------------------------------------

    async def _prepare(
        self,
        file: WorkFile,
        data: memoryview,
        cid: bytes,
        options: PublishOptions,
        progress: Progress,
        coding: _CodingPass,
    ) -> Work | WorkResult:
        entry = (await self.ledger.call_work(cid)).work
        if entry is not None and entry.owner != self.identity.address:
            raise WorkOwnedError(cid, entry.owner)
        loaded = self.journals.load(cid)
        if loaded is not None and loaded[0].genesis != self.genesis.hash.hex():
            log.info("the journal of %s is from another chain: starting over", file.name)
            loaded = None
        if loaded is None:
            if entry is not None:
                return _published_elsewhere(file, cid, data.nbytes, entry)
            journal, raw = await self._code(file, data, cid, options, coding)
        else:
            journal, raw = loaded
        if entry is not None and entry.manifest_hash.hex() != journal.manifest_hash:
            raise JournalError(
                f"work {cid.hex()} is registered with manifest {entry.manifest_hash.hex()}, "
                f"the journal {self.journals.journal_path(cid)} has {journal.manifest_hash}: "
                "remove the journal (the work stays registered)"
            )
        try:
            manifest = decode_manifest(raw)
        except ManifestError as exc:
            raise JournalError(
                f"the manifest beside the journal of {file.name} is damaged ({exc}): "
                "remove the journal to start over"
            ) from None
        journal.registered = entry is not None
        work = Work(file, data, cid, journal, manifest, raw)
        listing_pending = journal.listing_tx and not journal.listed
        if journal.complete and not listing_pending and not asks_new_price(journal, options):
            return self._result(work, "unchanged")
        return work

    async def _code(
        self,
        file: WorkFile,
        data: memoryview,
        cid: bytes,
        options: PublishOptions,
        coding: _CodingPass,
    ) -> tuple[Journal, bytes]:
        k, n, length = options.k, options.n, data.nbytes
        stripe_size = stripe_size_for(k, length=length)
        try:
            entries = await coding.entries()
            manifest = sign_manifest(
                self.identity,
                cid=cid,
                name=file.name,
                media_type=file.media_type,
                length=length,
                k=k,
                n=n,
                stripe_size=stripe_size,
                stripes=entries,
                created=int(self.clock()),
            )
        except ManifestError as exc:
            raise PublishInputError(f"{file.path}: {exc}") from None
        raw = encode_manifest(manifest)
        journal = Journal(
            cid=cid.hex(),
            genesis=self.genesis.hash.hex(),
            path=str(file.path),
            name=file.name,
            media_type=file.media_type,
            length=length,
            k=k,
            n=n,
            stripe_size=stripe_size,
            stripes=len(entries),
            manifest_hash=keccak256(raw).hex(),
            windows=options.windows,
        )
        await trio.to_thread.run_sync(self.journals.save_manifest, cid, raw)
        await self.saver.save(journal)
        log.info(
            "coded %s: %d stripes of %d bytes, k=%d n=%d, manifest %s",
            file.name,
            len(entries),
            stripe_size,
            k,
            n,
            journal.manifest_hash[:16],
        )
        return journal, raw

    # -- contracts, transactions, upload, manifest ---------------------------------------------

    async def _complete(
        self, work: Work, options: PublishOptions, progress: Progress
    ) -> WorkResult:
        journal = work.journal
        was_complete = journal.complete
        if journal.k != options.k or journal.n != options.n:
            log.info(
                "resuming %s with the k=%d n=%d it was started with",
                work.file.name,
                journal.k,
                journal.n,
            )
        status = await self.ledger.call_status()
        await self.transactions.refresh(journal)
        if not journal.contracts_sent:
            progress.phase(work.file, "contracts", 0)
            await self.contracting.negotiate(work, options, status.height)
        else:
            await self.contracting.renew(work, status.height)
        await self.transactions.send(work, options, status.chain_id)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self.transactions.confirm, work)
                await self.uploader.upload(work, options, progress)
        except BaseExceptionGroup as group:
            raise single(group) from None
        if journal.stage is Stage.SENT:
            journal.stage = Stage.UPLOADED
            await self.saver.save(journal)
        progress.phase(work.file, "manifest", 0)
        await self.uploader.store_manifest(work, options)
        journal.stage = Stage.COMPLETE
        await self.saver.save(journal)
        result = self._result(work, "repriced" if was_complete else "published")
        log.info(
            "published %s (%s): %d contracts, escrow %s tokens",
            work.file.name,
            work.cid.hex()[:16],
            len(result.contracts),
            format_tokens(result.cost),
        )
        progress.finish(result)
        return result

    def _result(self, work: Work, status: str) -> WorkResult:
        hosts = work.journal.hosts
        terms = [h.contract_terms() for h in hosts]
        return WorkResult(
            path=str(work.file.path),
            name=work.file.name,
            cid=work.cid,
            length=work.journal.length,
            stripes=work.journal.stripes,
            hosts=tuple(address_of(h.public_key) for h in hosts),
            contracts=tuple(contract_id(t) for t in terms),
            cost=sum(escrow_of(t) for t in terms),
            status=status,
            upload_seconds=work.upload_seconds,
        )


def _published_elsewhere(file: WorkFile, cid: bytes, length: int, entry: WorkInfo) -> WorkResult:
    """A work registered to this key that this home has no journal of."""
    return WorkResult(
        path=str(file.path),
        name=file.name,
        cid=cid,
        length=length,
        stripes=0,
        hosts=(),
        contracts=(),
        cost=0,
        status="unchanged",
        note=(
            f"registered at height {entry.registered_height}; this home has no journal of its "
            "publish, so its contracts were not checked"
        ),
    )


@contextmanager
def _mapped(path: Path) -> Iterator[memoryview]:
    """The file's bytes, mapped read-only (a big work is never read into memory)."""
    try:
        with open(path, "rb") as f:
            mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError) as exc:
        raise PublishInputError(f"cannot read {path}: {exc}") from None
    view = memoryview(mm)
    try:
        yield view
    finally:
        view.release()
        # Views of the file may live on in an exception's traceback: the mapping then
        # goes with the last of them, and closing it now would hide that exception.
        with suppress(BufferError):
            mm.close()


# -- the transient node ----------------------------------------------------------------------


class _CodingPass:
    """The coding pass of a work, run while its fingerprint is computed: each
    stripe coded and its shards' chunk ids (Merkle roots) and stripe hash kept,
    a batch of stripes at a time in a worker thread. The shards themselves are
    dropped (the upload codes them again), so memory stays bounded."""

    def __init__(
        self, publisher: Publisher, data: memoryview, options: PublishOptions, progress: Progress
    ) -> None:
        self._publisher = publisher
        self._data = data
        self._options = options
        self._progress = progress
        self._entries: list[StripeEntry] = []
        self._failure: BaseException | None = None
        self._done = trio.Event()

    async def run(self) -> None:
        k, n, data = self._options.k, self._options.n, self._data
        length = data.nbytes
        stripe_size = stripe_size_for(k, length=length)
        batch = max(1, CODING_BATCH // stripe_size) * stripe_size

        def code(start: int) -> list[StripeEntry]:
            piece = data[start : start + batch]
            return [e for e, _ in encode_stripes(piece, k=k, n=n, stripe_size=stripe_size)]

        try:
            for start in range(0, length, batch):
                self._entries += await trio.to_thread.run_sync(
                    code, start, limiter=self._publisher.coding_limiter
                )
                self._progress.advance(min(batch, length - start))
        except ManifestError as exc:  # the work cannot be coded so (k, n, size)
            self._failure = exc
        finally:
            self._done.set()

    async def entries(self) -> list[StripeEntry]:
        """The stripes' entries, once the pass is done."""
        await self._done.wait()
        if self._failure is not None:
            raise self._failure
        return self._entries


@asynccontextmanager
async def open_publisher(
    home: Home,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    clock: Callable[[], float] = time.time,
) -> AsyncIterator[Publisher]:
    """A :class:`Publisher` for ``home``: its identity, its node and its journals.

    :class:`ChainMismatchError` when the home's genesis file is not the chain of the
    node it talks to. An error raised in the block comes out as itself."""
    config = home.config
    identity = home.identity()
    genesis = load_genesis(config.genesis_file)
    node, hint = home_node(home)
    seeds = {p.key: Contact(p.key, p.host, p.port) for p in (*config.peers, node)}
    try:
        async with open_rpc_node(identity) as rpc, trio.open_nursery() as nursery:
            port = await rpc.listen(LISTEN_HOST, 0)
            contact = Contact(identity.public_key, LISTEN_HOST, port)
            dht = DhtService(rpc, DhtNode(identity, contact, now=clock()), nursery, clock=clock)
            ledger = LedgerClient(rpc, node, timeout=timeout, hint=hint)
            await ledger.connect()
            status = await ledger.call_status()
            if status.genesis_hash != genesis.hash:
                raise ChainMismatchError(
                    f"the node at {ledger.where} follows chain {status.chain_id!r} "
                    f"(genesis {status.genesis_hash.hex()[:16]}…), not the one in "
                    f"{config.genesis_file}: point client.node at a node of this chain"
                )
            await dht.bootstrap(seeds.values())
            journals = JournalStore(config.publish_dir)
            try:
                yield Publisher(rpc, dht, ledger, identity, genesis, journals, clock=clock)
            finally:
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        raise single(group) from None


async def publish_all(
    home: Home,
    works: Sequence[WorkFile],
    options: PublishOptions,
    progress: Progress | None = None,
) -> list[WorkResult]:
    """Publish ``works`` one after another as ``home``'s identity."""
    async with open_publisher(home) as publisher:
        return [await publisher.publish(work, options, progress) for work in works]


__all__ = [
    "PER_HOST",
    "NoProgress",
    "Progress",
    "PublishOptions",
    "Publisher",
    "WorkResult",
    "open_publisher",
    "publish_all",
]
