"""Works: the registry (the publish contract) and their trade.

**Registry.** A work is registered once, under its fingerprint (keccak256 of
its bytes), with its name, version, date, author and the hash of its signed
manifest. The sender of the registration becomes the owner; only the owner
can hand it on. Besides the entry under the fingerprint, an index entry under
``owner || fingerprint`` lists an owner's works (one bucket per owner).

**Trade.** The owner of a work sets its price per download and the shares
(basis points summing to 10,000) of up to ``max_shares`` distinct stakeholder
addresses. A buyer pays the price (never more than the ``max_price`` it
signed, so a price raised while its transaction waited cannot surprise it)
and gets a receipt, stored under ``buyer || fingerprint``, which hosts check
before serving a priced work (:func:`has_receipt`). A buyer holds at most one
receipt per work. Each stakeholder gets ``price × bps // 10,000``; what
rounding leaves over (less than one base unit per stakeholder) goes to the
first one listed. A listing stays with the work when it changes hands; the
new owner may set another.
"""

from __future__ import annotations

from typing import cast

import msgspec

from contracts.encoding import BPS, Amount
from contracts.entries import (
    MARKER,
    Listing,
    Receipt,
    Tag,
    Work,
    listing_key,
    receipt_key,
    work_by_owner_key,
    work_key,
)
from contracts.errors import (
    ListingUnknownError,
    PriceAboveMaxError,
    ReceiptExistsError,
    SenderUnauthorizedError,
    SharesInvalidError,
    WorkRegisteredError,
    WorkUnknownError,
)
from contracts.events import Bought, ListingSet, Transferred, WorkRegistered, WorkTransferred
from contracts.journal import Journal
from contracts.state import State
from contracts.tx import Buy, RegisterWork, SetListing, Share, TransferWork

# -- registry ------------------------------------------------------------------------------


def register_work(j: Journal, sender: bytes, body: RegisterWork) -> None:
    key = work_key(body.fingerprint)
    existing = cast("Work | None", j.get(key))
    if existing is not None:
        raise WorkRegisteredError(
            f"work {body.fingerprint.hex()} is already registered to 0x{existing.owner.hex()}"
        )
    j.put(
        key,
        Work(
            name=body.name,
            version=body.version,
            date=body.date,
            author=body.author,
            owner=sender,
            manifest_hash=body.manifest_hash,
            registered_height=j.height,
            registered_time=j.time,
        ),
    )
    j.put(work_by_owner_key(sender, body.fingerprint), MARKER)
    j.emit(WorkRegistered(body.fingerprint, sender))


def transfer_work(j: Journal, sender: bytes, body: TransferWork) -> None:
    work = owned_work(j, sender, body.fingerprint)
    j.put(work_key(body.fingerprint), msgspec.structs.replace(work, owner=body.to))
    j.delete(work_by_owner_key(sender, body.fingerprint))
    j.put(work_by_owner_key(body.to, body.fingerprint), MARKER)
    j.emit(WorkTransferred(body.fingerprint, sender, body.to))


def owned_work(j: Journal, sender: bytes, fingerprint: bytes) -> Work:
    """The work, if ``sender`` owns it; :class:`WorkUnknownError` or
    :class:`SenderUnauthorizedError` otherwise."""
    work = cast("Work | None", j.get(work_key(fingerprint)))
    if work is None:
        raise WorkUnknownError(f"no work is registered as {fingerprint.hex()}")
    if work.owner != sender:
        raise SenderUnauthorizedError(
            f"work {fingerprint.hex()} belongs to 0x{work.owner.hex()}, not 0x{sender.hex()}"
        )
    return work


# -- trade ---------------------------------------------------------------------------------


def set_listing(j: Journal, sender: bytes, body: SetListing) -> None:
    owned_work(j, sender, body.fingerprint)
    check_shares(body.shares, j.params.max_shares)
    j.put(listing_key(body.fingerprint), Listing(body.price, body.shares))
    j.emit(ListingSet(body.fingerprint, body.price))


def check_shares(shares: tuple[Share, ...], most: int) -> None:
    """Raise :class:`SharesInvalidError` unless the shares can split a price."""
    if not 1 <= len(shares) <= most:
        raise SharesInvalidError(f"{len(shares)} shares; a price is split among 1..{most}")
    if len({share.address for share in shares}) != len(shares):
        raise SharesInvalidError("an address appears twice among the shares")
    if any(share.bps == 0 for share in shares):
        raise SharesInvalidError("a share of 0 basis points")
    total = sum(share.bps for share in shares)
    if total != BPS:
        raise SharesInvalidError(f"the shares sum to {total} basis points, not {BPS}")


def split(price: int, shares: tuple[Share, ...]) -> list[int]:
    """What each stakeholder gets of ``price`` (sums to ``price``)."""
    parts = [price * share.bps // BPS for share in shares]
    parts[0] += price - sum(parts)
    return parts


def buy(j: Journal, sender: bytes, body: Buy) -> None:
    listing = cast("Listing | None", j.get(listing_key(body.fingerprint)))
    if listing is None:
        raise ListingUnknownError(f"work {body.fingerprint.hex()} has no price set")
    if listing.price > body.max_price:
        raise PriceAboveMaxError(
            f"the price is {int(listing.price)} base units; the buyer offered at most "
            f"{int(body.max_price)}"
        )
    key = receipt_key(sender, body.fingerprint)
    if j.get(key) is not None:
        raise ReceiptExistsError(f"0x{sender.hex()} already bought {body.fingerprint.hex()}")
    j.debit(sender, listing.price, "the purchase")
    for share, part in zip(listing.shares, split(listing.price, listing.shares), strict=True):
        j.credit(share.address, part)
        j.emit(Transferred(sender, share.address, Amount(part)))
    j.put(key, Receipt(listing.price, j.height, j.time))
    j.emit(Bought(body.fingerprint, sender, listing.price))


# -- queries ---------------------------------------------------------------------------------


def work_of(state: State, fingerprint: bytes) -> Work | None:
    """The registry entry of a work, or None."""
    return cast("Work | None", state.get(work_key(fingerprint)))


def works_of(state: State, owner: bytes) -> list[bytes]:
    """The fingerprints of the works ``owner`` owns, sorted."""
    prefix = bytes([Tag.WORK_BY_OWNER]) + owner
    return [key[len(prefix) :] for key, _ in state.scan(prefix)]


def listing_of(state: State, fingerprint: bytes) -> Listing | None:
    return cast("Listing | None", state.get(listing_key(fingerprint)))


def receipt_of(state: State, buyer: bytes, fingerprint: bytes) -> Receipt | None:
    return cast("Receipt | None", state.get(receipt_key(buyer, fingerprint)))


def has_receipt(state: State, buyer: bytes, fingerprint: bytes) -> bool:
    """Whether ``buyer`` bought the work ``fingerprint`` (what a host checks)."""
    return state.get(receipt_key(buyer, fingerprint)) is not None
