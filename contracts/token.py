"""The token: ERC-20 semantics over integer base units (18 decimals).

Transfer, approve (sets the allowance; zero removes it), transfer-from (the
sender spends what an owner approved for it) and a voluntary burn. Amounts may
be zero, as in ERC-20; a transfer to oneself only costs the fee. The total
supply changes only at genesis and by burns (:meth:`Journal.burn`).
"""

from __future__ import annotations

from typing import cast

from contracts.encoding import ZERO, Amount
from contracts.entries import (
    EMPTY_ACCOUNT,
    TOTALS_KEY,
    Account,
    Allowance,
    Totals,
    account_key,
    allowance_key,
)
from contracts.errors import AllowanceInsufficientError
from contracts.events import Approved, BurnReason, Transferred
from contracts.journal import Journal
from contracts.state import State
from contracts.tx import Approve, Burn, Transfer, TransferFrom


def transfer(j: Journal, sender: bytes, body: Transfer) -> None:
    _move(j, sender, body.to, body.amount)


def approve(j: Journal, sender: bytes, body: Approve) -> None:
    key = allowance_key(sender, body.spender)
    if body.amount:
        j.put(key, Allowance(body.amount))
    else:
        j.delete(key)
    j.emit(Approved(sender, body.spender, body.amount))


def transfer_from(j: Journal, sender: bytes, body: TransferFrom) -> None:
    key = allowance_key(body.owner, sender)
    allowed = cast("Allowance | None", j.get(key))
    have = allowed.amount if allowed is not None else ZERO
    if have < body.amount:
        raise AllowanceInsufficientError(
            f"0x{sender.hex()} may move {int(have)} base units of 0x{body.owner.hex()}, "
            f"not {int(body.amount)}"
        )
    left = have - body.amount
    if left:
        j.put(key, Allowance(Amount(left)))
    elif allowed is not None:
        j.delete(key)
    _move(j, body.owner, body.to, body.amount)


def burn(j: Journal, sender: bytes, body: Burn) -> None:
    j.debit(sender, body.amount, "the burn")
    j.burn(sender, body.amount, BurnReason.VOLUNTARY)


def _move(j: Journal, source: bytes, to: bytes, amount: Amount) -> None:
    j.debit(source, amount, "the transfer")
    j.credit(to, amount)
    j.emit(Transferred(source, to, amount))


# -- queries ---------------------------------------------------------------------------


def account_of(state: State, address: bytes) -> Account:
    """The account at ``address`` (an empty one if it never held anything)."""
    return cast("Account | None", state.get(account_key(address))) or EMPTY_ACCOUNT


def balance_of(state: State, address: bytes) -> Amount:
    return account_of(state, address).balance


def nonce_of(state: State, address: bytes) -> int:
    """The nonce the address's next transaction must carry."""
    return account_of(state, address).nonce


def allowance_of(state: State, owner: bytes, spender: bytes) -> Amount:
    allowed = cast("Allowance | None", state.get(allowance_key(owner, spender)))
    return allowed.amount if allowed is not None else ZERO


def totals_of(state: State) -> Totals:
    return cast(Totals, state.get(TOTALS_KEY))


def total_supply(state: State) -> Amount:
    return totals_of(state).supply


def total_burned(state: State) -> Amount:
    return totals_of(state).burned


def height_of(state: State) -> int:
    """The height of the last block begun on this state (0 for genesis)."""
    return totals_of(state).height
