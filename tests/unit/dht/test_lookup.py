"""The lookup state machine, driven by hand: concurrency, order, termination, hops."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from storenode.dht import (
    CandidateState,
    Contact,
    FindNode,
    FindValue,
    Lookup,
    LookupMode,
    LookupStateError,
    distance,
    key_position,
    sign_record,
)
from storenode.dht.lookup import TRANSITIONS

from .conftest import NOW, identity

TARGET = bytes(20)


def contacts(n: int, seed: int = 0) -> list[Contact]:
    """``n`` contacts sorted by distance to ``TARGET``, nearest first."""
    rng = random.Random(seed)
    cs = [Contact(rng.randbytes(32), "127.0.0.2", 1000 + i) for i in range(n)]
    return sorted(cs, key=lambda c: distance(c.node_id, TARGET))


def test_up_to_alpha_requests_are_in_flight_and_each_event_frees_a_slot() -> None:
    cs = contacts(30)
    lookup = Lookup(TARGET, cs[10:], k=5, alpha=3)
    first = lookup.next_requests()
    assert first == cs[10:13]  # closest first
    assert lookup.in_flight == 3
    assert lookup.next_requests() == []  # no slot free
    lookup.on_response(cs[11], [])
    assert lookup.next_requests() == [cs[13]]  # one slot, refilled at once
    lookup.on_failure(cs[10])
    assert lookup.next_requests() == [cs[14]]
    assert lookup.in_flight == 3
    assert lookup.max_in_flight == 3


def test_closer_contacts_learned_from_a_reply_are_queried_next() -> None:
    cs = contacts(30)
    lookup = Lookup(TARGET, cs[20:], k=3, alpha=1)
    (asked,) = lookup.next_requests()
    assert asked == cs[20]
    lookup.on_response(asked, [cs[0], cs[1], cs[2]])
    assert lookup.next_requests() == [cs[0]]


def test_done_only_when_the_k_closest_have_responded() -> None:
    cs = contacts(10)
    lookup = Lookup(TARGET, cs, k=3, alpha=2)
    a, b = lookup.next_requests()
    assert (a, b) == (cs[0], cs[1])
    lookup.on_response(a, [])
    (c,) = lookup.next_requests()
    assert c == cs[2]
    lookup.on_response(b, [])
    assert not lookup.done  # cs[2] still in flight
    assert lookup.next_requests() == []  # the 4th closest is not needed
    lookup.on_response(c, [])
    assert lookup.done
    result = lookup.result()
    assert result.closest == cs[:3]
    assert (result.queried, result.responded, result.failed) == (3, 3, 0)


def test_a_failed_contact_is_replaced_by_the_next_closest_and_never_comes_back() -> None:
    cs = contacts(10)
    lookup = Lookup(TARGET, cs[:4], k=3, alpha=3)
    asked = lookup.next_requests()
    assert asked == cs[:3]
    lookup.on_failure(cs[0])
    assert lookup.next_requests() == [cs[3]]
    lookup.on_response(cs[1], [cs[0]])  # named again after it failed
    assert lookup.state_of(cs[0].node_id) is CandidateState.FAILED
    lookup.on_response(cs[2], [])
    lookup.on_response(cs[3], [])
    assert lookup.done
    assert lookup.result().closest == cs[1:4]
    assert lookup.result().failed == 1


def test_the_local_node_is_never_queried_but_counts_in_the_result() -> None:
    cs = contacts(6)
    me = cs[0]
    lookup = Lookup(TARGET, cs[1:], k=3, alpha=3, local=me)
    asked = lookup.next_requests()
    assert me not in asked
    assert asked == cs[1:3]  # the shortlist is me + two others
    for c in asked:
        lookup.on_response(c, [me])  # others naming us change nothing
    assert lookup.done
    result = lookup.result()
    assert result.closest == cs[:3]
    assert result.hops == 0


def test_hops_is_the_depth_at_which_the_closest_responder_was_learned() -> None:
    cs = contacts(10)
    lookup = Lookup(TARGET, [cs[9]], k=1, alpha=1)
    (a,) = lookup.next_requests()
    lookup.on_response(a, [cs[5]])  # depth 2
    (b,) = lookup.next_requests()
    lookup.on_response(b, [cs[0]])  # depth 3
    (c,) = lookup.next_requests()
    lookup.on_response(c, [])
    assert lookup.done
    assert lookup.result().closest == [cs[0]]
    assert lookup.result().hops == 3


def test_events_the_state_does_not_allow_raise() -> None:
    cs = contacts(5)
    lookup = Lookup(TARGET, cs, k=2, alpha=1)
    with pytest.raises(LookupStateError):
        lookup.on_response(cs[0], [])  # never asked
    with pytest.raises(LookupStateError):
        lookup.on_failure(Contact(b"\x01" * 32, "x", 1))  # never heard of
    (a,) = lookup.next_requests()
    lookup.on_response(a, [])
    with pytest.raises(LookupStateError):
        lookup.on_response(a, [])  # twice
    with pytest.raises(LookupStateError):
        lookup.on_failure(a)
    with pytest.raises(LookupStateError):
        lookup.result()  # not done


def test_the_transition_table_is_the_only_way_to_move() -> None:
    assert set(TRANSITIONS.values()) == {
        CandidateState.IN_FLIGHT,
        CandidateState.RESPONDED,
        CandidateState.FAILED,
    }


def test_a_lookup_with_no_contacts_is_done_at_once() -> None:
    lookup = Lookup(TARGET, [])
    assert lookup.next_requests() == []
    assert lookup.done
    assert lookup.result().closest == []


def test_only_the_first_k_contacts_of_a_reply_are_used() -> None:
    cs = contacts(10)
    lookup = Lookup(TARGET, [cs[9]], k=2, alpha=1)
    (a,) = lookup.next_requests()
    lookup.on_response(a, [cs[5], cs[6], cs[0]])
    assert lookup.state_of(cs[0].node_id) is None


def test_requests_ask_for_the_target() -> None:
    me = contacts(1)[0]
    assert Lookup(TARGET, []).request(me) == FindNode(me, TARGET)
    value = Lookup(b"chunk", [], mode=LookupMode.VALUE)
    assert value.request(me) == FindValue(me, b"chunk")
    assert value.target == key_position(b"chunk")
    with pytest.raises(ValueError):
        Lookup(b"not 20 bytes", [])


def test_a_value_lookup_keeps_the_newest_record_of_each_owner() -> None:
    owners = [identity(1), identity(2)]
    key = b"chunk-x"
    old = sign_record(owners[0], key, b"v1", created=int(NOW), ttl=600)
    new = sign_record(owners[0], key, b"v2", created=int(NOW) + 10, ttl=600)
    other = sign_record(owners[1], key, b"w", created=int(NOW), ttl=600)
    stray = sign_record(owners[1], b"other key", b"w", created=int(NOW), ttl=600)
    cs = contacts(4)
    lookup = Lookup(key, cs, k=4, alpha=4, mode=LookupMode.VALUE)
    a, b, c, d = lookup.next_requests()
    lookup.on_response(a, [], [new])
    lookup.on_response(b, [], [old, other])
    lookup.on_response(c, [], [stray])
    lookup.on_response(d, [])
    result = lookup.result()
    assert sorted(result.records, key=lambda r: r.owner) == sorted(
        [new, other], key=lambda r: r.owner
    )
    assert lookup.records_dropped == 1


def test_enough_records_stops_new_requests_but_waits_for_those_in_flight() -> None:
    key = b"chunk-y"
    record = sign_record(identity(3), key, b"v", created=int(NOW), ttl=600)
    cs = contacts(10)
    lookup = Lookup(key, cs, k=5, alpha=2, mode=LookupMode.VALUE, enough_records=1)
    a, b = lookup.next_requests()
    lookup.on_response(a, [], [record])
    assert lookup.next_requests() == []
    assert not lookup.done
    lookup.on_failure(b)
    assert lookup.done
    assert lookup.result().records == [record]


@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 120),
    k=st.integers(1, 20),
    alpha=st.integers(1, 5),
    dead_share=st.floats(0, 0.5),
)
def test_with_truthful_replies_any_event_order_finds_the_k_closest_live_contacts(
    seed: int, n: int, k: int, alpha: int, dead_share: float
) -> None:
    rng = random.Random(seed)
    everyone = [Contact(rng.randbytes(32), "127.0.0.3", 1 + i) for i in range(n)]
    dead = {c.node_id for c in everyone if rng.random() < dead_share}
    target = rng.randbytes(20)

    def nearest(contacts: list[Contact], m: int) -> list[Contact]:
        return sorted(contacts, key=lambda c: distance(c.node_id, target))[:m]

    live = [c for c in everyone if c.node_id not in dead]
    initial = rng.sample(everyone, min(n, 5))  # dead ones too: those requests fail
    lookup = Lookup(target, initial, k=k, alpha=alpha)
    in_flight: list[Contact] = []
    while not lookup.done:
        in_flight += lookup.next_requests()
        assert len(in_flight) == lookup.in_flight <= alpha
        assert lookup.in_flight == alpha or not lookup.has_work
        contact = in_flight.pop(rng.randrange(len(in_flight)))
        if contact.node_id in dead:
            lookup.on_failure(contact)
        else:  # every node knows every live node and answers truthfully
            lookup.on_response(contact, nearest(live, k))
    reachable = live if any(c.node_id not in dead for c in initial) else []
    assert lookup.result().closest == nearest(reachable, k)
