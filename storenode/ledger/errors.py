"""Typed errors of the ledger. Every one is a :class:`LedgerError`.

Two kinds carry a stable ``reason`` (a short snake_case code that a shell may
log, show or send over the wire):

* :class:`TxRejectedError`: the mempool refused a transaction at the door
  (nothing was stored or changed). Its reasons are the contracts' own
  (``contracts.errors``: ``bad_signature``, ``wrong_chain``, ``nonce_replayed``,
  ``insufficient_balance``, …) plus the mempool's (:data:`MEMPOOL_REASONS`).
* :class:`BlockInvalidError`: a block that breaks a validity rule
  (docs/specs/ledger.md, "Blocks and chain"); nothing was stored or changed.
  A peer that sends one is misbehaving.

:class:`BlockNotNextError` is no misbehaviour: the block is not the one after
the tip (already applied, or ahead of us, so sync first).
"""

from __future__ import annotations

from typing import Final

from contracts.errors import TxRejectedError as ContractTxRejectedError


class LedgerError(Exception):
    """Base of every error raised by :mod:`storenode.ledger`."""


# -- transactions ---------------------------------------------------------------------

MEMPOOL_REASONS: Final = frozenset(
    {
        "duplicate",  # the same transaction is already pending
        "nonce_too_far",  # the nonce is too far ahead of the sender's next one
        "replacement_underpriced",  # same sender and nonce as a pending one, fee not 10% higher
        "sender_full",  # the sender has as many pending transactions as allowed
        "mempool_full",  # full, and the fee is no higher than the cheapest evictable one
    }
)


class TxRejectedError(LedgerError):
    """The mempool refused a transaction; ``reason`` says why (a stable code)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message

    @classmethod
    def from_contract(cls, exc: ContractTxRejectedError) -> TxRejectedError:
        """The contracts' refusal, with its reason (``exc`` becomes the cause)."""
        error = cls(exc.reason, str(exc))
        error.__cause__ = exc
        return error


# -- blocks ---------------------------------------------------------------------------


class BlockInvalidError(LedgerError):
    """A block that breaks a validity rule; ``reason`` names the rule.

    For a transaction that cannot be applied (``reason == "bad_tx"``),
    ``tx_index`` is its position in the block and ``tx_reason`` the
    transaction's own rejection code.
    """

    def __init__(
        self,
        reason: str,
        message: str,
        *,
        tx_index: int | None = None,
        tx_reason: str | None = None,
    ) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message
        self.tx_index = tx_index
        self.tx_reason = tx_reason


class BlockNotNextError(LedgerError):
    """The block's height is not the tip's + 1: ``height <= tip`` (known or a
    rival block: ignore it) or ``height > tip + 1`` (sync the blocks between)."""

    def __init__(self, height: int, tip: int) -> None:
        what = "already behind the tip" if height <= tip else "ahead: sync the blocks between"
        super().__init__(f"block {height} does not follow the tip {tip} ({what})")
        self.height = height
        self.tip = tip

    @property
    def ahead(self) -> bool:
        return self.height > self.tip + 1


class ProposerNotScheduledError(LedgerError):
    """``produce_block`` by an identity that is not the proposer of the next height."""


# -- genesis --------------------------------------------------------------------------


class GenesisInvalidError(LedgerError, ValueError):
    """A genesis (or genesis file) that no chain can start from; the message says what."""


# -- the chain store ------------------------------------------------------------------


class ChainStoreError(LedgerError):
    """Base of the chain store's errors; each says what the operator can do."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path


class ChainStoreNotFoundError(ChainStoreError):
    def __init__(self, path: str) -> None:
        super().__init__(path, f"no chain store at {path}: check the data directory")


class ChainStoreUnrecognizedError(ChainStoreError):
    def __init__(self, path: str, why: str) -> None:
        super().__init__(
            path,
            f"{path} is not a storenode chain store ({why}): "
            "point the data directory at an empty or a storenode directory",
        )


class ChainStoreVersionError(ChainStoreError):
    def __init__(self, path: str, found: int, supported: int) -> None:
        super().__init__(
            path,
            f"the chain store at {path} has format version {found}; this storenode reads "
            f"version {supported}: run a storenode that supports version {found}",
        )
        self.found = found
        self.supported = supported


class ChainStoreGenesisMismatchError(ChainStoreError):
    """The store holds another chain than the genesis given."""

    def __init__(self, path: str, stored: bytes, given: bytes) -> None:
        super().__init__(
            path,
            f"the chain store at {path} holds the chain of genesis {stored.hex()[:16]}…, "
            f"not {given.hex()[:16]}…: use that chain's genesis file, or another directory",
        )
        self.stored = stored
        self.given = given


class ChainStoreCorruptError(ChainStoreError):
    def __init__(self, path: str, why: str) -> None:
        super().__init__(
            path,
            f"the chain store at {path} is damaged ({why}): move it aside and let the "
            "node sync the chain again from its peers",
        )


class ChainStoreLockedError(ChainStoreError):
    def __init__(self, path: str) -> None:
        super().__init__(
            path, f"the chain store at {path} is in use by another process: stop that node first"
        )


class ChainStoreIOError(ChainStoreError):
    def __init__(self, path: str, why: str) -> None:
        super().__init__(path, f"the chain store at {path} failed: {why}; check the disk")


class ChainStoreClosedError(ChainStoreError):
    def __init__(self, path: str) -> None:
        super().__init__(path, f"the chain store at {path} is closed")


class ChainStoreConflictError(ChainStoreError):
    """A write that does not follow the stored tip (a bug in the caller: the
    chain checks a block before storing it)."""
