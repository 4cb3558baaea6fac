"""Typed errors of the contracts. Every one is a :class:`ContractError`.

A :class:`TxRejectedError` means the transaction cannot be applied to that
state: :func:`contracts.apply` raised before returning a new state, so the
caller's state is unchanged (it is immutable) and the transaction must not be
included in a block. Each rejection has a stable ``reason`` (a short
snake_case string) that the mempool and the CLI may show or send over the
wire; the message says what was wrong with the numbers involved.

:class:`BlockContextError` and :class:`GenesisInvalidError` are refusals of
what the ledger passed in (a context that does not follow the state, a
genesis that cannot exist): bugs or a corrupt chain, never a peer's
transaction.
"""

from __future__ import annotations

from typing import ClassVar


class ContractError(Exception):
    """Base of every error raised by :mod:`contracts`."""


class TxRejectedError(ContractError):
    """A transaction that cannot be applied; the state is unchanged."""

    reason: ClassVar[str] = "rejected"


# -- the transaction itself -------------------------------------------------------


class TxMalformedError(TxRejectedError, ValueError):
    """The bytes are not one canonical transaction: they do not decode, a field
    is out of its bounds, or they are not the canonical encoding of what they
    decode to."""

    reason = "malformed"


class TxOversizeError(TxMalformedError):
    """The encoded transaction is longer than :data:`contracts.tx.MAX_TX_SIZE`."""

    reason = "oversize"


class ChainIdMismatchError(TxRejectedError):
    """The transaction (or a contract's terms) names another chain."""

    reason = "wrong_chain"


class TxSignatureInvalidError(TxRejectedError):
    """The sender's signature does not verify over the transaction's bytes."""

    reason = "bad_signature"


class NonceMismatchError(TxRejectedError):
    """The nonce is not the sender's next nonce."""

    reason = "bad_nonce"


class NonceReplayedError(NonceMismatchError):
    """The nonce was already used: a replay, or a transaction already applied."""

    reason = "nonce_replayed"


class NonceGapError(NonceMismatchError):
    """The nonce is ahead of the sender's next nonce: an earlier one is missing."""

    reason = "nonce_gap"


class FeeTooLowError(TxRejectedError):
    """The fee is below the chain's ``min_fee``."""

    reason = "fee_too_low"


# -- tokens -----------------------------------------------------------------------


class BalanceInsufficientError(TxRejectedError):
    """An account would go below zero (fee, amount, escrow or collateral)."""

    reason = "insufficient_balance"


class AllowanceInsufficientError(TxRejectedError):
    """A transfer-from above what the owner approved for the sender."""

    reason = "insufficient_allowance"


class SenderUnauthorizedError(TxRejectedError):
    """The sender is not the party this transaction needs: the owner of the
    work, the host of the contract, the publisher named in the terms."""

    reason = "unauthorized"


# -- registry ---------------------------------------------------------------------


class WorkRegisteredError(TxRejectedError):
    """The fingerprint is already registered (a work is registered once)."""

    reason = "work_registered"


class WorkUnknownError(TxRejectedError):
    """No work is registered under that fingerprint."""

    reason = "work_unknown"


# -- storage contracts ------------------------------------------------------------


class TermsInvalidError(TxRejectedError):
    """Contract terms outside the chain's limits (window length, windows, chunk
    count or size), or an escrow that cannot exist."""

    reason = "bad_terms"


class AcceptanceExpiredError(TxRejectedError):
    """The host's acceptance was valid until a height already passed."""

    reason = "acceptance_expired"


class PartySignatureInvalidError(TxRejectedError):
    """The host's acceptance, or a party's signature of a revision, does not verify."""

    reason = "bad_party_signature"


class ContractExistsError(TxRejectedError):
    """A contract with these terms (so this id) was already opened."""

    reason = "contract_exists"


class ContractUnknownError(TxRejectedError):
    """No contract has that id."""

    reason = "contract_unknown"


class ContractClosedError(TxRejectedError):
    """The contract has ended; it can no longer be revised."""

    reason = "contract_closed"


class RevisionStaleError(TxRejectedError):
    """A revision number not above the contract's current one."""

    reason = "revision_stale"


class ProofRejectedError(TxRejectedError):
    """Base of the refusals of a storage proof (the window stays unproven)."""

    reason = "proof_rejected"


class ProofOutOfWindowError(ProofRejectedError):
    """The proof names a window that is not open at this height: one that has
    been settled (late), or one not yet open (early)."""

    reason = "proof_out_of_window"


class ProofSegmentWrongError(ProofRejectedError):
    """The proof is for another chunk or segment than the window's challenge."""

    reason = "proof_wrong_segment"


class ProofPathInvalidError(ProofRejectedError):
    """The proof is malformed, or the segment and path do not lead to the
    contract root."""

    reason = "proof_bad_path"


class WindowProvenError(ProofRejectedError):
    """The window has already been proven."""

    reason = "window_proven"


# -- trade ------------------------------------------------------------------------


class ListingUnknownError(TxRejectedError):
    """The work has no price set: it is not for sale."""

    reason = "not_for_sale"


class SharesInvalidError(TxRejectedError):
    """Shares that do not sum to 10,000 basis points, name an address twice,
    give one a zero share, or are more than the chain allows."""

    reason = "bad_shares"


class PriceAboveMaxError(TxRejectedError):
    """The work's price is above the most the buyer agreed to pay."""

    reason = "price_above_max"


class ReceiptExistsError(TxRejectedError):
    """The buyer already holds a receipt for this work."""

    reason = "receipt_exists"


# -- what the ledger passes in ----------------------------------------------------


class BlockContextError(ContractError, ValueError):
    """The block context does not follow the state: a height that is not the
    next one (for :func:`contracts.begin_block`) or not the current one (for
    :func:`contracts.apply`), or a previous hash that is not 32 bytes."""


class GenesisInvalidError(ContractError, ValueError):
    """Genesis allocations or parameters that no chain can start from."""
