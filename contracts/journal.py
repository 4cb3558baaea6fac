"""The writes and events of one transaction (or one block's begin), on top of a state.

Handlers read and write through a :class:`Journal`; :meth:`Journal.finish`
turns its writes into a new :class:`~contracts.state.State`. A handler that
raises simply drops its journal, so a rejected transaction changes nothing.
Money moves only through :meth:`credit`, :meth:`debit` and :meth:`burn`,
which keep the supply invariant: total supply = Σ balances + Σ escrow +
Σ collateral.
"""

from __future__ import annotations

from typing import Final, cast

import msgspec

from contracts.encoding import Amount, format_tokens
from contracts.entries import (
    EMPTY_ACCOUNT,
    PARAMS_KEY,
    TOTALS_KEY,
    Account,
    Entry,
    Params,
    Totals,
    account_key,
)
from contracts.errors import BalanceInsufficientError
from contracts.events import Burned, BurnReason, Event
from contracts.state import State

_ABSENT: Final = object()
_replace: Final = msgspec.structs.replace


class Journal:
    __slots__ = ("events", "height", "params", "producer", "state", "time", "writes")

    def __init__(self, state: State, *, height: int, time: int, producer: bytes) -> None:
        self.state = state
        self.writes: dict[bytes, Entry | None] = {}
        self.events: list[Event] = []
        self.height = height
        self.time = time
        self.producer = producer
        self.params = cast(Params, state.get(PARAMS_KEY))

    # -- raw entries -----------------------------------------------------------------

    def get(self, key: bytes) -> Entry | None:
        entry = self.writes.get(key, _ABSENT)
        if entry is not _ABSENT:
            return cast("Entry | None", entry)
        return self.state.get(key)

    def put(self, key: bytes, entry: Entry) -> None:
        self.writes[key] = entry

    def delete(self, key: bytes) -> None:
        self.writes[key] = None

    def emit(self, event: Event) -> None:
        self.events.append(event)

    def finish(self) -> tuple[State, tuple[Event, ...]]:
        return self.state.with_writes(self.writes), tuple(self.events)

    # -- accounts and money ----------------------------------------------------------

    def totals(self) -> Totals:
        return cast(Totals, self.get(TOTALS_KEY))

    def account(self, address: bytes) -> Account:
        return cast("Account | None", self.get(account_key(address))) or EMPTY_ACCOUNT

    def set_account(self, address: bytes, account: Account) -> None:
        """Store ``account``; an account with nothing in it is not stored."""
        key = account_key(address)
        if account == EMPTY_ACCOUNT:
            self.writes[key] = None
        else:
            self.writes[key] = account

    def credit(self, address: bytes, amount: int) -> None:
        if amount:
            acct = self.account(address)
            self.set_account(address, _replace(acct, balance=Amount(acct.balance + amount)))

    def debit(self, address: bytes, amount: int, what: str) -> None:
        """Take ``amount`` from ``address``, or raise :class:`BalanceInsufficientError`."""
        acct = self.account(address)
        if acct.balance < amount:
            raise BalanceInsufficientError(
                f"{what} needs {format_tokens(amount)} tokens but 0x{address.hex()} holds "
                f"{format_tokens(acct.balance)}"
            )
        if amount:
            self.set_account(address, _replace(acct, balance=Amount(acct.balance - amount)))

    def burn(self, address: bytes, amount: int, reason: BurnReason) -> None:
        """Destroy ``amount`` (already taken out of a balance, escrow or
        collateral) on behalf of ``address``. Payout and voluntary burns count
        toward the address's reputation; penalties do not."""
        if not amount:
            return
        totals = self.totals()
        self.put(
            TOTALS_KEY,
            _replace(
                totals,
                supply=Amount(totals.supply - amount),
                burned=Amount(totals.burned + amount),
            ),
        )
        if reason is not BurnReason.PENALTY:
            acct = self.account(address)
            self.set_account(address, _replace(acct, burned=Amount(acct.burned + amount)))
        self.emit(Burned(address, Amount(amount), reason))
