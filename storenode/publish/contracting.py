"""Getting every host of a work to accept its storage contract.

:meth:`Contracting.negotiate` runs while no contract is sent: it reads the
host ads in the DHT directory and the hosts' reputations on the ledger,
places the shards (:func:`.plan.assign`), and proposes each host its terms
(``contract.propose``), all at once. A host that refuses, does not answer,
or returns an acceptance that does not verify (the contract id and the
host's signature over the terms in ``TERMS_DOMAIN``, as the ledger checks
them) is left out and the shards are placed again without it. A host whose
shards and still-good acceptance are already in the journal is not asked
again.

:meth:`Contracting.renew` runs once contracts are sent: the hosts are then
fixed, so it only follows hosts that moved (their ads) and asks a host whose
acceptance ran out before its contract was opened to accept the same terms
with a new deadline.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from typing import Final

import msgspec
import trio

from contracts.encoding import encode, format_tokens
from contracts.storage import contract_id
from contracts.tx import TERMS_DOMAIN, ContractTerms
from storenode.client.ledger import LedgerClient
from storenode.config import PeerSpec
from storenode.dht.records import Record
from storenode.host.messages import ContractAccepted, ContractProposal, ShardRef
from storenode.identity import Identity, address_hex, address_of, is_valid_signature
from storenode.ledger.genesis import Genesis
from storenode.net.dht import DhtService
from storenode.net.errors import NetError
from storenode.net.rpc import RpcNode
from storenode.publish.errors import RESUME_HINT, HostFailedError
from storenode.publish.journal import HostEntry, Stage
from storenode.publish.plan import (
    ACCEPT_MARGIN,
    HostOffer,
    assign,
    chunk_ids_of,
    make_terms,
    select_hosts,
)
from storenode.publish.records import (
    HOST_BUCKETS,
    HostAd,
    RecordFormatError,
    decode_host_ad,
    host_bucket,
    hosts_key,
)
from storenode.publish.session import JournalSaver, PublishOptions, Work
from storenode.wire.errors import RemoteError, WireError

log = logging.getLogger(__name__)


def _who(key: bytes) -> str:
    return address_hex(address_of(key))


PROPOSE_TIMEOUT: Final = 10.0
RENEW_MARGIN: Final = 5
"""An acceptance good for fewer blocks than this is asked for again."""


async def read_host_directory(dht: DhtService) -> list[HostAd]:
    """Every host's ad, each bucket of the directory read at once. Ads that do not
    decode, or sit in a bucket not their host's, are skipped."""
    buckets: list[list[Record]] = [[] for _ in range(HOST_BUCKETS)]

    async def read(bucket: int) -> None:
        buckets[bucket] = await dht.find_value(hosts_key(bucket))

    async with trio.open_nursery() as nursery:
        for bucket in range(HOST_BUCKETS):
            nursery.start_soon(read, bucket)
    ads: dict[bytes, HostAd] = {}
    for bucket, records in enumerate(buckets):
        for record in records:
            if host_bucket(record.owner) != bucket:
                log.info("skipping a host ad of %s outside its bucket", _who(record.owner))
                continue
            try:
                ads[record.owner] = decode_host_ad(record.value, owner=record.owner)
            except RecordFormatError as exc:
                log.info("skipping the host ad of %s: %s", _who(record.owner), exc)
    return list(ads.values())


