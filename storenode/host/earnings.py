"""What a host's contracts have earned and burned, derived from the ledger state.

The state holds, per storage contract, the windows proven and missed so far,
and the price per window never changes, so every total an operator watches
follows from the state and the host's book alone: a proven window paid the
installment less the burn (``bps_ceil(price, burn_bps)``), and a contract
that closed with more than half its windows missed burned
``bps_ceil(collateral, penalty_bps)`` of the collateral the host signed for.
Deriving them, instead of counting block events, means a host that crashed
between a block and its own bookkeeping, or was down for a while, reports the
same numbers as one that saw every block. Pure.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import cast

from contracts.encoding import bps_ceil
from contracts.entries import PARAMS_KEY, Params, Status
from contracts.state import State
from contracts.storage import contract_of
from storenode.host.book import BookContract


@dataclass(frozen=True, slots=True)
class Totals:
    windows_proven: int = 0
    windows_missed: int = 0
    earned: int = 0
    """Base units paid to the host (installments less the burn)."""
    burned: int = 0
    """Base units burned from the host's pay and collateral."""


def totals(state: State, contracts: Iterable[BookContract]) -> Totals:
    """The totals of the ``contracts`` the chain holds (pending ones count nothing)."""
    params = cast(Params, state.get(PARAMS_KEY))
    proven = missed = earned = burned = 0
    for c in contracts:
        on_chain = contract_of(state, c.id)
        if on_chain is None:
            continue
        burn = bps_ceil(on_chain.price_per_window, params.burn_bps)
        proven += on_chain.windows_proven
        missed += on_chain.windows_missed
        earned += on_chain.windows_proven * (on_chain.price_per_window - burn)
        burned += on_chain.windows_proven * burn
        if on_chain.status is Status.CLOSED and 2 * on_chain.windows_missed > on_chain.windows:
            burned += bps_ceil(c.terms.collateral, params.penalty_bps)
    return Totals(proven, missed, earned, burned)
