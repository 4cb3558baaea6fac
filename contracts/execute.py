"""The transitions the ledger calls: :func:`genesis_state` once, then for every
block :func:`begin_block` and :func:`apply` per transaction.

Every block at height h >= 1 is applied as::

    state, events = begin_block(state, ctx)          # height, due contract windows
    for tx in block.transactions:
        state, more = apply(state, verify_tx(tx), ctx)  # or reject the block
    root = state.root

with the same :class:`BlockContext` throughout. Both functions are pure: the
result depends only on the state, the transaction and the context, and the
given state is left as it was. A transaction either applies completely or
raises a :class:`~contracts.errors.TxRejectedError` (and a block containing
it is invalid); a rejected transaction pays no fee.

What apply checks, in order: the chain id; the height (the state must have
begun this block); the nonce (the sender's next); the fee (at least
``min_fee``, and covered by the balance). Then the nonce is used, the fee
taken, the body's handler runs, and the fee is credited to the producer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import msgspec

from contracts import storage, token, works
from contracts.encoding import MAX_AMOUNT, ZERO, Amount
from contracts.entries import (
    PARAMS_KEY,
    TOTALS_KEY,
    Account,
    Entry,
    Params,
    Totals,
    account_key,
    check_params,
)
from contracts.errors import (
    BlockContextError,
    ChainIdMismatchError,
    FeeTooLowError,
    GenesisInvalidError,
    NonceGapError,
    NonceReplayedError,
)
from contracts.events import Event, FeePaid
from contracts.journal import Journal
from contracts.state import State
from contracts.tx import (
    Approve,
    Burn,
    Buy,
    OpenContract,
    RegisterWork,
    ReviseContract,
    SetListing,
    SubmitProof,
    Transfer,
    TransferFrom,
    TransferWork,
    VerifiedTx,
)
from storenode.identity import ID_SIZE

_replace: Final = msgspec.structs.replace


@dataclass(frozen=True, slots=True)
class BlockContext:
    """What a transition may know about the block it runs in; from the block header."""

    height: int
    """The block's height (the first block after genesis is 1)."""
    time: int
    """The block's time, as its header states it (seconds since the epoch)."""
    producer: bytes
    """The producer's address: the block's fees go there."""
    previous_hash: bytes
    """Hash of the block at ``height - 1``: seeds the challenges of windows opening now."""

    def __post_init__(self) -> None:
        if self.height < 1 or self.time < 0:
            raise BlockContextError(f"height {self.height} or time {self.time} out of range")
        if len(self.producer) != ID_SIZE or len(self.previous_hash) != 32:
            raise BlockContextError("a producer address is 20 bytes and a block hash 32")


Handler = Callable[[Journal, bytes, Any], None]

HANDLERS: Final[dict[type, Handler]] = {
    Transfer: token.transfer,
    Approve: token.approve,
    TransferFrom: token.transfer_from,
    Burn: token.burn,
    RegisterWork: works.register_work,
    TransferWork: works.transfer_work,
    OpenContract: storage.open_contract,
    ReviseContract: storage.revise_contract,
    SubmitProof: storage.submit_proof,
    SetListing: works.set_listing,
    Buy: works.buy,
}


def _journal(state: State, ctx: BlockContext) -> Journal:
    return Journal(state, height=ctx.height, time=ctx.time, producer=ctx.producer)


def begin_block(state: State, ctx: BlockContext) -> tuple[State, tuple[Event, ...]]:
    """Enter block ``ctx.height`` (the next one after the state's): settle the
    windows that ended with the previous block, close the contracts whose last
    window that was, and open the windows that start now."""
    j = _journal(state, ctx)
    totals = j.totals()
    if ctx.height != totals.height + 1:
        raise BlockContextError(
            f"the state is at height {totals.height}; block {ctx.height} cannot follow it"
        )
    j.put(TOTALS_KEY, _replace(totals, height=ctx.height))
    storage.run_due(j, ctx.previous_hash)
    return j.finish()


def apply(state: State, vtx: VerifiedTx, ctx: BlockContext) -> tuple[State, tuple[Event, ...]]:
    """Apply one verified transaction in block ``ctx``; the new state and what
    happened. Raises a :class:`~contracts.errors.TxRejectedError` and changes
    nothing if it cannot be applied."""
    tx = vtx.tx
    j = _journal(state, ctx)
    if tx.chain_id != j.params.chain_id:
        raise ChainIdMismatchError(
            f"the transaction is for chain {tx.chain_id!r}, this is {j.params.chain_id!r}"
        )
    height = j.totals().height
    if ctx.height != height:
        raise BlockContextError(f"the state has begun block {height}, not {ctx.height}")
    sender = vtx.sender
    acct = j.account(sender)
    if tx.nonce != acct.nonce:
        error = NonceReplayedError if tx.nonce < acct.nonce else NonceGapError
        raise error(f"0x{sender.hex()} is at nonce {acct.nonce}; the transaction has {tx.nonce}")
    if tx.fee < j.params.min_fee:
        raise FeeTooLowError(f"the fee {int(tx.fee)} is below {int(j.params.min_fee)}")
    j.set_account(sender, _replace(acct, nonce=acct.nonce + 1))
    j.debit(sender, tx.fee, "the fee")
    HANDLERS[type(tx.body)](j, sender, tx.body)
    if tx.fee:
        j.credit(ctx.producer, tx.fee)
        j.emit(FeePaid(sender, ctx.producer, Amount(tx.fee)))
    return j.finish()


def genesis_state(allocations: Mapping[bytes, int], params: Params) -> State:
    """The committed state at height 0: ``params`` and one account per
    allocation (20-byte address -> base units, each above zero). The total
    supply is the sum of the allocations; from here on it only falls, by burns.
    Raises :class:`GenesisInvalidError`.
    """
    check_params(params)
    writes: dict[bytes, Entry | None] = {}
    total = 0
    for address, amount in sorted(allocations.items()):
        if not isinstance(address, bytes) or len(address) != ID_SIZE:
            raise GenesisInvalidError(f"an address is {ID_SIZE} bytes, not {address!r}")
        if not isinstance(amount, int) or not 0 < amount <= MAX_AMOUNT:
            raise GenesisInvalidError(f"0x{address.hex()}: an allocation is 1..2**256-1 units")
        total += amount
        writes[account_key(address)] = Account(balance=Amount(amount))
    if total > MAX_AMOUNT:
        raise GenesisInvalidError("the allocations sum to more than 2**256-1 base units")
    writes[TOTALS_KEY] = Totals(height=0, supply=Amount(total), burned=ZERO)
    writes[PARAMS_KEY] = params
    return State.empty().with_writes(writes).commit()
