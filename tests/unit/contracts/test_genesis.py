"""Genesis and the block hooks: how a chain starts and how blocks follow."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from contract_harness import ALICE, BOB, PARAMS, PRODUCER

from contracts import (
    BlockContext,
    Params,
    balance_of,
    begin_block,
    genesis_state,
    height_of,
    tokens,
    total_burned,
    total_supply,
)
from contracts.entries import PARAMS_KEY, Status
from contracts.errors import (
    BlockContextError,
    ContractClosedError,
    GenesisInvalidError,
    ProofOutOfWindowError,
)
from contracts.lifecycle import TRANSITIONS, LifecycleError, Move, step


def test_genesis_supply_is_the_sum_of_the_allocations() -> None:
    state = genesis_state({ALICE.address: tokens(3), BOB.address: tokens(4)}, PARAMS)
    assert total_supply(state) == tokens(7)
    assert total_burned(state) == 0
    assert balance_of(state, ALICE.address) == tokens(3)
    assert height_of(state) == 0
    assert state.get(PARAMS_KEY) == PARAMS


def test_parameters_are_part_of_the_state_root() -> None:
    allocations = {ALICE.address: tokens(1)}
    a = genesis_state(allocations, Params(chain_id="one"))
    b = genesis_state(allocations, Params(chain_id="one", burn_bps=300))
    assert a.root != b.root
    assert a.root == genesis_state(dict(allocations), Params(chain_id="one")).root


@pytest.mark.parametrize(
    "allocations",
    [
        {b"short": 1},
        {ALICE.address: 0},
        {ALICE.address: -5},
        {ALICE.address: 2**255, BOB.address: 2**255},
    ],
    ids=["short-address", "zero", "negative", "above-2**256"],
)
def test_impossible_allocations_are_refused(allocations: dict[bytes, int]) -> None:
    with pytest.raises(GenesisInvalidError):
        genesis_state(allocations, PARAMS)


@pytest.mark.parametrize(
    "params",
    [
        Params(chain_id="Bad Chain"),
        Params(chain_id="x", burn_bps=10_001),
        Params(chain_id="x", min_window_blocks=10, max_window_blocks=5),
        Params(chain_id="x", max_windows=0),
    ],
    ids=["chain-id", "burn-above-100%", "window-limits", "no-windows"],
)
def test_impossible_parameters_are_refused(params: Params) -> None:
    with pytest.raises(GenesisInvalidError):
        genesis_state({ALICE.address: 1}, params)


def context(height: int) -> BlockContext:
    return BlockContext(height, 0, PRODUCER.address, bytes(32))


def test_blocks_follow_one_another() -> None:
    state = genesis_state({ALICE.address: 1}, PARAMS)
    with pytest.raises(BlockContextError):
        begin_block(state, context(2))
    state, _ = begin_block(state, context(1))
    assert height_of(state) == 1
    with pytest.raises(BlockContextError):
        begin_block(state, context(1))
    state, _ = begin_block(state, context(2))
    assert height_of(state) == 2


def test_context_with_impossible_values_is_refused() -> None:
    bad: Callable[[], object]
    for bad in (
        lambda: BlockContext(0, 0, PRODUCER.address, bytes(32)),
        lambda: BlockContext(1, 0, b"short", bytes(32)),
        lambda: BlockContext(1, 0, PRODUCER.address, b"short"),
    ):
        with pytest.raises(BlockContextError):
            bad()


def test_contract_lifecycle_table_allows_only_its_moves() -> None:
    assert step(Status.PENDING, Move.START) is Status.ACTIVE
    assert step(Status.ACTIVE, Move.CLOSE) is Status.CLOSED
    # nothing goes back to pending, and nothing leaves closed
    assert all(
        after is not Status.PENDING
        for (before, _), after in TRANSITIONS.items()
        if before is not Status.PENDING
    )
    assert not any(before is Status.CLOSED for before, _ in TRANSITIONS)
    with pytest.raises(ProofOutOfWindowError):
        step(Status.PENDING, Move.PROVE)
    with pytest.raises(ProofOutOfWindowError):
        step(Status.CLOSED, Move.PROVE)
    with pytest.raises(ContractClosedError):
        step(Status.CLOSED, Move.REVISE)
    with pytest.raises(LifecycleError):
        step(Status.CLOSED, Move.ROLL)
