"""Reputation: grows with what a host burned, falls with the windows it missed."""

from __future__ import annotations

import pytest
from contract_harness import ALICE, BOB, CAROL, Chain, StoredData
from hypothesis import given
from hypothesis import strategies as st

from contracts import Burn, host_report, rank_hosts, reputation_of, standing_of, tokens
from contracts.reputation import score

W = 5


def test_new_address_has_no_reputation() -> None:
    assert reputation_of(Chain().state, CAROL.address) == 0


def test_reputation_grows_with_voluntary_burns() -> None:
    chain = Chain()
    chain.send(CAROL, Burn(tokens(1)))
    first = reputation_of(chain.state, CAROL.address)
    chain.send(CAROL, Burn(tokens(2)))
    assert reputation_of(chain.state, CAROL.address) > first == tokens(1)


def host_with_record(prove: list[bool]) -> Chain:
    chain = Chain()
    data = StoredData.make()
    cid = chain.open(chain.terms(data, windows=len(prove), window_blocks=W))
    for proven in prove:
        chain.begin()
        if proven:
            chain.send(BOB, chain.proof_body(cid, data))
        chain.advance(W - 1)
    chain.begin()
    return chain


def test_reputation_grows_with_payout_burns() -> None:
    one = host_with_record([True])
    two = host_with_record([True, True])
    assert reputation_of(one.state, BOB.address) == tokens("0.2")
    assert reputation_of(two.state, BOB.address) == tokens("0.4")


def test_reputation_falls_with_missed_windows() -> None:
    clean = host_with_record([True, True, True])
    sloppy = host_with_record([True, True, True, False])
    assert (
        standing_of(sloppy.state, BOB.address).burned
        == standing_of(clean.state, BOB.address).burned
    )
    assert reputation_of(sloppy.state, BOB.address) < reputation_of(clean.state, BOB.address)
    standing = standing_of(sloppy.state, BOB.address)
    assert (standing.windows_proven, standing.windows_missed) == (3, 1)
    assert standing.reputation == tokens("0.6") * 4 // (4 + 4)


def test_collateral_penalty_does_not_build_reputation() -> None:
    chain = host_with_record([True, False, False])
    assert standing_of(chain.state, BOB.address).burned == tokens("0.2")


def test_hosts_rank_by_reputation_then_address() -> None:
    chain = host_with_record([True])
    chain.send(CAROL, Burn(tokens(1)))
    ranked = rank_hosts(chain.state, [ALICE.address, BOB.address, CAROL.address])
    assert ranked[:2] == [CAROL.address, BOB.address]


@given(
    burned=st.integers(0, 10**30),
    extra=st.integers(1, 10**20),
    proven=st.integers(0, 10**6),
    missed=st.integers(0, 10**6),
)
def test_score_grows_with_burns_and_never_with_misses(
    burned: int, extra: int, proven: int, missed: int
) -> None:
    base = score(burned, proven, missed, 4)
    assert 0 <= base <= burned
    assert score(burned + extra, proven, missed, 4) >= base
    assert score(burned, proven, missed + 1, 4) <= base
    if missed == 0:
        assert base == burned


@pytest.mark.parametrize(("missed", "kept"), [(0, 100), (1, 50), (3, 25)])
def test_each_missed_window_weighs_as_four_proven(missed: int, kept: int) -> None:
    assert score(100, 3, missed, 4) == 100 * 4 // (4 + 4 * missed) == kept


def test_host_report_shows_what_is_locked_and_what_is_ahead() -> None:
    chain = Chain()
    data = StoredData.make()
    cid = chain.open(chain.terms(data, price=tokens(10), windows=3, window_blocks=W))
    chain.begin()
    report = host_report(chain.state, BOB.address)
    assert (report.contracts_active, report.contracts_closed, report.windows_awaiting_proof) == (
        1,
        0,
        1,
    )
    assert report.collateral_locked == tokens(20)
    assert report.earnings_ahead == 3 * tokens("9.8")
    chain.send(BOB, chain.proof_body(cid, data))
    assert host_report(chain.state, BOB.address).windows_awaiting_proof == 0
    assert (
        host_report(chain.state, ALICE.address).contracts_active == 0
    )  # a publisher hosts nothing
    chain.advance(3 * W)
    report = host_report(chain.state, BOB.address)
    assert (report.contracts_active, report.contracts_closed, report.collateral_locked) == (0, 1, 0)
