"""The fetch scheduler's decisions, driven with a fake clock and packets of a tiny code."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from typing import Any

import blake3
import pytest
from hypothesis import given
from hypothesis import strategies as st

from storenode.client.read_state import Ask, Miss, Phase
from storenode.client.reading import _on_the_wire
from storenode.client.scheduler import DOWN_TIME, TIMEOUT_FLOOR, FetchScheduler
from storenode.client.stripes import (
    decode_packets,
    inconsistent_senders,
    rebuild_from_shards,
    shard_is_valid,
)
from storenode.coding.merkle import SEGMENT_SIZE, merkle_root
from storenode.coding.rlnc import Packet, shard_packet
from storenode.coding.rs import ReedSolomon

BLOCK = SEGMENT_SIZE  # one segment per shard: small, and a valid chunk


def keys(count: int) -> list[bytes]:
    return [bytes([i + 1]) * 32 for i in range(count)]


A, B, C, D, E, F = keys(6)


@dataclass
class Work:
    """Stripes of a (k, n) code and their shards: what honest hosts would send."""

    k: int
    n: int
    stripes: list[bytes]

    @classmethod
    def random(cls, k: int, n: int, count: int, seed: int = 1) -> Work:
        rng = random.Random(seed)
        return cls(k, n, [rng.randbytes(k * BLOCK) for _ in range(count)])

    @property
    def code(self) -> ReedSolomon:
        return ReedSolomon(self.k, self.n)

    def shard(self, stripe: int, i: int) -> bytes:
        return bytes(self.code.encode_stripe(self.stripes[stripe])[i])

    def packet(self, stripe: int, i: int) -> Packet:
        return shard_packet(self.code, i, self.shard(stripe, i))

    def sha(self, stripe: int) -> bytes:
        return blake3.blake3(self.stripes[stripe]).digest()

    def chunk_id(self, stripe: int, i: int) -> bytes:
        return merkle_root(self.shard(stripe, i))


def scheduler(work: Work, hosts: list[bytes], **kw: Any) -> FetchScheduler:
    kw.setdefault("first", 0)
    kw.setdefault("last", len(work.stripes) - 1)
    kw.setdefault("start_window", kw.get("window", 8))  # the whole window at once
    kw.setdefault("urgent", kw.get("window", 8))  # every stripe gets the extra requests
    kw.setdefault("batch", 1)  # a request per stripe (the batches have their own tests)
    return FetchScheduler(hosts, k=work.k, n=work.n, shard_size=BLOCK, **kw)


def finish(sched: FetchScheduler, work: Work) -> list[int]:
    """Decode every ready stripe as the shell would; the stripes that decoded."""
    done = []
    for state in sched.take_ready():
        assert state.phase is Phase.DECODING
        data = decode_packets(state.decoder, work.sha(state.index))
        sched.decoded(state.index, ok=data is not None)
        if data is not None:
            assert data == work.stripes[state.index]
            done.append(state.index)
    return done


def flip(packet: Packet) -> Packet:
    payload = bytearray(packet.payload)
    payload[0] ^= 1
    return Packet(packet.coefficients, bytes(payload))


# -- planning ------------------------------------------------------------------------------


def test_each_stripe_of_the_window_gets_k_distinct_hosts_earliest_first() -> None:
    work = Work.random(2, 4, 5)
    sched = scheduler(work, keys(6), window=3, extra=1, urgent=3, per_host=4)
    asks = sched.plan(0.0)
    assert [a.stripe for a in asks] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    for s in range(3):
        assert len({a.host for a in asks if a.stripe == s}) == 3  # k + extra, distinct
    assert all(a.shard is None for a in asks)
    assert sched.plan(0.0) == []  # nothing more until something happens


def test_only_the_urgent_stripes_get_extra_requests() -> None:
    work = Work.random(2, 4, 5)
    sched = scheduler(work, keys(6), window=4, extra=1, urgent=1)
    asks = sched.plan(0.0)
    assert Counter(a.stripe for a in asks) == {0: 3, 1: 2, 2: 2, 3: 2}
    first, second, _ = (a for a in asks if a.stripe == 0)
    sched.on_packet(first.id, work.packet(0, 0), 0.01)
    sched.on_packet(second.id, work.packet(0, 1), 0.01)
    finish(sched, work)
    sched.advance()
    # stripe 1 is now the urgent one: one more request; stripe 4 enters the window
    assert Counter(a.stripe for a in sched.plan(0.01)) == {1: 1, 4: 2}


def test_the_window_opens_as_stripes_are_taken() -> None:
    work = Work.random(1, 2, 10)
    sched = scheduler(work, [A, B], window=4, start_window=2, extra=0, per_host=8)
    asks = sched.plan(0.0)
    assert sorted({a.stripe for a in asks}) == [0, 1]
    for ask in asks:
        sched.on_packet(ask.id, work.packet(ask.stripe, 0), 0.01)
    finish(sched, work)
    sched.advance()

    def planned() -> list[int]:
        asks = sched.plan(0.01)
        for ask in asks:
            sched.on_packet(ask.id, work.packet(ask.stripe, 0), 0.02)
        finish(sched, work)
        return sorted(a.stripe for a in asks)

    assert planned() == [2, 3]  # 3 stripes: 1..3
    sched.advance()
    assert planned() == [4, 5]  # 4 stripes: 2..5
    sched.advance()
    assert planned() == [6]  # still 4: 3..6


def test_no_host_gets_more_than_per_host_requests() -> None:
    work = Work.random(2, 3, 8)
    sched = scheduler(work, keys(3), window=8, extra=1, per_host=2)
    asks = sched.plan(0.0)
    assert max(Counter(a.host for a in asks).values()) == 2
    assert len(asks) == 6  # 3 hosts x 2: the later stripes wait


def test_requests_are_spread_in_proportion_to_host_rates() -> None:
    work = Work.random(1, 2, 16)
    sched = scheduler(work, [A, B], window=8, extra=0, per_host=8)
    first = sched.plan(0.0)
    assert Counter(a.host for a in first) == {A: 4, B: 4}  # no rates yet: even
    for ask in first:  # A delivers three times as fast as B
        at = 0.001 if ask.host == A else 0.003
        sched.on_packet(ask.id, work.packet(ask.stripe, 0), at)
    assert finish(sched, work) == list(range(8))
    for _ in range(8):
        sched.advance()
    rate_a, rate_b = sched.hosts[A].rate, sched.hosts[B].rate
    assert rate_a is not None and rate_b is not None
    assert rate_a == pytest.approx(3 * rate_b)
    second = sched.plan(0.003)
    assert Counter(a.host for a in second) == {A: 6, B: 2}


def test_timeouts_follow_the_host_rate_above_a_floor() -> None:
    work = Work.random(1, 2, 4)
    sched = scheduler(work, [A, B], window=1, extra=0)
    (ask,) = sched.plan(0.0)
    assert ask.timeout == TIMEOUT_FLOOR  # unmeasured hosts are assumed fast
    sched.on_packet(ask.id, work.packet(0, 0), 10.0)  # 1 KiB in 10 s: a slow host
    finish(sched, work)
    sched.advance()
    sched.hosts[B].distrusted = True
    (slow,) = sched.plan(10.0)
    assert slow.host == ask.host
    assert slow.timeout == pytest.approx(40.0)  # four times the 10 s it should take


# -- batches ---------------------------------------------------------------------------------


def wire(asks: list[Ask]) -> list[tuple[bytes, list[int]]]:
    """The requests the shell sends for ``asks``: (host, stripes) each."""
    return [(r[0].host, [a.stripe for a in r]) for r in _on_the_wire(asks)]


def test_stripes_ahead_of_the_reader_are_asked_for_in_batches_per_host_and_group() -> None:
    work = Work.random(2, 4, 9)
    sched = scheduler(work, keys(6), window=8, urgent=1, extra=1, batch=4, per_host=8)
    asks = sched.plan(0.0)
    # stripe 0 (urgent) on its own, k + extra; stripes 1..7 k each; stripe 8's group
    # (8..8, the last) is not all in the window yet
    assert Counter(a.stripe for a in asks) == {0: 3, **{s: 2 for s in range(1, 8)}}
    requests = wire(asks)
    singles = [r for r in requests if len(r[1]) == 1]
    batches = [r for r in requests if len(r[1]) > 1]
    assert [stripes for _, stripes in singles] == [[0]] * 3
    assert sorted(stripes for _, stripes in batches) == [[1, 2, 3]] * 2 + [[4, 5, 6, 7]] * 2
    for s in range(1, 8):  # each stripe still on k distinct hosts
        assert len({a.host for a in asks if a.stripe == s}) == 2
    assert sched.stats.requests == len(asks)


def test_a_group_is_asked_for_once_all_of_it_is_in_the_window() -> None:
    work = Work.random(1, 2, 10)
    sched = scheduler(work, [A, B], window=6, urgent=1, extra=0, batch=4, per_host=8)
    asks = sched.plan(0.0)
    assert wire(asks) == [(A, [0]), (B, [1, 2, 3])]  # stripes 4..7 wait: the window ends at 5
    for ask in asks[:2]:  # stripes 0 and 1
        sched.on_packets([(ask.id, work.packet(ask.stripe, 0))], 0.01)
    assert finish(sched, work) == [0, 1]
    sched.advance()
    assert sched.plan(0.01) == []  # window 1..6: still not all of 4..7
    sched.advance()
    later = sched.plan(0.01)  # window 2..7
    assert [stripes for _, stripes in wire(later)] == [[4, 5, 6, 7]]


def test_batches_start_once_the_window_is_open_to_its_full_size() -> None:
    work = Work.random(1, 2, 40)
    sched = scheduler(
        work, [A, B], window=8, start_window=2, urgent=1, extra=0, batch=4, per_host=16
    )
    batched_from = None
    while not sched.done:
        asks = sched.plan(0.0)
        if any(a.batch >= 0 for a in asks) and batched_from is None:
            batched_from = sched.head
        for request in _on_the_wire(asks):
            j = [A, B].index(request[0].host)
            sched.on_packets([(a.id, work.packet(a.stripe, j)) for a in request], 0.0)
        finish(sched, work)
        while not sched.done and sched.stripe(sched.head).phase is Phase.DONE:
            sched.advance()
    # the window opens from 2 stripes by one per stripe taken: full (8) at stripe 6
    assert batched_from is not None and batched_from >= 6
    assert sched.stats.stripes == 40


def test_the_head_stripe_is_asked_for_even_when_no_group_fits_the_window() -> None:
    work = Work.random(1, 2, 3)
    sched = scheduler(work, [A, B], window=1, urgent=0, extra=0, batch=4)
    for s in range(3):
        (ask,) = sched.plan(0.0)
        assert ask.stripe == s and ask.batch == -1
        sched.on_packet(ask.id, work.packet(s, 0), 0.01)
        assert finish(sched, work) == [s]
        sched.advance()
    assert sched.done


def _batch_of_stripes_1_to_3(
    extra: int,
) -> tuple[Work, FetchScheduler, list[Ask], list[Ask]]:
    """A read of 9 stripes on three hosts whose first plan batches stripes 1-3."""
    work = Work.random(1, 3, 9)
    sched = scheduler(work, [A, B, C], window=5, urgent=1, extra=extra, batch=4, per_host=8)
    asks = sched.plan(0.0)
    (batch,) = [r for r in _on_the_wire(asks) if len(r) > 1]
    assert [a.stripe for a in batch] == [1, 2, 3]
    return work, sched, asks, batch


def test_a_batch_answer_feeds_its_stripes_and_the_ones_left_out_go_elsewhere() -> None:
    work, sched, asks, batch = _batch_of_stripes_1_to_3(extra=0)
    host = batch[0].host
    # the host holds stripes 1 and 3, not 2
    answers = [(a.id, None if a.stripe == 2 else work.packet(a.stripe, 0)) for a in batch]
    assert sched.on_packets(answers, 0.5) == []
    assert sched.stats.packets == 2
    assert sched.hosts[host].in_flight == 0
    assert sched.hosts[host].rate == pytest.approx(2 * BLOCK / 0.5)  # the batch's bytes
    (again,) = sched.plan(0.5)
    assert again.stripe == 2 and again.host != host  # not asked of the host again
    assert sched.stripe(2).absent == {host}
    sched.on_packet(again.id, work.packet(2, 0), 0.6)
    sched.on_packet(asks[0].id, work.packet(0, 0), 0.6)
    assert finish(sched, work) == [1, 3, 2, 0]


def test_a_stripe_completed_meanwhile_is_dropped_from_its_batch_answer() -> None:
    work, sched, asks, batch = _batch_of_stripes_1_to_3(extra=1)
    for a in asks:
        if a.stripe == 0:
            sched.on_packet(a.id, work.packet(0, 0), 0.1)
    assert finish(sched, work) == [0]
    sched.advance()  # stripe 1 is urgent now: one more request, to another host
    (extra,) = sched.plan(0.1)
    assert extra.stripe == 1 and extra.host != batch[0].host and extra.batch == -1
    cancelled = sched.on_packet(extra.id, work.packet(1, 0), 0.2)
    assert cancelled == [batch[0].id]  # the batch's ask for stripe 1
    packets = sched.stats.packets
    assert sched.on_packets([(a.id, work.packet(a.stripe, 0)) for a in batch], 0.3) == []
    assert sched.stats.packets == packets + 3  # its bytes came all the same
    assert finish(sched, work) == [1, 2, 3]
    assert sched.hosts[batch[0].host].in_flight == 0


def test_a_host_that_does_not_answer_batches_is_asked_one_stripe_at_a_time() -> None:
    work = Work.random(1, 2, 9)
    sched = scheduler(work, [A, B], window=8, urgent=1, extra=0, batch=4, per_host=8)
    asks = sched.plan(0.0)
    batch = [a for a in asks if a.batch >= 0 and a.host == B]
    assert len(batch) >= 2
    sched.no_batches(B, [a.id for a in batch])
    assert not sched.hosts[B].batches and sched.hosts[B].failures == 0
    again = sched.plan(0.0)
    assert {a.stripe for a in again} == {a.stripe for a in batch}  # asked again, no penalty
    assert all(a.batch == -1 for a in again if a.host == B)
    assert any(a.host == B for a in again)


def test_a_batch_never_asks_for_more_than_its_bytes_allow() -> None:
    work = Work.random(1, 2, 4)
    many = FetchScheduler([A], k=1, n=2, shard_size=BLOCK, first=0, last=99, batch=16)
    assert many.batch == 16
    big = FetchScheduler([A], k=1, n=2, shard_size=3 << 20, first=0, last=99, batch=16)
    assert big.batch == 1  # two 3 MiB packets are more than a batch carries
    with pytest.raises(ValueError):
        scheduler(work, [A], batch=0)


# -- completion ------------------------------------------------------------------------------


def test_a_stripe_at_rank_k_cancels_its_other_requests() -> None:
    work = Work.random(2, 4, 1)
    sched = scheduler(work, keys(4), extra=1)
    asks = sched.plan(0.0)
    assert len(asks) == 3
    assert sched.on_packet(asks[0].id, work.packet(0, 0), 0.01) == []
    assert sched.on_packet(asks[1].id, work.packet(0, 1), 0.02) == [asks[2].id]
    assert sched.stats.cancelled == 1
    assert sched.on_packet(asks[2].id, work.packet(0, 2), 0.03) == []  # late: ignored
    assert finish(sched, work) == [0]
    sched.advance()
    assert sched.done
    assert all(h.in_flight == 0 for h in sched.hosts.values())


def test_a_packet_that_adds_nothing_brings_in_another_host() -> None:
    work = Work.random(2, 4, 1)
    sched = scheduler(work, keys(4), extra=0)
    first = sched.plan(0.0)
    assert len(first) == 2
    sched.on_packet(first[0].id, work.packet(0, 0), 0.01)
    sched.on_packet(first[1].id, work.packet(0, 0), 0.01)  # the same shard again
    (more,) = sched.plan(0.01)
    assert more.host not in {a.host for a in first}
    sched.on_packet(more.id, work.packet(0, 3), 0.02)
    assert finish(sched, work) == [0]


def test_the_window_slides_as_the_reader_takes_stripes() -> None:
    work = Work.random(1, 2, 4)
    sched = scheduler(work, [A, B, C], window=2, extra=0)
    asks = sched.plan(0.0)
    assert [a.stripe for a in asks] == [0, 1]
    sched.on_packet(asks[1].id, work.packet(1, 0), 0.01)  # stripe 1 first
    assert finish(sched, work) == [1]
    with pytest.raises(RuntimeError):
        sched.advance()  # stripe 0 is not there yet
    assert sched.plan(0.01) == []
    sched.on_packet(asks[0].id, work.packet(0, 1), 0.02)
    finish(sched, work)
    sched.advance()
    assert [a.stripe for a in sched.plan(0.02)] == [2]


# -- failures --------------------------------------------------------------------------------


def test_a_failed_host_is_replaced_at_once_and_avoided_while_down() -> None:
    work = Work.random(2, 4, 3)
    sched = scheduler(work, keys(4), window=3, extra=0)
    asks = sched.plan(0.0)
    dead = asks[0].host
    others = [a.id for a in asks if a.host == dead and a is not asks[0]]
    cancelled = sched.on_miss(asks[0].id, Miss.FAILED, 0.5)
    assert sorted(cancelled) == sorted(others)
    again = sched.plan(0.5)
    assert {a.stripe for a in again} == {a.stripe for a in asks if a.host == dead}
    assert dead not in {a.host for a in again}
    assert sched.stats.failovers == 1 + len(others)
    # once down time is over, the host is asked again (for stripes it was not tried for)
    assert sched.hosts[dead].down_until == pytest.approx(0.5 + DOWN_TIME)


def test_a_down_host_is_asked_only_when_a_stripe_needs_it_to_reach_k() -> None:
    work = Work.random(2, 3, 2)
    sched = scheduler(work, [A, B, C], window=1, extra=1)
    a, b, c = sched.plan(0.0)
    assert (a.host, b.host, c.host) == (A, B, C)
    sched.on_miss(a.id, Miss.FAILED, 0.1)  # A is down
    sched.on_packet(b.id, work.packet(0, 1), 0.1)
    sched.on_packet(c.id, work.packet(0, 2), 0.1)
    finish(sched, work)
    sched.advance()
    # stripe 1 wants k + 1 = 3 hosts, but the extra one is not worth a down host
    b1, c1 = sched.plan(0.2)
    assert {b1.host, c1.host} == {B, C}
    sched.on_packet(b1.id, work.packet(1, 1), 0.3)
    sched.on_miss(c1.id, Miss.FAILED, 0.3)
    # now k=2 cannot be reached without A: it is asked although down
    (again,) = sched.plan(0.3)
    assert again.host == A and sched.hosts[A].down(0.3)
    sched.on_packet(again.id, work.packet(1, 0), 0.4)
    assert finish(sched, work) == [1]


def test_a_host_without_the_stripe_is_not_asked_for_it_again_without_penalty() -> None:
    work = Work.random(1, 2, 2)
    sched = scheduler(work, [A, B], window=2, extra=0)
    asks = sched.plan(0.0)
    on_a = next(a for a in asks if a.host == A)
    assert sched.on_miss(on_a.id, Miss.ABSENT, 0.01) == []
    (retry,) = sched.plan(0.01)
    assert retry.host == B and retry.stripe == on_a.stripe
    assert not sched.hosts[A].down(0.01)
    assert sched.stats.failovers == 0


def test_a_stripe_no_host_can_serve_blocks_the_read() -> None:
    work = Work.random(2, 3, 1)
    sched = scheduler(work, [A, B, C], extra=0)
    asks = sched.plan(0.0)
    assert sched.blocked() is None
    sched.on_miss(asks[0].id, Miss.ABSENT, 0.1)
    assert sched.blocked() is None  # C is left
    (c,) = sched.plan(0.1)
    sched.on_miss(c.id, Miss.REFUSED, 0.2)
    blocked = sched.blocked()
    assert blocked is not None and blocked.index == 0
    assert "refused" in sched.why_blocked(blocked)


def test_a_refusing_host_is_not_asked_again() -> None:
    work = Work.random(1, 2, 3)
    sched = scheduler(work, [A, B], window=3, extra=0, per_host=4)
    asks = sched.plan(0.0)
    refused = next(a for a in asks if a.host == A)
    sched.on_miss(refused.id, Miss.REFUSED, 0.1)
    assert all(a.host == B for a in sched.plan(0.1))


# -- verification ------------------------------------------------------------------------------


def test_a_stripe_that_misses_its_hash_is_rebuilt_from_verified_shards_and_liars_distrusted() -> (
    None
):
    work = Work.random(2, 4, 2)
    hosts = [A, B, C, D]  # host j holds shard j of every stripe; A lies in its packets
    sched = scheduler(work, hosts, window=2, extra=0)
    asks = sched.plan(0.0)
    assert {(a.stripe, a.host) for a in asks} == {(0, A), (0, B), (1, C), (1, D)}
    by = {(a.stripe, a.host): a for a in asks}
    sched.on_packet(by[(0, A)].id, flip(work.packet(0, 0)), 0.01)
    sched.on_packet(by[(0, B)].id, work.packet(0, 1), 0.01)
    assert finish(sched, work) == []  # the hash did not match
    assert sched.stats.mismatches == 1
    assert sched.stripe(0).phase is Phase.VERIFYING

    shard_asks = [a for a in sched.plan(0.02) if a.stripe == 0]
    # the hosts that sent a shard's generator row are asked for that shard first
    assert {(a.host, a.shard) for a in shard_asks} == {(A, 0), (B, 1)}
    for a in shard_asks:
        assert a.shard is not None
        shard = work.shard(0, a.shard)
        assert shard_is_valid(shard, work.chunk_id(0, a.shard))
        sched.on_shard(a.id, shard, 0.03, valid=True)
    (state,) = sched.take_ready()
    assert state.phase is Phase.REBUILDING
    rebuilt = rebuild_from_shards(work.code, state.shards, work.sha(0))
    assert rebuilt is not None and rebuilt[0] == work.stripes[0]
    liars = inconsistent_senders(rebuilt[1], state.packets)
    assert liars == {A}
    sched.rebuilt(0, liars)
    assert sched.stats.distrusted == {A}
    sched.advance()
    # stripe 1 completes from C and D; A is never asked again
    sched.on_packet(by[(1, C)].id, work.packet(1, 2), 0.04)
    sched.on_packet(by[(1, D)].id, work.packet(1, 3), 0.04)
    assert finish(sched, work) == [1]


def test_a_host_sending_bytes_that_are_not_the_chunk_is_distrusted() -> None:
    work = Work.random(2, 4, 1)
    sched = scheduler(work, [A, B, C, D], extra=0)
    asks = sched.plan(0.0)
    sched.on_packet(asks[0].id, flip(work.packet(0, 0)), 0.01)
    sched.on_packet(asks[1].id, work.packet(0, 1), 0.01)
    finish(sched, work)
    shard_asks = sched.plan(0.02)
    lying = next(a for a in shard_asks if a.host == A)
    sched.on_shard(lying.id, bytes(BLOCK), 0.03, valid=False)
    assert sched.hosts[A].distrusted
    assert A not in {a.host for a in sched.plan(0.03)}


def test_distrusting_a_host_drops_its_packets_from_stripes_being_fetched() -> None:
    work = Work.random(3, 5, 2)
    sched = scheduler(work, keys(5), window=2, extra=0)
    asks = sched.plan(0.0)
    on1 = [a for a in asks if a.stripe == 1]
    sched.on_packet(on1[0].id, work.packet(1, 0), 0.01)
    assert sched.stripe(1).decoder.rank == 1
    sched.distrust(on1[0].host)
    assert sched.stripe(1).decoder.rank == 0
    assert on1[0].host not in {a.host for a in sched.plan(0.01)}


def test_malformed_packets_distrust_their_sender() -> None:
    work = Work.random(2, 4, 1)
    sched = scheduler(work, keys(4), extra=0)
    asks = sched.plan(0.0)
    short = Packet(work.packet(0, 0).coefficients, b"x")
    sched.on_packet(asks[0].id, short, 0.01)
    assert sched.hosts[asks[0].host].distrusted


# -- a whole read, whatever the hosts do ------------------------------------------------------

Behaviour = st.sampled_from(["good", "good", "good", "absent", "fail", "lie", "slow"])


@given(
    behaviours=st.lists(Behaviour, min_size=3, max_size=7),
    k=st.integers(1, 3),
    extra=st.integers(0, 2),
    window=st.integers(1, 6),
    urgent=st.integers(0, 6),
    per_host=st.integers(1, 4),
    batch=st.integers(1, 4),
    seed=st.integers(0, 2**32),
)
def test_a_read_delivers_every_stripe_right_or_names_the_stripe_it_cannot(
    behaviours: list[str],
    k: int,
    extra: int,
    window: int,
    urgent: int,
    per_host: int,
    batch: int,
    seed: int,
) -> None:
    """A simulated read: host j holds shard j of every stripe and behaves as told
    (answers, lacks the stripe, fails, sends flipped packets, answers slowly). The
    requests go out as the shell sends them: a batch's asks as one request, answered
    at once."""
    rng = random.Random(seed)
    n = len(behaviours)
    k = min(k, n)
    work = Work.random(k, n, 7, seed=seed)
    hosts = keys(n)
    index = {h: j for j, h in enumerate(hosts)}
    sched = scheduler(
        work, hosts, window=window, extra=extra, urgent=urgent, per_host=per_host, batch=batch
    )
    now = 0.0
    requests: list[list[Ask]] = []  # on the wire
    live: set[int] = set()  # asks not cancelled
    delivered: list[bytes] = []
    tried: set[tuple[int, bytes, int | None]] = set()

    def cancel(ids: list[int]) -> None:
        live.difference_update(ids)
        requests[:] = [r for r in requests if any(a.id in live for a in r)]

    for _ in range(2000):
        for state in sched.take_ready():
            if state.phase is Phase.DECODING:
                data = decode_packets(state.decoder, work.sha(state.index))
                sched.decoded(state.index, ok=data is not None)
            else:
                out = rebuild_from_shards(work.code, state.shards, work.sha(state.index))
                assert out is not None
                cancel(sched.rebuilt(state.index, inconsistent_senders(out[1], state.packets)))
        while not sched.done and sched.stripe(sched.head).phase is Phase.DONE:
            delivered.append(work.stripes[sched.head])
            sched.advance()
        if sched.done:
            break
        asks = sched.plan(now)
        for ask in asks:
            assert (ask.stripe, ask.host, ask.shard) not in tried  # never the same question twice
            tried.add((ask.stripe, ask.host, ask.shard))
            assert sched.hosts[ask.host].in_flight <= per_host
            assert not sched.hosts[ask.host].distrusted
            live.add(ask.id)
        for request in _on_the_wire(asks):
            assert len(request) <= batch
            assert len({a.host for a in request}) == 1  # a batch goes to one host
            assert len({a.stripe for a in request}) == len(request)
            assert len(request) == 1 or all(a.shard is None for a in request)
            requests.append(request)
        if not requests:
            assert sched.blocked() is not None
            break
        request = requests.pop(rng.randrange(len(requests)))
        live.difference_update(a.id for a in request)
        j = index[request[0].host]
        behaviour = behaviours[j]
        now += 0.05 if behaviour == "slow" else 0.001
        if behaviour == "absent":
            if len(request) == 1:
                sched.on_miss(request[0].id, Miss.ABSENT, now)
            else:  # a host leaves out of a batch what it does not hold
                cancel(sched.on_packets([(a.id, None) for a in request], now))
        elif behaviour == "fail":
            for a in request:
                cancel(sched.on_miss(a.id, Miss.FAILED, now))
        elif (ask := request[0]).shard is not None:
            shard = work.shard(ask.stripe, ask.shard)
            if ask.shard != j:  # a host holds only its own shard
                sched.on_miss(ask.id, Miss.ABSENT, now)
            else:
                cancel(sched.on_shard(ask.id, shard, now, valid=True))
        else:
            answers: list[tuple[int, Packet | None]] = []
            for a in request:
                packet = work.packet(a.stripe, j)
                answers.append((a.id, flip(packet) if behaviour == "lie" else packet))
            cancel(sched.on_packets(answers, now))
    else:
        pytest.fail("the read neither finished nor blocked")
    assert delivered == work.stripes[: len(delivered)]
    honest = sum(1 for b in behaviours if b in ("good", "slow"))
    if honest >= k:
        assert sched.done  # enough honest hosts: every stripe arrives
    assert all(behaviours[index[h]] == "lie" for h in sched.stats.distrusted)
