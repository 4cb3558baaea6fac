"""The registry: a work is registered once, to its signer, and changes hands
only by its owner."""

from __future__ import annotations

import pytest
from contract_harness import ALICE, BOB, CAROL, Chain, fingerprint

from contracts import RegisterWork, TransferWork, work_of, works_of
from contracts.errors import SenderUnauthorizedError, WorkRegisteredError, WorkUnknownError
from contracts.events import WorkRegistered, WorkTransferred

MANIFEST = bytes(range(32))


def registration(n: int, name: str = "Kind of Blue") -> RegisterWork:
    return RegisterWork(fingerprint(n), name, "1.0", "1959-08-17", "Miles Davis", MANIFEST)


@pytest.fixture
def chain() -> Chain:
    return Chain()


def test_registering_makes_the_signer_the_owner(chain: Chain) -> None:
    events = chain.send(ALICE, registration(1))
    work = work_of(chain.state, fingerprint(1))
    assert work is not None
    assert work.owner == ALICE.address
    assert (work.name, work.version, work.date, work.author) == (
        "Kind of Blue",
        "1.0",
        "1959-08-17",
        "Miles Davis",
    )
    assert work.manifest_hash == MANIFEST
    assert work.registered_height == chain.height
    assert events[0] == WorkRegistered(fingerprint(1), ALICE.address)


def test_unregistered_fingerprint_has_no_entry(chain: Chain) -> None:
    assert work_of(chain.state, fingerprint(9)) is None


def test_works_are_listed_by_owner(chain: Chain) -> None:
    for n in (3, 1, 2):
        chain.send(ALICE, registration(n))
    chain.send(BOB, registration(4))
    assert works_of(chain.state, ALICE.address) == sorted(fingerprint(n) for n in (1, 2, 3))
    assert works_of(chain.state, BOB.address) == [fingerprint(4)]
    assert works_of(chain.state, CAROL.address) == []
    chain.begin()  # and once committed
    assert len(works_of(chain.state, ALICE.address)) == 3


def test_fingerprint_is_registered_once(chain: Chain) -> None:
    chain.send(ALICE, registration(1))
    with pytest.raises(WorkRegisteredError):
        chain.send(BOB, registration(1, name="Kind of Blue (bootleg)"))
    with pytest.raises(WorkRegisteredError):
        chain.send(ALICE, registration(1))
    work = work_of(chain.state, fingerprint(1))
    assert work is not None and work.owner == ALICE.address


def test_owner_transfers_a_work(chain: Chain) -> None:
    chain.send(ALICE, registration(1))
    events = chain.send(ALICE, TransferWork(fingerprint(1), BOB.address))
    work = work_of(chain.state, fingerprint(1))
    assert work is not None and work.owner == BOB.address
    assert works_of(chain.state, ALICE.address) == []
    assert works_of(chain.state, BOB.address) == [fingerprint(1)]
    assert events[0] == WorkTransferred(fingerprint(1), ALICE.address, BOB.address)
    chain.send(BOB, TransferWork(fingerprint(1), CAROL.address))  # the new owner can pass it on


def test_only_the_owner_transfers_a_work(chain: Chain) -> None:
    chain.send(ALICE, registration(1))
    before = chain.state.root
    with pytest.raises(SenderUnauthorizedError):
        chain.send(BOB, TransferWork(fingerprint(1), BOB.address))
    assert chain.state.root == before


def test_unknown_work_cannot_be_transferred(chain: Chain) -> None:
    with pytest.raises(WorkUnknownError):
        chain.send(ALICE, TransferWork(fingerprint(7), BOB.address))
