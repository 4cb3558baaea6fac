"""The host's contract and manifest requests: ``host.offer``, ``contract.propose``,
``manifest.put`` and ``manifest.get``.

A part of :class:`~storenode.host.daemon.HostNode` (a mixin over the node's
state; :class:`_Node` is what it uses). The checks are
:mod:`storenode.host.policy`'s; a signed proposal is written to the
:class:`~storenode.host.book.HostBook` before the signature leaves, so the
host never forgets a promise. A manifest is kept only for a work the host has
a live contract of, and published in the DHT.
"""

from __future__ import annotations

import logging
from typing import Protocol, cast

import msgspec
import trio

from contracts.encoding import format_tokens
from contracts.entries import PARAMS_KEY, Params
from contracts.storage import contract_id
from contracts.token import balance_of
from contracts.tx import sign_terms
from storenode.config import Config, format_size
from storenode.host.book import BookContract, BookState, HostBook
from storenode.host.messages import (
    ContractAccepted,
    ContractProposal,
    ManifestData,
    ManifestGet,
    ManifestPut,
    ManifestStored,
    OfferRequest,
)
from storenode.host.policy import (
    Offer,
    RefusedError,
    Standing,
    check_manifest,
    check_proposal,
    decode_terms,
    read_manifest,
)
from storenode.host.prover import TipView, short
from storenode.identity import Identity, address_hex, address_of, keccak256
from storenode.ledger import Chain
from storenode.net.errors import RequestRefusedError
from storenode.net.peer import PeerConnection
from storenode.publish.records import HostAd
from storenode.store.protocol import ChunkStore
from storenode.wire.messages import ErrorCode

log = logging.getLogger("storenode.host.daemon")
"""The daemon's logger: its lines carry one name whichever part of it speaks."""


class _Node(Protocol):
    """What the handlers use of the node (:class:`~storenode.host.daemon.HostNode`)."""

    config: Config
    identity: Identity
    chain: Chain
    store: ChunkStore | None
    book: HostBook | None
    _nursery: trio.Nursery
    _view: TipView
    _book_lock: trio.Lock
    _missing: dict[bytes, set[bytes]]

    @property
    def free(self) -> int: ...

    def ad(self) -> HostAd: ...

    def ad_changed(self) -> None: ...

    async def _publish_manifest(self, cid: bytes, raw: bytes) -> None: ...

    def _withdraw_manifest(self, cid: bytes, raw: bytes) -> None: ...


class ContractHandlers:
    """The node's contract and manifest handlers (a part of
    :class:`~storenode.host.daemon.HostNode`)."""

    def handle_offer(self: _Node, conn: PeerConnection, body: msgspec.Struct) -> HostAd:
        assert isinstance(body, OfferRequest)
        return self.ad()

    async def handle_propose(
        self: _Node, conn: PeerConnection, body: msgspec.Struct
    ) -> ContractAccepted:
        assert isinstance(body, ContractProposal)
        book, store = self.book, self.store
        assert book is not None and store is not None
        try:
            terms = decode_terms(body.terms)
        except RefusedError as e:
            raise RequestRefusedError(e.code, str(e)) from None
        cid = contract_id(terms)
        async with self._book_lock:
            existing = book.get(cid)
            if existing is not None:
                if not existing.live:
                    raise RequestRefusedError(ErrorCode.REFUSED, f"contract {cid.hex()} is over")
                if (existing.cid, existing.k, existing.n, existing.shards) != (
                    body.cid,
                    body.k,
                    body.n,
                    body.shards,
                ):
                    raise RequestRefusedError(
                        ErrorCode.REFUSED, "these terms were signed here for other shards"
                    )
                return ContractAccepted(cid, sign_terms(self.identity, terms))
            view = self._view
            pending = sum(c.terms.collateral for c in book.live() if c.state is BookState.PENDING)
            standing = Standing(
                chain_id=self.chain.genesis.chain_id,
                height=view.height,
                params=cast(Params, view.state.get(PARAMS_KEY)),
                balance=balance_of(view.state, self.identity.address),
                collateral_pending=pending,
            )
            try:
                check_proposal(
                    body,
                    terms,
                    host_key=self.identity.public_key,
                    offer=Offer.of(self.config),
                    chain=standing,
                    free=self.free,
                    new_bytes=book.new_bytes(body.shards, terms.chunk_size),
                )
            except RefusedError as e:
                log.info("refused a contract from %s: %s", _who(terms.publisher), e)
                raise RequestRefusedError(e.code, str(e)) from None
            contract = BookContract(
                cid,
                terms,
                body.terms,
                body.cid,
                body.k,
                body.n,
                body.shards,
                BookState.PENDING,
                view.height,
            )
            await trio.to_thread.run_sync(book.add, contract)
            self._missing[cid] = await trio.to_thread.run_sync(
                lambda: {i for i in contract.chunk_ids if not store.has(i)}
            )
        log.info(
            "accepted contract %s from %s: %d chunks (%s), %d windows at %s tokens per window",
            short(cid),
            _who(terms.publisher),
            terms.chunk_count,
            format_size(contract.nbytes),
            terms.windows,
            format_tokens(terms.price_per_window),
        )
        self.ad_changed()
        return ContractAccepted(cid, sign_terms(self.identity, terms))

    async def handle_manifest_put(
        self: _Node, conn: PeerConnection, body: msgspec.Struct
    ) -> ManifestStored:
        assert isinstance(body, ManifestPut)
        book = self.book
        assert book is not None

        def check() -> bytes:
            m = read_manifest(body.raw)
            check_manifest(m, [c for c in book.live() if c.cid == m.cid])
            return m.cid

        try:
            cid = await trio.to_thread.run_sync(check)
        except RefusedError as e:
            raise RequestRefusedError(e.code, str(e)) from None
        digest = keccak256(body.raw)
        async with self._book_lock:
            old = book.manifest(cid)
            if old == body.raw:
                return ManifestStored(digest)
            await trio.to_thread.run_sync(book.put_manifest, cid, body.raw)
        if old is not None:
            self._withdraw_manifest(cid, old)
        log.info("keeping the manifest of work %s (%s)", short(cid), format_size(len(body.raw)))
        self._nursery.start_soon(self._publish_manifest, cid, body.raw)
        return ManifestStored(digest)

    def handle_manifest_get(
        self: _Node, conn: PeerConnection, body: msgspec.Struct
    ) -> ManifestData:
        assert isinstance(body, ManifestGet)
        assert self.book is not None
        raw = self.book.manifest(body.cid)
        if raw is None:
            raise RequestRefusedError(
                ErrorCode.NOT_FOUND, f"no manifest of work {body.cid.hex()} is kept here"
            )
        return ManifestData(raw)


def _who(public_key: bytes) -> str:
    return address_hex(address_of(public_key))
