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
4. **contracts**: host ads from the DHT directory, reputations from the
   ledger, :func:`.plan.assign`; every host is sent its terms
   (``contract.propose``), and its signed acceptance is checked. A host that
   refuses or does not answer is left out and the shards placed again, until
   every host accepted (or :class:`TooFewHostsError`);
5. **ledger**: RegisterWork, one OpenContract per host, and SetListing when a
   price is given, signed with consecutive nonces and submitted in order;
6. **upload**: stripes coded again in a worker thread and every shard sent
   (``chunk.put``) to its host, many in flight, a few per host, while the
   transactions are awaited in their blocks. A host that stops answering is
   retried a few times, then the publish stops (:class:`HostFailedError`)
   with the journal saved, so the same command resumes;
7. **manifest**: ``manifest.put`` to every host of the work (they keep and
   republish it) and the pointer and pieces into the DHT.

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
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, Protocol, cast

import msgspec
import trio

from contracts.encoding import Amount, encode, format_tokens
from contracts.storage import contract_id
from contracts.tx import (
    TERMS_DOMAIN,
    Body,
    ContractTerms,
    OpenContract,
    RegisterWork,
    Tx,
    sign_tx,
    tx_id,
)
from storenode.client.ledger import (
    DEFAULT_TIMEOUT,
    LedgerClient,
    TxNotIncludedError,
    TxRefusedError,
    home_node,
)
from storenode.coding.rs import ReedSolomon
from storenode.config import PeerSpec
from storenode.dht import Contact, DhtNode
from storenode.home import Home
from storenode.host.messages import (
    ChunkPut,
    ContractAccepted,
    ContractProposal,
    ManifestPut,
    ManifestStored,
    Placement,
    ShardRef,
    Stored,
)
from storenode.identity import Identity, address_hex, address_of, is_valid_signature, keccak256
from storenode.ledger import load_genesis
from storenode.ledger.genesis import Genesis
from storenode.net.dht import DhtService
from storenode.net.errors import NetError
from storenode.net.rpc import RpcNode, open_rpc_node
from storenode.publish.errors import (
    RESUME_HINT,
    BalanceTooLowError,
    ChainMismatchError,
    HostFailedError,
    HostRefusedError,
    JournalError,
    PublishInputError,
    TxFailedError,
    WorkOwnedError,
)
from storenode.publish.journal import HostEntry, Journal, JournalStore, Stage, encode_journal
from storenode.publish.manifest import (
    Manifest,
    ManifestError,
    StripeEntry,
    decode_manifest,
    encode_manifest,
    encode_stripes,
    sign_manifest,
)
from storenode.publish.plan import (
    ACCEPT_MARGIN,
    HostOffer,
    assign,
    chunk_ids_of,
    escrow_of,
    listing_for,
    make_terms,
    select_hosts,
)
from storenode.publish.records import (
    HOSTS_KEY,
    MANIFEST_TTL,
    HostAd,
    RecordFormatError,
    decode_host_ad,
    encode_pointer,
    manifest_key,
    manifest_piece_key,
    split_manifest,
)
from storenode.publish.stripes import stripe_size_for
from storenode.publish.works import WorkFile
from storenode.wire.errors import RemoteError, WireError
from storenode.wire.messages import ErrorCode

log = logging.getLogger(__name__)

PER_HOST: Final = 8
"""``chunk.put`` requests in flight to one host."""
PUT_ATTEMPTS: Final = 4
"""Tries of one request to a host of an opened contract before the publish stops."""
RETRY_DELAY: Final = 0.5
"""Seconds before the second try; doubled before each further one."""
PUT_TIMEOUT: Final = 30.0
PROPOSE_TIMEOUT: Final = 10.0
CODING_BATCH: Final = 8 << 20
"""Bytes of the work coded per worker-thread call."""
FLUSH_INTERVAL: Final = 1.0
"""Seconds between two saves of the journal during the upload."""
RENEW_MARGIN: Final = 5
"""An acceptance good for fewer blocks than this is asked for again."""
VERSION: Final = "1"
"""The version registered for a work."""
_RETRYABLE: Final = frozenset(
    {ErrorCode.BUSY, ErrorCode.TIMEOUT, ErrorCode.INTERNAL, ErrorCode.UNAVAILABLE}
)


