"""The life of a storage contract: its status table, its windows, and what
each window asks the host to prove.

::

    PENDING --start--> ACTIVE --roll--> ACTIVE --close--> CLOSED
       |  ^              |  ^
       +--+ revise       +--+ prove, revise

* **start**: the block after the open transaction opens window 0.
* **prove**: the host proves the open window (once).
* **roll**: the block after a window's last block settles it and opens the next.
* **close**: the block after the last window's last block settles it and
  releases the collateral (minus the penalty, if any).
* **revise**: both parties agree on a new root and chunk count.

Every move goes through :func:`step`; a move the table lacks raises the error
the table names for that event (a proof outside any window is "out of
window", a revision after the end is "contract closed").

**Windows.** The open transaction is in block ``h``; window ``w`` covers
heights ``h + 1 + w·W .. h + (w + 1)·W`` for ``W = window_blocks``, without
gaps. When a window opens its seed is fixed as
``SHA-256(contract id || hash of the block before the window's first)`` and
picks the challenge::

    chunk_index   = u64(seed[0:8])  mod chunk_count
    segment_index = u64(seed[8:16]) mod ceil(chunk_size / 1024)

(the bias of the modulo is below 2**-40 for any allowed count). The indices
are taken against the contract's current terms, so a revision in the middle
of a window moves the challenge onto the new root.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Final, cast

from contracts.encoding import sha256
from contracts.entries import Status, StorageContract, contract_key
from contracts.errors import ContractClosedError, ProofOutOfWindowError
from contracts.state import State
from storenode.coding.merkle import segment_count


class Move(Enum):
    START = "start"
    PROVE = "prove"
    ROLL = "roll"
    CLOSE = "close"
    REVISE = "revise"


TRANSITIONS: Final[dict[tuple[Status, Move], Status]] = {
    (Status.PENDING, Move.START): Status.ACTIVE,
    (Status.PENDING, Move.REVISE): Status.PENDING,
    (Status.ACTIVE, Move.PROVE): Status.ACTIVE,
    (Status.ACTIVE, Move.ROLL): Status.ACTIVE,
    (Status.ACTIVE, Move.CLOSE): Status.CLOSED,
    (Status.ACTIVE, Move.REVISE): Status.ACTIVE,
}

# What refusing a move tells the sender. START, ROLL and CLOSE come from the
# due queue, never from a transaction: finding them refused is a bug.
_REFUSALS: Final[dict[Move, type[Exception]]] = {
    Move.PROVE: ProofOutOfWindowError,
    Move.REVISE: ContractClosedError,
}


class LifecycleError(AssertionError):
    """A move the due queue made that the table does not allow: a bug."""


def step(status: Status, move: Move) -> Status:
    """The status after ``move``; the move's typed refusal if ``status`` forbids it."""
    after = TRANSITIONS.get((status, move))
    if after is None:
        refusal = _REFUSALS.get(move, LifecycleError)
        raise refusal(f"a {status.name.lower()} contract cannot {move.value}")
    return after


# -- windows and challenges -------------------------------------------------------------


def window_seed(contract_id: bytes, previous_block_hash: bytes) -> bytes:
    """The seed of a window whose first block follows ``previous_block_hash``."""
    return sha256(contract_id, previous_block_hash)


def challenge_indices(contract: StorageContract) -> tuple[int, int]:
    """(chunk index, segment index) the open window's seed asks for."""
    seed = contract.seed
    return (
        int.from_bytes(seed[0:8], "big") % contract.chunk_count,
        int.from_bytes(seed[8:16], "big") % segment_count(contract.chunk_size),
    )


@dataclass(frozen=True, slots=True)
class Challenge:
    """What the host of an active contract must prove, and until when."""

    window: int
    chunk_index: int
    segment_index: int
    segment_count: int
    start: int
    end: int
    proven: bool


def challenge_of(state: State, cid: bytes) -> Challenge | None:
    """The open window's challenge (against the current root), or None when no
    window is open."""
    contract = cast("StorageContract | None", state.get(contract_key(cid)))
    if contract is None or contract.status is not Status.ACTIVE:
        return None
    chunk_index, segment_index = challenge_indices(contract)
    return Challenge(
        window=contract.window,
        chunk_index=chunk_index,
        segment_index=segment_index,
        segment_count=segment_count(contract.chunk_size),
        start=contract.window_start,
        end=contract.window_start + contract.window_blocks - 1,
        proven=contract.proven,
    )
