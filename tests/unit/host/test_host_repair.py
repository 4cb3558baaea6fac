"""Repair (:mod:`storenode.host.repair`): a damaged chunk is coded again from its
stripe as a reader gets it, and put over the damaged copy; when that cannot be
done the reason is logged and the store is left as it was."""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import trio
import trio.testing

from storenode.client.content import ContentInfo, ContentUnavailableError, PaymentRequiredError
from storenode.host.repair import RETRY_AFTER, Repairer, Slot
from storenode.publish.manifest import Manifest, build_manifest, encode_manifest
from storenode.store import ChunkCorruptError, MemoryChunkStore
from storenode.testing.content import MemoryContentSource
from storenode.testing.ledger import account

K, N, STRIPE = 3, 5, 3 * 1024
DATA = random.Random(5).randbytes(2 * STRIPE + 1000)  # the last stripe is padded
MANIFEST, SHARDS = build_manifest(
    account(0), "track.wav", "audio/wav", DATA, k=K, n=N, stripe_size=STRIPE, created=1
)
RAW = encode_manifest(MANIFEST)


async def inline(fn: Callable[..., Any], *args: Any) -> Any:
    return fn(*args)


def setup(
    stripe: int, shard: int, source: Any, *, manifest: bytes | None = RAW
) -> tuple[Repairer, MemoryChunkStore, bytes]:
    """A store holding shard ``shard`` of ``stripe``, damaged, and a repairer over it."""
    chunk_id = MANIFEST.stripes[stripe].chunk_ids[shard]
    store = MemoryChunkStore(capacity=1 << 20)
    store.put(chunk_id, SHARDS[stripe][shard])
    store.tamper(chunk_id, bytes(b ^ 0xFF for b in SHARDS[stripe][shard]))
    repairer = Repairer(
        store,
        source,
        slots_of=lambda c: [Slot(MANIFEST.cid, stripe, shard)] if c == chunk_id else [],
        manifest_of=lambda cid: manifest if cid == MANIFEST.cid else None,
        in_thread=inline,
    )
    return repairer, store, chunk_id


def memory_source() -> MemoryContentSource:
    source = MemoryContentSource(piece=1000)
    assert source.add("track.wav", "audio/wav", DATA) == MANIFEST.cid
    return source


@pytest.mark.parametrize(("stripe", "shard"), [(0, 0), (1, 4), (2, 2)])
async def test_a_damaged_chunk_is_coded_again_from_its_stripe_and_put_over_the_damage(
    stripe: int, shard: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="storenode.host.daemon")
    repaired: list[bytes] = []
    repairer, store, chunk_id = setup(stripe, shard, memory_source())
    repairer.on_repaired = repaired.append
    with pytest.raises(ChunkCorruptError):
        store.get(chunk_id)

    assert await repairer.repair(chunk_id)

    assert store.get(chunk_id) == bytes(SHARDS[stripe][shard])
    assert (repairer.repaired, repairer.failed, repaired) == (1, 0, [chunk_id])
    assert f"repaired chunk {chunk_id.hex()[:16]}… (shard {shard} of stripe {stripe}" in (
        caplog.text
    )


class _Priced:
    """A source whose reads need a receipt this node does not hold."""

    async def open(self, cid: bytes) -> ContentInfo:
        raise AssertionError("repair reads, it does not open")

    def read(self, cid: bytes, start: int, end: int, *, bulk: bool = False) -> AsyncIterator[bytes]:
        raise PaymentRequiredError("work costs 2 tokens", price=2, cap=0)


class _Lying(MemoryContentSource):
    """Serves other bytes than the work's (a source the store's check must catch)."""

    async def _pieces(self, cid: bytes, data: bytes, start: int, end: int) -> AsyncIterator[bytes]:
        yield bytes(end - start)


def _lying() -> MemoryContentSource:
    source = _Lying()
    source.add("track.wav", "audio/wav", DATA)
    return source