class Contracting:
    """The contract step of a publish (see the module docstring)."""

    def __init__(
        self,
        rpc: RpcNode,
        dht: DhtService,
        ledger: LedgerClient,
        identity: Identity,
        genesis: Genesis,
        saver: JournalSaver,
        rng: random.Random,
    ) -> None:
        self.rpc = rpc
        self.dht = dht
        self.ledger = ledger
        self.identity = identity
        self.genesis = genesis
        self.saver = saver
        self.rng = rng

    async def offers(self, ads: Sequence[HostAd]) -> list[HostOffer]:
        """The ads with each host's reputation on the ledger."""
        reputations: dict[bytes, int] = {}

        async def one(ad: HostAd) -> None:
            info = await self.ledger.call_account(address_of(ad.key))
            reputations[ad.key] = int(info.reputation)

        async with trio.open_nursery() as nursery:
            for ad in ads:
                nursery.start_soon(one, ad)
        return [HostOffer(ad, reputations[ad.key]) for ad in ads]

    async def negotiate(self, work: Work, options: PublishOptions, height: int) -> None:
        """Place the shards and get every host's acceptance, leaving out the hosts that
        refuse or do not answer (nothing is opened yet, so shards may still move)."""
        journal = work.journal
        ads = await read_host_directory(self.dht)
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
            shards = assign(
                work.cid,
                journal.stripes,
                journal.n,
                journal.shard_size,
                await self.offers(choice.usable),
                skipped=choice.skipped,
            )
            by_key = {ad.key: ad for ad in choice.usable}
            entries: list[HostEntry] = []
            asks: list[tuple[HostEntry, ContractTerms]] = []
            for key, mine in shards.items():
                old = journal.host(key)
                if old is not None and old.shards == mine and self.still_good(old, height):
                    entries.append(old)
                    continue
                ad = by_key[key]
                entry = HostEntry(key=key.hex(), host=ad.host, port=ad.port, shards=mine)
                entries.append(entry)
                asks.append((entry, self._terms(work, ad, mine, height)))
            failed = await self.propose_all(work, asks, moving=True)
            journal.hosts = entries
            work.reset_acks()
            await self.saver.save(journal)
            if not failed:
                break
            refused |= failed
        journal.stage = Stage.CONTRACTED
        await self.saver.save(journal)

    def _terms(
        self, work: Work, ad: HostAd, shards: Sequence[tuple[int, int]], height: int
    ) -> ContractTerms:
        journal = work.journal
        return make_terms(
            chain_id=self.genesis.chain_id,
            publisher=self.identity.public_key,
            ad=ad,
            chunk_ids=chunk_ids_of(work.manifest, shards),
            chunk_size=journal.shard_size,
            windows=journal.windows,
            window_blocks=self.genesis.window_blocks,
            height=height,
            salt=self.rng.getrandbits(64),
        )

    async def renew(self, work: Work, height: int) -> None:
        """Some contracts are sent or open, so the hosts are fixed: take their current
        addresses from their ads, and ask a host whose acceptance ran out before its
        contract was opened to accept the same terms again (a new salt and deadline)."""
        ads = {ad.key: ad for ad in await read_host_directory(self.dht)}
        asks: list[tuple[HostEntry, ContractTerms]] = []
        for entry in work.journal.hosts:
            ad = ads.get(entry.public_key)
            if ad is not None and (ad.host, ad.port) != (entry.host, entry.port):
                log.info("host %s moved to %s:%d", entry.who, ad.host, ad.port)
                entry.host, entry.port = ad.host, ad.port
            if not entry.opened and not entry.open_tx and not self.still_good(entry, height):
                terms = msgspec.structs.replace(
                    entry.contract_terms(),
                    accept_until=height + ACCEPT_MARGIN,
                    salt=self.rng.getrandbits(64),
                )
                asks.append((entry, terms))
        failed = await self.propose_all(work, asks, moving=False)
        await self.saver.save(work.journal)
        if failed:
            who = ", ".join(address_hex(address_of(key)) for key in sorted(failed))
            raise HostFailedError(
                f"host {who} no longer accepts its contract for {work.file.name}, and the "
                f"other hosts' contracts are open, so its shards cannot move: start it "
                f"again, then {RESUME_HINT}"
            )

    @staticmethod
    def still_good(entry: HostEntry, height: int) -> bool:
        """Whether the host's acceptance can still open its contract in time."""
        return entry.accepted and entry.contract_terms().accept_until >= height + RENEW_MARGIN

    async def propose_all(
        self, work: Work, asks: Sequence[tuple[HostEntry, ContractTerms]], *, moving: bool
    ) -> set[bytes]:
        """Propose terms to each host at once; the keys of those that did not accept."""
        failed: set[bytes] = set()

        async def one(entry: HostEntry, terms: ContractTerms) -> None:
            why = await self.propose(work, entry, terms)
            if why is not None:
                log.warning(
                    "host %s (%s:%d) %s%s",
                    entry.who,
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

    async def propose(self, work: Work, entry: HostEntry, terms: ContractTerms) -> str | None:
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
            entry.who,
            reply.contract_id.hex()[:16],
            len(entry.shards),
            format_tokens(int(terms.price_per_window)),
        )
        return None


__all__ = ["PROPOSE_TIMEOUT", "RENEW_MARGIN", "Contracting"]
