"""What a transition did, for the shells that act after a block commits.

:func:`contracts.apply` and :func:`contracts.begin_block` return the events of
what they did, in order. Events are not part of the state (nor of its root);
they are how the ledger's subscribers learn, without diffing states, that a
window opened (a host must prove it), a window was settled (a wallet's balance
moved), a work changed hands. Each is a tagged :class:`~contracts.encoding.Record`,
so a list of them encodes like a transaction body.
"""

from __future__ import annotations

from enum import IntEnum

from contracts.encoding import Address, Amount, Record
from storenode.wire.messages import U32, U64, Hash32


class BurnReason(IntEnum):
    PAYOUT = 1
    """The burn share of a proven window's installment (counts toward reputation)."""
    VOLUNTARY = 2
    """A Burn transaction (counts toward reputation)."""
    PENALTY = 3
    """Collateral lost by a host that missed more than half its windows (does not count)."""


class Transferred(Record, frozen=True, tag=1):
    source: Address
    to: Address
    amount: Amount


class Approved(Record, frozen=True, tag=2):
    owner: Address
    spender: Address
    amount: Amount


class Burned(Record, frozen=True, tag=3):
    address: Address
    amount: Amount
    reason: BurnReason


class FeePaid(Record, frozen=True, tag=4):
    payer: Address
    producer: Address
    amount: Amount


class WorkRegistered(Record, frozen=True, tag=10):
    fingerprint: Hash32
    owner: Address


class WorkTransferred(Record, frozen=True, tag=11):
    fingerprint: Hash32
    previous: Address
    owner: Address


class ContractOpened(Record, frozen=True, tag=20):
    contract_id: Hash32
    publisher: Address
    host: Address
    escrow: Amount
    collateral: Amount
    first_window_start: U64


class ContractRevised(Record, frozen=True, tag=21):
    contract_id: Hash32
    revision: U64
    root: Hash32
    chunk_count: U32


class WindowOpened(Record, frozen=True, tag=22):
    """The host must prove ``segment_index`` of ``chunk_index`` in a block of
    heights ``start .. end`` (inclusive)."""

    contract_id: Hash32
    window: U32
    chunk_index: U32
    segment_index: U32
    start: U64
    end: U64


class ProofAccepted(Record, frozen=True, tag=23):
    contract_id: Hash32
    window: U32


class WindowSettled(Record, frozen=True, tag=24):
    contract_id: Hash32
    window: U32
    proven: bool
    paid: Amount
    """To the host (the installment minus the burn), when proven."""
    burned: Amount
    refunded: Amount
    """To the publisher (the whole installment), when not proven."""


class ContractClosed(Record, frozen=True, tag=25):
    contract_id: Hash32
    windows_missed: U32
    returned: Amount
    """Collateral back to the host."""
    penalty: Amount
    """Collateral burned."""


class ListingSet(Record, frozen=True, tag=30):
    fingerprint: Hash32
    price: Amount


class Bought(Record, frozen=True, tag=31):
    fingerprint: Hash32
    buyer: Address
    price: Amount


Event = (
    Transferred
    | Approved
    | Burned
    | FeePaid
    | WorkRegistered
    | WorkTransferred
    | ContractOpened
    | ContractRevised
    | WindowOpened
    | ProofAccepted
    | WindowSettled
    | ContractClosed
    | ListingSet
    | Bought
)
