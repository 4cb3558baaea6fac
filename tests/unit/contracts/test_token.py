"""The token: ERC-20 transfer, approve, transfer-from, burn; fees and nonces."""

from __future__ import annotations

import pytest
from contract_harness import ALICE, BOB, CAROL, FEE, PRODUCER, START_BALANCE, Chain

from contracts import (
    Approve,
    Burn,
    Transfer,
    TransferFrom,
    allowance_of,
    balance_of,
    nonce_of,
    standing_of,
    tokens,
    total_burned,
    total_supply,
)
from contracts.entries import account_key, allowance_key
from contracts.errors import AllowanceInsufficientError, BalanceInsufficientError
from contracts.events import Burned, BurnReason, FeePaid, Transferred
from storenode.identity import Identity


@pytest.fixture
def chain() -> Chain:
    return Chain()


def test_transfer_moves_the_amount_and_pays_the_fee_to_the_producer(chain: Chain) -> None:
    events = chain.send(ALICE, Transfer(BOB.address, tokens(7)))
    assert balance_of(chain.state, ALICE.address) == START_BALANCE - tokens(7) - FEE
    assert balance_of(chain.state, BOB.address) == START_BALANCE + tokens(7)
    assert balance_of(chain.state, PRODUCER.address) == FEE
    assert total_supply(chain.state) == 4 * START_BALANCE
    assert events == (
        Transferred(ALICE.address, BOB.address, tokens(7)),
        FeePaid(ALICE.address, PRODUCER.address, FEE),
    )


def test_transfer_to_a_new_address_creates_its_account(chain: Chain) -> None:
    newcomer = Identity.from_seed(b"\x42" * 32)
    assert chain.state.get(account_key(newcomer.address)) is None
    chain.send(ALICE, Transfer(newcomer.address, tokens(1)))
    assert balance_of(chain.state, newcomer.address) == tokens(1)


def test_each_transaction_uses_the_next_nonce(chain: Chain) -> None:
    for expected in range(3):
        assert nonce_of(chain.state, ALICE.address) == expected
        chain.send(ALICE, Transfer(BOB.address, tokens(1)))
    assert nonce_of(chain.state, ALICE.address) == 3
    assert nonce_of(chain.state, BOB.address) == 0


def test_transfer_to_oneself_costs_only_the_fee(chain: Chain) -> None:
    chain.send(ALICE, Transfer(ALICE.address, tokens(5)))
    assert balance_of(chain.state, ALICE.address) == START_BALANCE - FEE


def test_producer_paying_its_own_fee_keeps_it(chain: Chain) -> None:
    chain.send(ALICE, Transfer(PRODUCER.address, tokens(1)))
    chain.send(PRODUCER, Transfer(BOB.address, tokens("0.5")))
    assert balance_of(chain.state, PRODUCER.address) == tokens("0.5") + FEE


def test_transfer_above_the_balance_is_rejected(chain: Chain) -> None:
    with pytest.raises(BalanceInsufficientError):
        chain.send(ALICE, Transfer(BOB.address, START_BALANCE))  # the fee does not fit


def test_approve_then_transfer_from_spends_the_allowance(chain: Chain) -> None:
    chain.send(ALICE, Approve(BOB.address, tokens(10)))
    assert allowance_of(chain.state, ALICE.address, BOB.address) == tokens(10)
    chain.send(BOB, TransferFrom(ALICE.address, CAROL.address, tokens(4)))
    assert allowance_of(chain.state, ALICE.address, BOB.address) == tokens(6)
    assert balance_of(chain.state, CAROL.address) == START_BALANCE + tokens(4)
    assert balance_of(chain.state, ALICE.address) == START_BALANCE - tokens(4) - FEE
    assert balance_of(chain.state, BOB.address) == START_BALANCE - FEE  # the spender pays the fee


def test_spending_the_whole_allowance_removes_it(chain: Chain) -> None:
    chain.send(ALICE, Approve(BOB.address, tokens(3)))
    chain.send(BOB, TransferFrom(ALICE.address, BOB.address, tokens(3)))
    assert chain.state.get(allowance_key(ALICE.address, BOB.address)) is None


def test_approve_sets_rather_than_adds(chain: Chain) -> None:
    chain.send(ALICE, Approve(BOB.address, tokens(10)))
    chain.send(ALICE, Approve(BOB.address, tokens(2)))
    assert allowance_of(chain.state, ALICE.address, BOB.address) == tokens(2)
    chain.send(ALICE, Approve(BOB.address, tokens(0)))
    assert chain.state.get(allowance_key(ALICE.address, BOB.address)) is None


def test_transfer_from_above_the_allowance_is_rejected(chain: Chain) -> None:
    chain.send(ALICE, Approve(BOB.address, tokens(3)))
    with pytest.raises(AllowanceInsufficientError):
        chain.send(BOB, TransferFrom(ALICE.address, BOB.address, tokens(4)))
    with pytest.raises(AllowanceInsufficientError):
        chain.send(CAROL, TransferFrom(ALICE.address, CAROL.address, tokens(1)))


def test_transfer_from_above_the_owner_balance_is_rejected(chain: Chain) -> None:
    chain.send(ALICE, Approve(BOB.address, START_BALANCE * 2))
    with pytest.raises(BalanceInsufficientError):
        chain.send(BOB, TransferFrom(ALICE.address, BOB.address, START_BALANCE))


def test_voluntary_burn_lowers_the_supply_and_counts_toward_reputation(chain: Chain) -> None:
    events = chain.send(CAROL, Burn(tokens(25)))
    assert total_supply(chain.state) == 4 * START_BALANCE - tokens(25)
    assert total_burned(chain.state) == tokens(25)
    assert balance_of(chain.state, CAROL.address) == START_BALANCE - tokens(25) - FEE
    assert standing_of(chain.state, CAROL.address).burned == tokens(25)
    assert events[0] == Burned(CAROL.address, tokens(25), BurnReason.VOLUNTARY)


def test_burn_above_the_balance_is_rejected(chain: Chain) -> None:
    with pytest.raises(BalanceInsufficientError):
        chain.send(CAROL, Burn(START_BALANCE))