@pytest.mark.parametrize(
    ("source", "manifest", "why"),
    [
        (memory_source, None, "keeps no manifest of work"),
        (memory_source, b"\x93junk", "does not decode"),
        (_Priced, RAW, "is priced and this node holds no receipt"),
        (_lying, RAW, "the rebuilt chunk could not be stored"),
    ],
)
async def test_a_chunk_that_cannot_be_rebuilt_is_left_as_it_was_and_the_log_says_why(
    source: Callable[[], Any], manifest: bytes | None, why: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="storenode.host.daemon")
    repairer, store, chunk_id = setup(1, 1, source(), manifest=manifest)

    assert not await repairer.repair(chunk_id)

    with pytest.raises(ChunkCorruptError):
        store.get(chunk_id)  # still damaged, and nothing else written
    assert store.chunk_count == 1
    assert (repairer.repaired, repairer.failed) == (0, 1)
    assert f"could not repair chunk {chunk_id.hex()[:16]}…" in caplog.text
    assert why in caplog.text


CONTRACT_SLOT = Slot(MANIFEST.cid, 2, 3, b"\x07" * 32, 5, (b"\x01" * 32,))


def as_host_reading(calls: list[tuple[bytes, Slot]], fail: str | None = None) -> Any:
    """A stand-in for :func:`storenode.host.repair.stripe_as_host`: the padded stripe
    (or ``fail``), and the (work, slot) it was asked for."""

    async def read(m: Manifest, slot: Slot) -> bytearray:
        calls.append((m.cid, slot))
        if fail is not None:
            raise ContentUnavailableError(fail)
        start = slot.stripe * m.stripe_size
        return bytearray(DATA[start : start + m.stripe_size].ljust(m.stripe_size, b"\0"))

    return read


async def test_a_priced_works_chunk_is_rebuilt_by_asking_the_hosts_as_its_host(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="storenode.host.daemon")
    repairer, store, chunk_id = setup(2, 3, _Priced())  # the last stripe: padded
    repairer.slots_of = lambda c: [CONTRACT_SLOT] if c == chunk_id else []
    calls: list[tuple[bytes, Slot]] = []
    repairer.as_host = as_host_reading(calls)

    assert await repairer.repair(chunk_id)

    assert store.get(chunk_id) == bytes(SHARDS[2][3])
    assert calls == [(MANIFEST.cid, CONTRACT_SLOT)]  # with the contract that proves it
    assert (repairer.repaired, repairer.failed) == (1, 0)


@pytest.mark.parametrize(
    ("slot", "fail", "why"),
    [
        (CONTRACT_SLOT, "1 of the k=3 packets needed", "could not be read as its host: 1 of"),
        (Slot(MANIFEST.cid, 2, 3), None, "is priced and this node holds no receipt"),
    ],
)
async def test_a_priced_works_chunk_the_hosts_do_not_help_rebuild_stays_as_it_was(
    slot: Slot, fail: str | None, why: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="storenode.host.daemon")
    repairer, store, chunk_id = setup(2, 3, _Priced())
    repairer.slots_of = lambda c: [slot] if c == chunk_id else []
    calls: list[tuple[bytes, Slot]] = []
    repairer.as_host = as_host_reading(calls, fail)

    assert not await repairer.repair(chunk_id)

    with pytest.raises(ChunkCorruptError):
        store.get(chunk_id)
    assert len(calls) == (1 if slot.contract else 0)  # no contract to show: not asked
    assert why in caplog.text


async def test_a_stripe_cut_short_is_not_coded_and_a_chunk_no_contract_lists_is_let_go(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="storenode.host.daemon")
    source = memory_source()
    source.fail_at[MANIFEST.cid] = STRIPE + 500  # the hosts stop inside stripe 1
    repairer, _, chunk_id = setup(1, 0, source)
    assert not await repairer.repair(chunk_id)
    assert "its stripe could not be read" in caplog.text
    assert not await repairer.repair(bytes(32))  # listed by no live contract: nothing to do
    assert repairer.failed == 1