# -- what the caller gives and gets --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PublishOptions:
    k: int
    n: int
    windows: int
    """How many challenge windows the contracts last."""
    max_price: int
    """The most a host may ask, base units per GiB per window."""
    price: int | None = None
    """The work's price per download in base units (None: leave the listing alone)."""
    author: str = "unknown"
    per_host: int = PER_HOST
    put_timeout: float = PUT_TIMEOUT
    retry_delay: float = RETRY_DELAY


@dataclass(frozen=True, slots=True)
class WorkResult:
    """What a publish did for one work (``status``: ``published`` or ``unchanged``)."""

    path: str
    name: str
    cid: bytes
    length: int
    stripes: int
    hosts: tuple[bytes, ...]
    """The hosts' addresses."""
    contracts: tuple[bytes, ...]
    cost: int
    """The escrow of the work's contracts, base units."""
    status: str
    note: str = ""
    upload_seconds: float | None = None
    """How long this run's upload took (None: nothing was uploaded)."""


class Progress(Protocol):
    """What the pipeline reports as it goes (the CLI draws a progress bar)."""

    def phase(self, work: WorkFile, what: str, total: int) -> None:
        """A phase of ``work`` begins; ``total`` bytes (0: a phase without a bar)."""

    def advance(self, amount: int) -> None:
        """``amount`` more bytes of the phase are done."""

    def finish(self, result: WorkResult) -> None:
        """The work is done."""


class NoProgress:
    def phase(self, work: WorkFile, what: str, total: int) -> None:
        pass

    def advance(self, amount: int) -> None:
        pass

    def finish(self, result: WorkResult) -> None:
        pass


# -- the publisher -------------------------------------------------------------------------


