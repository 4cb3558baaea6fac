"""Trade: a price per download split by fixed shares, and receipts hosts check."""

from __future__ import annotations

import pytest
from contract_harness import ALICE, BOB, CAROL, DAVE, FEE, START_BALANCE, Chain, fingerprint

from contracts import (
    Amount,
    Buy,
    RegisterWork,
    SetListing,
    Share,
    TransferWork,
    balance_of,
    has_receipt,
    listing_of,
    receipt_of,
    tokens,
    total_supply,
)
from contracts.errors import (
    BalanceInsufficientError,
    ListingUnknownError,
    PriceAboveMaxError,
    ReceiptExistsError,
    SenderUnauthorizedError,
    SharesInvalidError,
    WorkUnknownError,
)
from contracts.works import split

WORK = fingerprint(1)
PRICE = tokens(3)


@pytest.fixture
def chain() -> Chain:
    chain = Chain()
    chain.send(ALICE, RegisterWork(WORK, "Song", "1", "2024-01-01", "Alice", bytes(32)))
    return chain


def list_work(chain: Chain, price: int = PRICE) -> None:
    shares = (Share(ALICE.address, 7_000), Share(BOB.address, 2_000), Share(CAROL.address, 1_000))
    chain.send(ALICE, SetListing(WORK, Amount(price), shares))


def test_buy_pays_every_stakeholder_its_share_and_records_a_receipt(chain: Chain) -> None:
    list_work(chain)
    alice, bob, carol = (balance_of(chain.state, i.address) for i in (ALICE, BOB, CAROL))
    supply = total_supply(chain.state)
    chain.send(DAVE, Buy(WORK, PRICE))
    assert balance_of(chain.state, ALICE.address) == alice + tokens("2.1")
    assert balance_of(chain.state, BOB.address) == bob + tokens("0.6")
    assert balance_of(chain.state, CAROL.address) == carol + tokens("0.3")
    assert balance_of(chain.state, DAVE.address) == START_BALANCE - PRICE - FEE
    assert total_supply(chain.state) == supply
    assert has_receipt(chain.state, DAVE.address, WORK)
    receipt = receipt_of(chain.state, DAVE.address, WORK)
    assert receipt is not None and (receipt.price, receipt.height) == (PRICE, chain.height)


def test_hosts_see_no_receipt_for_someone_who_did_not_buy(chain: Chain) -> None:
    list_work(chain)
    chain.send(DAVE, Buy(WORK, PRICE))
    assert not has_receipt(chain.state, CAROL.address, WORK)
    assert not has_receipt(chain.state, DAVE.address, fingerprint(2))


def test_rounding_leftover_goes_to_the_first_stakeholder() -> None:
    shares = (Share(b"a" * 20, 3_333), Share(b"b" * 20, 3_333), Share(b"c" * 20, 3_334))
    assert split(10, shares) == [4, 3, 3]
    assert sum(split(10**18 + 1, shares)) == 10**18 + 1


@pytest.mark.parametrize(
    "shares",
    [
        (),
        (Share(ALICE.address, 9_999),),
        (Share(ALICE.address, 5_000), Share(ALICE.address, 5_000)),
        (Share(ALICE.address, 10_000), Share(BOB.address, 0)),
        tuple(Share(bytes([n]) * 20, 500) for n in range(20)),
    ],
    ids=["none", "short-of-10000", "duplicate", "zero-share", "too-many"],
)
def test_shares_that_cannot_split_a_price_are_rejected(
    chain: Chain, shares: tuple[Share, ...]
) -> None:
    with pytest.raises(SharesInvalidError):
        chain.send(ALICE, SetListing(WORK, PRICE, shares))


def test_only_the_owner_sets_the_price(chain: Chain) -> None:
    with pytest.raises(SenderUnauthorizedError):
        chain.send(BOB, SetListing(WORK, PRICE, (Share(BOB.address, 10_000),)))
    with pytest.raises(WorkUnknownError):
        chain.send(BOB, SetListing(fingerprint(2), PRICE, (Share(BOB.address, 10_000),)))


def test_new_owner_may_reset_the_listing(chain: Chain) -> None:
    list_work(chain)
    chain.send(ALICE, TransferWork(WORK, BOB.address))
    chain.send(BOB, SetListing(WORK, tokens(1), (Share(BOB.address, 10_000),)))
    listing = listing_of(chain.state, WORK)
    assert listing is not None and listing.price == tokens(1)


def test_price_above_the_buyers_maximum_is_rejected(chain: Chain) -> None:
    list_work(chain)
    before = chain.state.root
    with pytest.raises(PriceAboveMaxError):
        chain.send(DAVE, Buy(WORK, Amount(PRICE - 1)))
    assert chain.state.root == before


def test_buying_twice_is_rejected(chain: Chain) -> None:
    list_work(chain)
    chain.send(DAVE, Buy(WORK, PRICE))
    with pytest.raises(ReceiptExistsError):
        chain.send(DAVE, Buy(WORK, PRICE))


def test_work_without_a_price_cannot_be_bought(chain: Chain) -> None:
    with pytest.raises(ListingUnknownError):
        chain.send(DAVE, Buy(WORK, PRICE))


def test_buyer_without_the_price_is_rejected(chain: Chain) -> None:
    list_work(chain, price=START_BALANCE)
    with pytest.raises(BalanceInsufficientError):
        chain.send(DAVE, Buy(WORK, START_BALANCE))
    assert not has_receipt(chain.state, DAVE.address, WORK)
