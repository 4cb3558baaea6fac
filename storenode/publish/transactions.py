"""The ledger's side of a publish: register the work, open its contracts, list its price.

:meth:`Transactions.send` signs what the ledger still lacks — RegisterWork,
one OpenContract per host, and a SetListing when a new price is asked —
with consecutive nonces from the node's next one, and submits them in that
order (so the listing is admitted after the registration it needs). Each
transaction's id is written to the journal *before* it is submitted, so a
publish that dies in between finds it on the node (pending or in a block)
rather than sending it twice. :meth:`Transactions.refresh` asks the node
about those ids when a publish resumes: one the node no longer knows is
forgotten and sent again. :meth:`Transactions.confirm` waits until each is
in a block. Fees are the chain's minimum (its genesis's ``min_fee``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Final

from contracts.encoding import Amount, format_tokens
from contracts.tx import Body, OpenContract, RegisterWork, Tx, sign_tx, tx_id
from storenode.client.ledger import LedgerClient, TxNotIncludedError, TxRefusedError
from storenode.identity import Identity, address_hex
from storenode.ledger.genesis import Genesis
from storenode.publish.errors import RESUME_HINT, BalanceTooLowError, TxFailedError
from storenode.publish.journal import HostEntry, Journal, Stage
from storenode.publish.plan import escrow_of, listing_for
from storenode.publish.session import JournalSaver, PublishOptions, Work

log = logging.getLogger(__name__)

VERSION: Final = "1"
"""The version registered for a work."""
CONFIRM_BLOCKS: Final = 15
"""Blocks a transaction may take to reach a block (plus half a minute) before the
publish stops and says so."""


def asks_new_price(journal: Journal, options: PublishOptions) -> bool:
    """Whether ``options`` asks for another price than the one last listed."""
    if options.price is None:
        return False
    listed = int(journal.price) if journal.price else 0
    return options.price != listed


class Transactions:
    """The transactions of a publish (see the module docstring)."""

    def __init__(
        self,
        ledger: LedgerClient,
        identity: Identity,
        genesis: Genesis,
        saver: JournalSaver,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ledger = ledger
        self.identity = identity
        self.genesis = genesis
        self.saver = saver
        self.clock = clock
        self.fee = int(genesis.params.min_fee)

    async def _state(self, tx_hex: str) -> str:
        """``included``, ``pending`` or ``lost`` (the node does not know it)."""
        info = await self.ledger.call_get_tx(bytes.fromhex(tx_hex))
        return "included" if info.found else "pending" if info.pending else "lost"

    async def refresh(self, journal: Journal) -> None:
        """Bring the journal's transactions up to date with the ledger."""
        registering = journal.register_tx and not journal.registered
        if registering and await self._state(journal.register_tx) == "lost":
            journal.register_tx = ""
        for entry in journal.hosts:
            if entry.open_tx and not entry.opened:
                state = await self._state(entry.open_tx)
                entry.opened = state == "included"
                if state == "lost":
                    entry.open_tx = ""
        if journal.listing_tx and not journal.listed:
            state = await self._state(journal.listing_tx)
            journal.listed = state == "included"
            if state == "lost":
                journal.listing_tx = ""
        await self.saver.save(journal)

    async def send(self, work: Work, options: PublishOptions, chain_id: str) -> None:
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
                sends.append((f"the contract with {entry.who}", body, _setter(entry, "open_tx")))
        if options.price is not None and asks_new_price(journal, options):
            body = listing_for(work.cid, options.price, self.identity.address)
            sends.append(("the price", body, _listing_setter(journal, options.price)))
        if sends:
            await self._submit(work, sends, escrow, chain_id)
        if journal.stage in (Stage.CODED, Stage.CONTRACTED):
            journal.stage = Stage.SENT
        await self.saver.save(journal)

    async def _submit(
        self,
        work: Work,
        sends: list[tuple[str, Body, Callable[[str], None]]],
        escrow: int,
        chain_id: str,
    ) -> None:
        journal = work.journal
        account = await self.ledger.call_account(self.identity.address)
        need = escrow + self.fee * len(sends)
        if int(account.balance) < need:
            raise BalanceTooLowError(
                f"publishing {work.file.name} locks {format_tokens(need)} tokens (the escrow "
                f"of its contracts and the fees); {address_hex(account.address)} has "
                f"{format_tokens(int(account.balance))}: fund it, then {RESUME_HINT}"
            )
        nonce = account.next_nonce
        for what, body, record in sends:
            tx = Tx(chain_id, self.identity.public_key, nonce, Amount(self.fee), body)
            signed = sign_tx(self.identity, tx)
            record(tx_id(tx).hex())
            await self.saver.save(journal)
            try:
                await self.ledger.submit(signed)
            except TxRefusedError as exc:
                record("")
                await self.saver.save(journal)
                raise TxFailedError(f"the node refused {what}: {exc}") from None
            nonce += 1

    async def confirm(self, work: Work) -> None:
        """Wait until every transaction sent is in a block."""
        journal = work.journal
        timeout = self.genesis.block_time * CONFIRM_BLOCKS + 30.0
        waits: list[tuple[str, str, Callable[[], None]]] = []
        if journal.register_tx and not journal.registered:
            waits.append(("the registration", journal.register_tx, _mark(journal, "registered")))
        for entry in journal.hosts:
            if entry.open_tx and not entry.opened:
                waits.append((f"the contract with {entry.who}", entry.open_tx, _mark(entry)))
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


def _setter(obj: Journal | HostEntry, name: str) -> Callable[[str], None]:
    """Records a transaction sent (its id) or forgets it ("")."""

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


def _mark(obj: Journal | HostEntry, name: str = "opened") -> Callable[[], None]:
    """Marks a transaction in a block."""

    def done() -> None:
        setattr(obj, name, True)

    return done


__all__ = ["CONFIRM_BLOCKS", "VERSION", "Transactions", "asks_new_price"]
