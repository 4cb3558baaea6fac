"""Reputation: a function of ledger state alone.

For an address with ``burned`` base units burned toward its reputation (2% of
every storage payout it earned plus its voluntary burns; collateral lost as a
penalty does not count), ``proven`` windows proven and ``missed`` windows
missed (counted when each window is settled), and the chain's ``miss_weight``
``m`` (4 by default)::

    reputation = burned × (proven + 1) // (proven + 1 + m × missed)

in base units. It is what the address burned, discounted by its record: a
host that never missed keeps all of it; each missed window weighs as much as
``m`` proven ones, so a host that missed a fifth of its windows keeps about
half. It grows with every burn (a Sybil must burn for each identity), never
grows by missing, and is integer arithmetic only, so every node computes the
same number from the same state. Placement and clients rank hosts by it.

:func:`host_report` adds what an operator's dashboard shows next to it: the
contracts the address hosts, what they lock and what they may still earn.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from contracts.encoding import bps_ceil
from contracts.entries import PARAMS_KEY, Params, Role, Status
from contracts.state import State
from contracts.storage import contract_of, contracts_of
from contracts.token import account_of


@dataclass(frozen=True, slots=True)
class Standing:
    """The terms of an address's reputation, and the result."""

    burned: int
    windows_proven: int
    windows_missed: int
    reputation: int


def score(burned: int, proven: int, missed: int, miss_weight: int) -> int:
    """The reputation formula (see the module docstring)."""
    return burned * (proven + 1) // (proven + 1 + miss_weight * missed)


def standing_of(state: State, address: bytes) -> Standing:
    acct = account_of(state, address)
    weight = cast(Params, state.get(PARAMS_KEY)).miss_weight
    return Standing(
        burned=int(acct.burned),
        windows_proven=acct.windows_proven,
        windows_missed=acct.windows_missed,
        reputation=score(acct.burned, acct.windows_proven, acct.windows_missed, weight),
    )


def reputation_of(state: State, address: bytes) -> int:
    return standing_of(state, address).reputation


def rank_hosts(state: State, addresses: list[bytes]) -> list[bytes]:
    """``addresses`` from the most reputable down (ties by address, so every
    node ranks alike)."""
    return sorted(addresses, key=lambda a: (-reputation_of(state, a), a))


@dataclass(frozen=True, slots=True)
class HostReport:
    """An address as a host: its standing and the contracts it hosts."""

    standing: Standing
    contracts_active: int
    """Opened and not yet closed (pending or in a window)."""
    contracts_closed: int
    windows_awaiting_proof: int
    """Open windows not proven yet: what the host must answer now."""
    collateral_locked: int
    earnings_ahead: int
    """What the remaining escrow pays if every remaining window is proven
    (installments minus the burn)."""


def host_report(state: State, address: bytes) -> HostReport:
    params = cast(Params, state.get(PARAMS_KEY))
    active = closed = awaiting = locked = ahead = 0
    for cid, role in contracts_of(state, address):
        contract = contract_of(state, cid)
        if role is Role.PUBLISHER or contract is None:
            continue
        if contract.status is Status.CLOSED:
            closed += 1
            continue
        active += 1
        awaiting += contract.status is Status.ACTIVE and not contract.proven
        locked += contract.collateral
        windows_left = (
            contract.escrow // contract.price_per_window if contract.price_per_window else 0
        )
        burn = bps_ceil(contract.price_per_window, params.burn_bps)
        ahead += windows_left * (contract.price_per_window - burn)
    return HostReport(standing_of(state, address), active, closed, awaiting, locked, ahead)