async def test_requests_are_queued_once_and_worked_one_at_a_time() -> None:
    source = memory_source()
    held = trio.Event()
    reading = 0
    most = 0

    async def hold(_: bytes, offset: int) -> None:
        nonlocal reading, most
        reading += 1
        most = max(most, reading)
        await held.wait()
        reading -= 1

    source.before_piece = hold
    repairer, store, chunk_id = setup(0, 0, source)
    other_id = MANIFEST.stripes[1].chunk_ids[0]
    store.put(other_id, SHARDS[1][0])
    store.tamper(other_id, b"\x01" * len(SHARDS[1][0]))
    slots = {chunk_id: [Slot(MANIFEST.cid, 0, 0)], other_id: [Slot(MANIFEST.cid, 1, 0)]}
    repairer.slots_of = lambda c: slots.get(c, [])
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(repairer.run)
            for c in (chunk_id, chunk_id, other_id, chunk_id):
                repairer.request(c)
            await trio.sleep(0.1)
            held.set()
            while repairer.repaired < 2:
                await trio.sleep(0.01)
            nursery.cancel_scope.cancel()
    assert most == 1  # one stripe read at a time
    assert repairer.repaired == 2  # each chunk once, though asked for three times
    assert store.get(other_id) == bytes(SHARDS[1][0])


async def test_a_chunk_that_could_not_be_rebuilt_is_not_tried_again_too_soon(
    autojump_clock: trio.testing.MockClock,
) -> None:
    repairer, _, chunk_id = setup(1, 1, _Priced())  # it can never be rebuilt
    async with trio.open_nursery() as nursery:
        nursery.start_soon(repairer.run)
        for _ in range(5):  # a small store's scrub finds it every second or so
            repairer.request(chunk_id)
            await trio.sleep(1)
        assert repairer.failed == 1  # tried once, and logged once
        assert repairer.waiting == 1
        await trio.sleep(RETRY_AFTER)
        repairer.request(chunk_id)
        await trio.sleep(1)
        assert repairer.failed == 2
        nursery.cancel_scope.cancel()
    repairer.slots_of = lambda c: []  # its contract ended: it is let go
    assert not await repairer.repair(chunk_id)
    assert repairer.waiting == 0


async def test_a_bug_in_one_repair_is_logged_and_the_next_chunk_is_repaired(
    caplog: pytest.LogCaptureFixture,
) -> None:
    source = memory_source()
    repairer, store, chunk_id = setup(0, 0, source)
    other_id = MANIFEST.stripes[1].chunk_ids[0]
    store.put(other_id, SHARDS[1][0])
    store.tamper(other_id, bytes(b ^ 0xFF for b in SHARDS[1][0]))

    def slots_of(c: bytes) -> list[Slot]:
        if c == chunk_id:
            raise RuntimeError("a bug in the book")
        return [Slot(MANIFEST.cid, 1, 0)] if c == other_id else []

    repairer.slots_of = slots_of
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(repairer.run)
            repairer.request(chunk_id)
            repairer.request(other_id)
            while repairer.repaired < 1:
                await trio.sleep(0.01)
            nursery.cancel_scope.cancel()
    assert store.get(other_id) == bytes(SHARDS[1][0])
    assert (repairer.failed, repairer.waiting) == (1, 1)
    assert "a bug in the book" in caplog.text


async def test_a_chunk_deleted_while_its_stripe_was_read_is_not_stored_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    source = memory_source()
    repairer, store, chunk_id = setup(0, 1, source)

    async def contract_ends(_: bytes, offset: int) -> None:
        store.delete(chunk_id)  # the host lets it go while the repair reads

    source.before_piece = contract_ends
    assert not await repairer.repair(chunk_id)
    assert not store.has(chunk_id)
    assert store.chunk_count == 0
    assert "let the chunk go meanwhile" in caplog.text