@dataclass(slots=True)
class _Work:
    """One work being published: its file, its bytes and what is done."""

    file: WorkFile
    data: memoryview
    cid: bytes
    journal: Journal
    manifest: Manifest
    raw_manifest: bytes
    dirty: bool = False
    upload_seconds: float | None = None
    acked: list[set[int]] = field(default_factory=list)


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
        self.rpc = rpc
        self.dht = dht
        self.ledger = ledger
        self.identity = identity
        self.genesis = genesis
        self.journals = journals
        self.clock = clock
        self.rng = rng if rng is not None else random.SystemRandom()
        self.fee = int(genesis.params.min_fee)
        self._coding = trio.CapacityLimiter(1)
        self._saving = trio.Lock()

    async def publish(
        self, file: WorkFile, options: PublishOptions, progress: Progress | None = None
    ) -> WorkResult:
        """Publish one work (see the module docstring), or find it already published."""
        progress = progress if progress is not None else NoProgress()
        with _mapped(file.path) as data:
            progress.phase(file, "fingerprint", 0)
            cid = await trio.to_thread.run_sync(keccak256, data)
            work = await self._prepare(file, data, cid, options, progress)
            if isinstance(work, WorkResult):
                progress.finish(work)
                return work
            return await self._complete(work, options, progress)

    # -- 1-3: what is there, and the coding pass ---------------------------------------------

    async def _prepare(
        self,
        file: WorkFile,
        data: memoryview,
        cid: bytes,
        options: PublishOptions,
        progress: Progress,
    ) -> _Work | WorkResult:
        entry = (await self.ledger.call_work(cid)).work
        if entry is not None and entry.owner != self.identity.address:
            raise WorkOwnedError(cid, entry.owner)
        loaded = self.journals.load(cid)
        if loaded is not None and loaded[0].genesis != self.genesis.hash.hex():
            log.info("the journal of %s is from another chain: starting over", file.name)
            loaded = None
        if loaded is None:
            if entry is not None:
                return WorkResult(
                    str(file.path),
                    file.name,
                    cid,
                    data.nbytes,
                    0,
                    (),
                    (),
                    0,
                    "unchanged",
                    f"registered at height {entry.registered_height}; this home has no journal "
                    "of its publish, so its contracts were not checked",
                )
            journal, raw = await self._code(file, data, cid, options, progress)
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
        work = _Work(file, data, cid, journal, manifest, raw)
        work.acked = [set(h.acked) for h in journal.hosts]
        listing_pending = journal.listing_tx and not journal.listed
        if journal.complete and not listing_pending and not self._reprice(journal, options):
            return self._result(work, "unchanged")
        return work

    async def _code(
        self,
        file: WorkFile,
        data: memoryview,
        cid: bytes,
        options: PublishOptions,
        progress: Progress,
    ) -> tuple[Journal, bytes]:
        k, n, length = options.k, options.n, data.nbytes
        stripe_size = stripe_size_for(k, length=length)
        batch = max(1, CODING_BATCH // stripe_size) * stripe_size
        progress.phase(file, "coding", length)
        entries: list[StripeEntry] = []

        def code(start: int) -> list[StripeEntry]:
            piece = data[start : start + batch]
            return [e for e, _ in encode_stripes(piece, k=k, n=n, stripe_size=stripe_size)]

        try:
            for start in range(0, length, batch):
                entries += await trio.to_thread.run_sync(code, start, limiter=self._coding)
                progress.advance(min(batch, length - start))
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
        await self._save(journal)
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

    def _reprice(self, journal: Journal, options: PublishOptions) -> bool:
        """Whether ``options`` asks for another price than the one listed."""
        if options.price is None:
            return False
        listed = int(journal.price) if journal.price else 0
        return options.price != listed

    # -- 4-7 -----------------------------------------------------------------------------

    async def _complete(
        self, work: _Work, options: PublishOptions, progress: Progress
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
        await self._refresh(journal)
        if not journal.contracts_sent:
            progress.phase(work.file, "contracts", 0)
            await self._negotiate(work, options, status.height)
        else:
            await self._renew(work, status.height)
        await self._send(work, options, status.chain_id)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._confirm, work)
                await self._upload(work, options, progress)
        except BaseExceptionGroup as group:
            raise _single(group) from None
        if journal.stage is Stage.SENT:
            journal.stage = Stage.UPLOADED
            await self._save(journal)
        progress.phase(work.file, "manifest", 0)
        await self._store_manifest(work, options)
        journal.stage = Stage.COMPLETE
        await self._save(journal)
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

    def _result(self, work: _Work, status: str) -> WorkResult:
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

    # -- contracts ----------------------------------------------------------------------------

    async def _host_ads(self) -> list[HostAd]:
        ads = []
        for record in await self.dht.find_value(HOSTS_KEY):
            try:
                ads.append(decode_host_ad(record.value, owner=record.owner))
            except RecordFormatError as exc:
                log.info("skipping the host ad of %s: %s", record.owner.hex()[:16], exc)
        return ads

    async def _offers(self, ads: Sequence[HostAd]) -> list[HostOffer]:
        reputations: dict[bytes, int] = {}

        async def one(ad: HostAd) -> None:
            info = await self.ledger.call_account(address_of(ad.key))
            reputations[ad.key] = int(info.reputation)

        async with trio.open_nursery() as nursery:
            for ad in ads:
                nursery.start_soon(one, ad)
        return [HostOffer(ad, reputations[ad.key]) for ad in ads]

    async def _negotiate(self, work: _Work, options: PublishOptions, height: int) -> None:
        """Place the shards and get every host's acceptance, leaving out the hosts that
        refuse or do not answer (nothing is opened yet, so shards may still move)."""
        journal = work.journal
        ads = await self._host_ads()
        refused: set[bytes] = set()
        while True:
            choice = select_hosts(
                ads,
                chain_id=self.genesis.chain_id,
                max_price=options.max_price,
                windows=journal.windows,
                publisher=self.identity.public_key,
                exclude=refused,
            )
            offers = await self._offers(choice.usable)
            shards = assign(
                work.cid,
                journal.stripes,
                journal.n,
                journal.shard_size,
                offers,
                skipped=choice.skipped,
            )
            by_key = {ad.key: ad for ad in choice.usable}
            entries: list[HostEntry] = []
            asks: list[tuple[HostEntry, ContractTerms]] = []
            for key, mine in shards.items():
                old = journal.host(key)
                if old is not None and old.shards == mine and self._still_good(old, height):
                    entries.append(old)
                    continue
                ad = by_key[key]
                entry = HostEntry(key=key.hex(), host=ad.host, port=ad.port, shards=mine)
                terms = make_terms(
                    chain_id=self.genesis.chain_id,
                    publisher=self.identity.public_key,
                    ad=ad,
                    chunk_ids=chunk_ids_of(work.manifest, mine),
                    chunk_size=journal.shard_size,
                    windows=journal.windows,
                    window_blocks=self.genesis.window_blocks,
                    height=height,
                    salt=self.rng.getrandbits(64),
                )
                entries.append(entry)
                asks.append((entry, terms))
            failed = await self._propose_all(work, asks, moving=True)
            journal.hosts = entries
            await self._save(journal)
            if not failed:
                break
            refused |= failed
        work.acked = [set() for _ in journal.hosts]
        journal.stage = Stage.CONTRACTED
        await self._save(journal)

    async def _renew(self, work: _Work, height: int) -> None:
        """Some contracts are sent or open, so the hosts are fixed: take their current
        addresses from their ads, and ask a host whose acceptance ran out before its
        contract was opened to accept the same terms again (a new salt and deadline)."""
        ads = {ad.key: ad for ad in await self._host_ads()}
        asks: list[tuple[HostEntry, ContractTerms]] = []
        for entry in work.journal.hosts:
            ad = ads.get(entry.public_key)
            if ad is not None and (ad.host, ad.port) != (entry.host, entry.port):
                log.info("host %s moved to %s:%d", _who(entry), ad.host, ad.port)
                entry.host, entry.port = ad.host, ad.port
            if not entry.opened and not entry.open_tx and not self._still_good(entry, height):
                terms = msgspec.structs.replace(
                    entry.contract_terms(),
                    accept_until=height + ACCEPT_MARGIN,
                    salt=self.rng.getrandbits(64),
                )
                asks.append((entry, terms))
        failed = await self._propose_all(work, asks, moving=False)
        await self._save(work.journal)
        if failed:
            who = ", ".join(address_hex(address_of(key)) for key in sorted(failed))
            raise HostFailedError(
                f"host {who} no longer accepts its contract for {work.file.name}, and the "
                f"other hosts' contracts are open, so its shards cannot move: start it "
                f"again, then {RESUME_HINT}"
            )

    def _still_good(self, entry: HostEntry, height: int) -> bool:
        return entry.accepted and entry.contract_terms().accept_until >= height + RENEW_MARGIN

    async def _propose_all(
        self, work: _Work, asks: Sequence[tuple[HostEntry, ContractTerms]], *, moving: bool
    ) -> set[bytes]:
        """Propose terms to each host at once; the keys of those that did not accept."""
        failed: set[bytes] = set()

        async def one(entry: HostEntry, terms: ContractTerms) -> None:
            why = await self._propose(work, entry, terms)
            if why is not None:
                log.warning(
                    "host %s (%s:%d) %s%s",
                    _who(entry),
                    entry.host,
                    entry.port,
                    why,
                    "; placing its shards elsewhere" if moving else "",
                )
                failed.add(entry.public_key)

        async with trio.open_nursery() as nursery:
            for entry, terms in asks:
                nursery.start_soon(one, entry, terms)
        return failed

    async def _propose(self, work: _Work, entry: HostEntry, terms: ContractTerms) -> str | None:
        """Ask one host to accept ``terms`` for its shards; None when it did (recorded
        in ``entry``), else why not."""
        journal, manifest = work.journal, work.manifest
        raw = encode(terms)
        proposal = ContractProposal(
            terms=raw,
            cid=work.cid,
            k=journal.k,
            n=journal.n,
            shards=tuple(ShardRef(s, i, manifest.stripes[s].chunk_ids[i]) for s, i in entry.shards),
        )
        peer = PeerSpec(entry.public_key, entry.host, entry.port)
        try:
            reply = await self.rpc.request(peer, proposal, timeout=PROPOSE_TIMEOUT)
        except RemoteError as exc:
            return f"refused the contract ({exc.message})"
        except (NetError, WireError) as exc:
            return f"did not answer ({exc})"
        if (
            not isinstance(reply, ContractAccepted)
            or reply.contract_id != contract_id(terms)
            or not is_valid_signature(terms.host, TERMS_DOMAIN, raw, reply.signature)
        ):
            return "sent an acceptance that does not verify"
        entry.accept(raw, reply.signature)
        log.info(
            "host %s accepted contract %s: %d chunks, %s tokens per window",
            _who(entry),
            reply.contract_id.hex()[:16],
            len(entry.shards),
            format_tokens(int(terms.price_per_window)),
        )
        return None

    # -- the ledger ---------------------------------------------------------------------------

    async def _tx_state(self, tx_hex: str) -> str:
        """``included``, ``pending`` or ``lost`` (the node does not know it)."""
        info = await self.ledger.call_get_tx(bytes.fromhex(tx_hex))
        return "included" if info.found else "pending" if info.pending else "lost"

    async def _refresh(self, journal: Journal) -> None:
        """Bring the journal's transactions up to date with the ledger."""
        registering = journal.register_tx and not journal.registered
        if registering and await self._tx_state(journal.register_tx) == "lost":
            journal.register_tx = ""
        for entry in journal.hosts:
            if entry.open_tx and not entry.opened:
                state = await self._tx_state(entry.open_tx)
                entry.opened = state == "included"
                if state == "lost":
                    entry.open_tx = ""
        if journal.listing_tx and not journal.listed:
            state = await self._tx_state(journal.listing_tx)
            journal.listed = state == "included"
            if state == "lost":
                journal.listing_tx = ""
        await self._save(journal)

    async def _send(self, work: _Work, options: PublishOptions, chain_id: str) -> None:
        """Sign and submit, in nonce order, what the ledger still lacks."""
        journal = work.journal
        sends: list[tuple[str, Body, Callable[[str], None]]] = []
        if not journal.registered and not journal.register_tx:
            body: Body = RegisterWork(
                fingerprint=work.cid,
                name=work.file.name,
                version=VERSION,
                date=datetime.fromtimestamp(self.clock(), UTC).date().isoformat(),
                author=options.author,
                manifest_hash=bytes.fromhex(journal.manifest_hash),
            )
            sends.append(("the registration", body, _setter(journal, "register_tx")))
        escrow = 0
        for entry in journal.hosts:
            if not entry.opened and not entry.open_tx:
                terms = entry.contract_terms()
                escrow += escrow_of(terms)
                body = OpenContract(terms, bytes.fromhex(entry.signature))
                what = f"the contract with {address_hex(address_of(entry.public_key))}"
                sends.append((what, body, _setter(entry, "open_tx")))
        if options.price is not None and self._reprice(journal, options):
            body = listing_for(work.cid, options.price, self.identity.address)
            sends.append(("the price", body, _listing_setter(journal, options.price)))
        if sends:
            account = await self.ledger.call_account(self.identity.address)
            need = escrow + self.fee * len(sends)
            if int(account.balance) < need:
                raise BalanceTooLowError(
                    f"publishing {work.file.name} locks {format_tokens(need)} tokens (the "
                    f"escrow of its contracts and the fees); {address_hex(account.address)} has "
                    f"{format_tokens(int(account.balance))}: fund it, then {RESUME_HINT}"
                )
            nonce = account.next_nonce
            for what, body, record in sends:
                tx = Tx(chain_id, self.identity.public_key, nonce, Amount(self.fee), body)
                signed = sign_tx(self.identity, tx)
                record(tx_id(tx).hex())
                await self._save(journal)
                try:
                    await self.ledger.submit(signed)
                except TxRefusedError as exc:
                    record("")
                    await self._save(journal)
                    raise TxFailedError(f"the node refused {what}: {exc}") from None
                nonce += 1
        if journal.stage in (Stage.CODED, Stage.CONTRACTED):
            journal.stage = Stage.SENT
        await self._save(journal)

    async def _confirm(self, work: _Work) -> None:
        """Wait until every transaction sent is in a block."""
        journal = work.journal
        timeout = self.genesis.block_time * (RENEW_MARGIN + 10) + 30.0
        waits: list[tuple[str, str, Callable[[], None]]] = []
        if journal.register_tx and not journal.registered:
            waits.append(("the registration", journal.register_tx, _mark(journal, "registered")))
        for entry in journal.hosts:
            if entry.open_tx and not entry.opened:
                what = f"the contract with {address_hex(address_of(entry.public_key))}"
                waits.append((what, entry.open_tx, _mark(entry, "opened")))
        if journal.listing_tx and not journal.listed:
            waits.append(("the price", journal.listing_tx, _mark(journal, "listed")))
        for what, tx, done in waits:
            try:
                await self.ledger.wait_for_tx(bytes.fromhex(tx), timeout=timeout)
            except TxNotIncludedError as exc:
                raise TxFailedError(f"{what} is not in a block: {exc}; {RESUME_HINT}") from None
            done()
            work.dirty = True
        log.info("the transactions of %s are in blocks", work.file.name)

    # -- the upload ---------------------------------------------------------------------------

    async def _upload(self, work: _Work, options: PublishOptions, progress: Progress) -> None:
        """Code the stripes again and send each shard a host has not acknowledged."""
        journal = work.journal
        needs: dict[int, list[tuple[int, int, int]]] = {}  # stripe -> [(host, position, shard)]
        for h, entry in enumerate(journal.hosts):
            for pos, (s, i) in enumerate(entry.shards):
                if pos not in work.acked[h]:
                    needs.setdefault(s, []).append((h, pos, i))
        count = sum(len(v) for v in needs.values())
        progress.phase(work.file, "upload", count * journal.shard_size)
        if not count:
            return
        started = time.perf_counter()
        senders: dict[int, trio.MemorySendChannel[tuple[int, int, int, memoryview]]] = {}
        try:
            async with trio.open_nursery() as flushing:
                flushing.start_soon(self._flush, work)
                async with trio.open_nursery() as nursery:
                    for h in sorted({h for v in needs.values() for h, _, _ in v}):
                        send, receive = trio.open_memory_channel[tuple[int, int, int, memoryview]](
                            options.per_host * 2
                        )
                        senders[h] = send
                        async with receive:
                            for _ in range(options.per_host):
                                nursery.start_soon(
                                    self._put_worker, work, h, receive.clone(), options, progress
                                )
                    nursery.start_soon(self._produce, work, needs, senders)
                flushing.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            raise _single(group) from None
        finally:
            with trio.CancelScope(shield=True):
                await self._save_acks(work)
        work.upload_seconds = time.perf_counter() - started
        log.info(
            "uploaded %d chunks of %s in %.2f s",
            count,
            work.file.name,
            work.upload_seconds,
        )

    async def _produce(
        self,
        work: _Work,
        needs: dict[int, list[tuple[int, int, int]]],
        senders: dict[int, trio.MemorySendChannel[tuple[int, int, int, memoryview]]],
    ) -> None:
        journal = work.journal
        size = journal.stripe_size
        code = ReedSolomon(journal.k, journal.n)
        per_batch = max(1, CODING_BATCH // size)
        stripes = sorted(needs)

        def encode_batch(batch: Sequence[int]) -> list[list[memoryview]]:
            return [code.encode_stripe(_stripe(work.data, s, size)) for s in batch]

        try:
            for b in range(0, len(stripes), per_batch):
                batch = stripes[b : b + per_batch]
                coded = await trio.to_thread.run_sync(encode_batch, batch, limiter=self._coding)
                for s, shards in zip(batch, coded, strict=True):
                    for h, pos, i in needs[s]:
                        await senders[h].send((pos, s, i, shards[i]))
        finally:
            for send in senders.values():
                send.close()

    async def _put_worker(
        self,
        work: _Work,
        h: int,
        receive: trio.MemoryReceiveChannel[tuple[int, int, int, memoryview]],
        options: PublishOptions,
        progress: Progress,
    ) -> None:
        journal = work.journal
        entry = journal.hosts[h]
        peer = PeerSpec(entry.public_key, entry.host, entry.port)
        manifest = work.manifest
        async with receive:
            async for pos, s, i, data in receive:
                put = ChunkPut(
                    manifest.stripes[s].chunk_ids[i],
                    Placement(work.cid, s, i, journal.k, journal.n),
                    cast(bytes, data),  # sent as it is: msgspec encodes any buffer as bin
                )
                reply = await self._request(
                    entry, peer, put, f"chunk {i} of stripe {s} of {work.file.name}", options
                )
                if not isinstance(reply, Stored) or reply.chunk_id != put.chunk_id:
                    raise HostRefusedError(
                        f"host {_who(entry)} answered chunk {i} of stripe {s} with something "
                        f"else than its acknowledgement; {RESUME_HINT}"
                    )
                work.acked[h].add(pos)
                work.dirty = True
                progress.advance(len(data))

    async def _request(
        self,
        entry: HostEntry,
        peer: PeerSpec,
        body: msgspec.Struct,
        what: str,
        options: PublishOptions,
    ) -> msgspec.Struct:
        """``body``'s reply from a host of an opened contract, retried when the host does
        not answer; :class:`HostRefusedError` or :class:`HostFailedError`."""
        delay = options.retry_delay
        last = ""
        for attempt in range(PUT_ATTEMPTS):
            if attempt:
                await trio.sleep(delay)
                delay *= 2
            try:
                return await self.rpc.request(peer, body, timeout=options.put_timeout)
            except RemoteError as exc:
                if exc.code not in _RETRYABLE:
                    raise HostRefusedError(
                        f"host {_who(entry)} refused {what}: {exc.message}; fix what it says, "
                        f"then {RESUME_HINT}"
                    ) from None
                last = exc.message
            except (NetError, WireError) as exc:
                last = str(exc)
            log.info("host %s: %s failed (%s), trying again", _who(entry), what, last)
        raise HostFailedError(
            f"host {_who(entry)} at {entry.host}:{entry.port} stopped answering ({last}); "
            f"{what} was tried {PUT_ATTEMPTS} times. Its contract is open, so its shards "
            f"cannot move: once it is back, {RESUME_HINT}"
        )

    async def _flush(self, work: _Work) -> None:
        while True:
            await trio.sleep(FLUSH_INTERVAL)
            if work.dirty:
                await self._save_acks(work)

    async def _save_acks(self, work: _Work) -> None:
        for entry, acked in zip(work.journal.hosts, work.acked, strict=True):
            entry.acked = sorted(acked)
        work.dirty = False
        await self._save(work.journal)

    # -- the manifest -------------------------------------------------------------------------

    async def _store_manifest(self, work: _Work, options: PublishOptions) -> None:
        """Give the manifest to every host of the work and store it in the DHT."""
        journal = work.journal
        put = ManifestPut(work.raw_manifest)

        async def give(entry: HostEntry) -> None:
            peer = PeerSpec(entry.public_key, entry.host, entry.port)
            reply = await self._request(
                entry, peer, put, f"the manifest of {work.file.name}", options
            )
            if not isinstance(reply, ManifestStored):
                raise HostRefusedError(
                    f"host {_who(entry)} answered the manifest with something else than its "
                    f"acknowledgement; {RESUME_HINT}"
                )
            entry.manifest_stored = True

        try:
            async with trio.open_nursery() as nursery:
                for entry in journal.hosts:
                    if not entry.manifest_stored:
                        nursery.start_soon(give, entry)
                if not journal.dht_stored:
                    nursery.start_soon(self._manifest_to_dht, work)
        except BaseExceptionGroup as group:
            raise _single(group) from None
        finally:
            with trio.CancelScope(shield=True):
                await self._save(journal)

    async def _manifest_to_dht(self, work: _Work) -> None:
        pointer, pieces = split_manifest(work.raw_manifest)
        stored: list[int] = []

        async def publish(key: bytes, value: bytes) -> None:
            stored.append(await self.dht.publish(key, value, ttl=MANIFEST_TTL))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(publish, manifest_key(work.cid), encode_pointer(pointer))
            for index, piece in enumerate(pieces):
                key = manifest_piece_key(pointer.manifest_hash, index)
                nursery.start_soon(publish, key, piece)
        work.journal.dht_stored = min(stored) > 0
        if not work.journal.dht_stored:
            log.warning(
                "no DHT node took a copy of the manifest of %s; its hosts keep and publish it",
                work.file.name,
            )

    # -- the journal ---------------------------------------------------------------------------

    async def _save(self, journal: Journal) -> None:
        raw = encode_journal(journal)
        async with self._saving:
            await trio.to_thread.run_sync(self.journals.write, bytes.fromhex(journal.cid), raw)


def _setter(obj: Journal | HostEntry, name: str) -> Callable[[str], None]:
    def record(tx: str) -> None:
        setattr(obj, name, tx)

    return record


def _listing_setter(journal: Journal, price: int) -> Callable[[str], None]:
    """Records the SetListing sent (and the price it lists), or forgets it ("")."""
    before = journal.price

    def record(tx: str) -> None:
        journal.listing_tx, journal.listed = tx, False
        journal.price = str(int(price)) if tx else before

    return record


def _mark(obj: Journal | HostEntry, name: str) -> Callable[[], None]:
    def done() -> None:
        setattr(obj, name, True)

    return done


def _who(entry: HostEntry) -> str:
    return address_hex(address_of(entry.public_key))


def _stripe(data: memoryview, index: int, size: int) -> memoryview | bytes:
    """Stripe ``index`` of the work: a view, or a padded copy for a short last stripe."""
    piece = data[index * size : (index + 1) * size]
    if piece.nbytes == size:
        return piece
    return bytes(piece) + bytes(size - piece.nbytes)


def _single(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one error inside nested groups (a failed task cancels its siblings), or the
    group itself when several tasks failed on their own."""
    leaves: list[BaseException] = []
    stack: list[BaseException] = [group]
    while stack:
        exc = stack.pop()
        if isinstance(exc, BaseExceptionGroup):
            stack.extend(exc.exceptions)
        else:
            leaves.append(exc)
    return leaves[0] if len(leaves) == 1 else group


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
            port = await rpc.listen("127.0.0.1", 0)
            contact = Contact(identity.public_key, "127.0.0.1", port)
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
            try:
                yield Publisher(
                    rpc,
                    dht,
                    ledger,
                    identity,
                    genesis,
                    JournalStore(config.publish_dir),
                    clock=clock,
                )
            finally:
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        raise _single(group) from None


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
