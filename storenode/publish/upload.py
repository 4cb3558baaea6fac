"""Sending a work's chunks and manifest to its hosts, once their contracts are signed.

:meth:`Uploader.upload` codes the stripes again (the coding pass kept only
chunk ids, so memory stays bounded whatever the work's size) in a worker
thread, a batch of stripes at a time, and hands each shard a host has not
acknowledged to that host's queue; a few tasks per host send them as
``chunk.put_many`` (what is queued, up to 4 MiB per request), so about
``per_host`` chunks are in flight to each host and a slow host does not stall
the others until its queue is full. Batching saves each chunk a request, a
thread hop and an index commit on the host. A host of a version without
``chunk.put_many`` (it answers ``UNKNOWN_TYPE``) gets its chunks one
``chunk.put`` each, ``per_host`` of them in flight. Shards 0..k-1 are views of the
mapped file: nothing is copied before the wire encrypts it.

A request a host does not answer (no connection, a timeout, ``BUSY``) is
tried again a few times, with a doubling delay; then the publish stops with
:class:`HostFailedError` naming the host: its contract is open, so its shards
cannot move, and running the same command once it is back resumes. A
refusal (``REFUSED``, …) stops the publish at once (:class:`HostRefusedError`).
The acknowledged chunks are written to the journal about once a second, and
when the upload ends for any reason.

:meth:`Uploader.store_manifest` then gives the manifest to every host of the
work (``manifest.put``: they keep it and publish it in the DHT) and stores
its pointer and pieces in the DHT itself.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Final, cast

import msgspec
import trio

from storenode.coding.rs import ReedSolomon
from storenode.config import PeerSpec
from storenode.groups import single
from storenode.host.messages import (
    MAX_PUT_BATCH,
    ChunkPut,
    ChunkPutMany,
    ManifestPut,
    ManifestStored,
    Placement,
    Stored,
    StoredMany,
)
from storenode.net.dht import DhtService
from storenode.net.errors import NetError
from storenode.net.rpc import RpcNode
from storenode.publish.errors import RESUME_HINT, HostFailedError, HostRefusedError
from storenode.publish.journal import HostEntry
from storenode.publish.records import (
    MANIFEST_TTL,
    encode_pointer,
    manifest_key,
    manifest_piece_key,
    split_manifest,
)
from storenode.publish.session import (
    JournalSaver,
    Progress,
    PublishOptions,
    Work,
)
from storenode.wire.errors import RemoteError, WireError
from storenode.wire.messages import ErrorCode

log = logging.getLogger(__name__)

ATTEMPTS: Final = 4
"""Tries of one request to a host of an opened contract before the publish stops."""
CODING_BATCH: Final = 8 << 20
"""Bytes of the work coded per worker-thread call."""
FLUSH_INTERVAL: Final = 1.0
"""Seconds between two saves of the journal during the upload."""
PUT_BATCH_BYTES: Final = 4 << 20
"""Most chunk bytes in one ``chunk.put_many`` (well inside the wire's 8 MiB)."""
_RETRYABLE: Final = frozenset(
    {ErrorCode.BUSY, ErrorCode.TIMEOUT, ErrorCode.INTERNAL, ErrorCode.UNAVAILABLE}
)

Shard = tuple[int, int, int, memoryview | bytes]
"""``(position in the host's contract, stripe, shard index, bytes)``."""


class Uploader:
    """The upload step of a publish (see the module docstring)."""

    def __init__(
        self,
        rpc: RpcNode,
        dht: DhtService,
        saver: JournalSaver,
        coding: trio.CapacityLimiter,
    ) -> None:
        self.rpc = rpc
        self.dht = dht
        self.saver = saver
        self.coding = coding
        self.single_puts: set[bytes] = set()
        """Hosts (public keys) that do not know ``chunk.put_many``."""
        self._single_limits: dict[bytes, trio.CapacityLimiter] = {}

    async def upload(self, work: Work, options: PublishOptions, progress: Progress) -> None:
        """Code the stripes again and send each shard a host has not acknowledged."""
        journal = work.journal
        needs: dict[int, list[tuple[int, int, int]]] = {}  # stripe -> [(host, position, shard)]
        for h, entry in enumerate(journal.hosts):
            for pos, (s, i) in enumerate(entry.shards):
                if pos not in work.acked[h]:
                    needs.setdefault(s, []).append((h, pos, i))
        count = sum(len(v) for v in needs.values())
        progress.phase(work.file, "upload", count * journal.shard_size)
        if not count:
            return
        started = time.perf_counter()
        queues: dict[int, trio.MemorySendChannel[Shard]] = {}
        # per_host chunks in flight to each host, in requests of up to `batch` chunks.
        batch = max(1, min(MAX_PUT_BATCH, PUT_BATCH_BYTES // max(1, journal.shard_size)))
        senders = max(1, -(-options.per_host // batch))
        try:
            async with trio.open_nursery() as flushing:
                flushing.start_soon(self._flush, work)
                async with trio.open_nursery() as nursery:
                    for h in sorted({h for v in needs.values() for h, _, _ in v}):
                        send, receive = trio.open_memory_channel[Shard](options.per_host * 2)
                        queues[h] = send
                        async with receive:
                            for _ in range(senders):
                                nursery.start_soon(
                                    self._sender,
                                    work,
                                    h,
                                    receive.clone(),
                                    options,
                                    progress,
                                    batch,
                                )
                    nursery.start_soon(self._produce, work, needs, queues)
                flushing.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            raise single(group) from None
        finally:
            with trio.CancelScope(shield=True):
                await self.saver.save_acks(work)
        missing = sorted({h for v in needs.values() for h, pos, _ in v if pos not in work.acked[h]})
        if missing:  # a host's senders stop early only by failing, which raised above;
            # this keeps shards no host acknowledged from ever counting as stored
            who = ", ".join(journal.hosts[h].who for h in missing)
            raise HostFailedError(
                f"hosts {who} did not acknowledge every shard sent them; {RESUME_HINT}"
            )
        work.upload_seconds = time.perf_counter() - started
        log.info("uploaded %d chunks of %s in %.2f s", count, work.file.name, work.upload_seconds)

    async def _produce(
        self,
        work: Work,
        needs: dict[int, list[tuple[int, int, int]]],
        queues: dict[int, trio.MemorySendChannel[Shard]],
    ) -> None:
        journal = work.journal
        size = journal.stripe_size
        code = ReedSolomon(journal.k, journal.n)
        per_batch = max(1, CODING_BATCH // size)
        stripes = sorted(needs)

        def encode_batch(batch: Sequence[int]) -> list[list[memoryview]]:
            return [code.encode_stripe(_stripe(work.data, s, size)) for s in batch]

        gone: set[int] = set()  # hosts whose senders have all stopped
        try:
            for b in range(0, len(stripes), per_batch):
                batch = stripes[b : b + per_batch]
                coded = await trio.to_thread.run_sync(encode_batch, batch, limiter=self.coding)
                for s, shards in zip(batch, coded, strict=True):
                    for h, pos, i in needs[s]:
                        if h in gone:
                            continue
                        try:
                            await queues[h].send((pos, s, i, shards[i]))
                        except trio.BrokenResourceError:
                            # The host's senders stop only by failing (their error says
                            # why) or by being cancelled: its shards wait for the rerun.
                            gone.add(h)
        finally:
            for queue in queues.values():
                queue.close()

    async def _sender(
        self,
        work: Work,
        h: int,
        receive: trio.MemoryReceiveChannel[Shard],
        options: PublishOptions,
        progress: Progress,
        batch: int,
    ) -> None:
        """Send the host's shards as they come, up to ``batch`` of them per
        ``chunk.put_many``: whatever is queued when a request can go."""
        journal = work.journal
        entry = journal.hosts[h]
        manifest = work.manifest
        async with receive:
            async for first in receive:
                shards = [first]
                while len(shards) < batch:
                    try:
                        shards.append(receive.receive_nowait())
                    except (trio.WouldBlock, trio.EndOfChannel):
                        break
                puts = [
                    ChunkPut(
                        manifest.stripes[s].chunk_ids[i],
                        Placement(work.cid, s, i, journal.k, journal.n),
                        cast(bytes, data),  # sent as it is: msgspec encodes any buffer as bin
                    )
                    for _, s, i, data in shards
                ]
                what = _describe(shards, work.file.name)
                await self._put(entry, puts, what, options)
                work.acked[h].update(pos for pos, _, _, _ in shards)
                work.dirty = True
                progress.advance(sum(len(data) for _, _, _, data in shards))

    async def _put(
        self, entry: HostEntry, puts: list[ChunkPut], what: str, options: PublishOptions
    ) -> None:
        """Store ``puts`` on the host: one ``chunk.put_many``, or one ``chunk.put``
        each if the host does not know ``chunk.put_many``."""
        if entry.public_key not in self.single_puts:
            try:
                reply = await self.request(
                    entry, ChunkPutMany(puts), what, options, unknown_type_ok=True
                )
            except RemoteError:  # UNKNOWN_TYPE: a host of an older version
                log.info(
                    "host %s does not know chunk.put_many: sending it one chunk per request",
                    entry.who,
                )
                self.single_puts.add(entry.public_key)
            else:
                if not isinstance(reply, StoredMany) or reply.chunk_ids != [
                    put.chunk_id for put in puts
                ]:
                    raise HostRefusedError(
                        f"host {entry.who} answered {what} with something else than its "
                        f"acknowledgement; {RESUME_HINT}"
                    )
                return
        # One request per chunk, up to per_host of them in flight to the host.
        limit = self._single_limits.setdefault(
            entry.public_key, trio.CapacityLimiter(options.per_host)
        )

        async def one(put: ChunkPut) -> None:
            async with limit:
                reply = await self.request(entry, put, what, options)
            if not isinstance(reply, Stored) or reply.chunk_id != put.chunk_id:
                raise HostRefusedError(
                    f"host {entry.who} answered {what} with something else than its "
                    f"acknowledgement; {RESUME_HINT}"
                )

        try:
            async with trio.open_nursery() as nursery:
                for put in puts:
                    nursery.start_soon(one, put)
        except BaseExceptionGroup as group:
            raise single(group) from None

    async def request(
        self,
        entry: HostEntry,
        body: msgspec.Struct,
        what: str,
        options: PublishOptions,
        *,
        unknown_type_ok: bool = False,
    ) -> msgspec.Struct:
        """``body``'s reply from a host of an opened contract, tried again while the
        host does not answer; :class:`HostRefusedError` or :class:`HostFailedError`
        (with ``unknown_type_ok``, the :class:`RemoteError` of a host that does not
        know the request's type)."""
        peer = PeerSpec(entry.public_key, entry.host, entry.port)
        delay = options.retry_delay
        last = ""
        for attempt in range(ATTEMPTS):
            if attempt:
                await trio.sleep(delay)
                delay *= 2
            try:
                return await self.rpc.request(peer, body, timeout=options.put_timeout)
            except RemoteError as exc:
                if unknown_type_ok and exc.code == ErrorCode.UNKNOWN_TYPE:
                    raise
                if exc.code not in _RETRYABLE:
                    raise HostRefusedError(
                        f"host {entry.who} refused {what}: {exc.message}; fix what it says, "
                        f"then {RESUME_HINT}"
                    ) from None
                last = exc.message
            except (NetError, WireError) as exc:
                last = str(exc)
            log.info("host %s: %s failed (%s), trying again", entry.who, what, last)
        raise HostFailedError(
            f"host {entry.who} at {entry.host}:{entry.port} stopped answering ({last}); "
            f"{what} was tried {ATTEMPTS} times. Its contract is open, so its shards "
            f"cannot move: once it is back, {RESUME_HINT}"
        )

    async def _flush(self, work: Work) -> None:
        while True:
            await trio.sleep(FLUSH_INTERVAL)
            if work.dirty:
                await self.saver.save_acks(work)

    async def store_manifest(self, work: Work, options: PublishOptions) -> None:
        """Give the manifest to every host of the work and store it in the DHT."""
        journal = work.journal
        put = ManifestPut(work.raw_manifest)

        async def give(entry: HostEntry) -> None:
            what = f"the manifest of {work.file.name}"
            reply = await self.request(entry, put, what, options)
            if not isinstance(reply, ManifestStored):
                raise HostRefusedError(
                    f"host {entry.who} answered {what} with something else than its "
                    f"acknowledgement; {RESUME_HINT}"
                )
            entry.manifest_stored = True

        try:
            async with trio.open_nursery() as nursery:
                for entry in journal.hosts:
                    if not entry.manifest_stored:
                        nursery.start_soon(give, entry)
                if not journal.dht_stored:
                    nursery.start_soon(self._manifest_to_dht, work)
        except BaseExceptionGroup as group:
            raise single(group) from None
        finally:
            with trio.CancelScope(shield=True):
                await self.saver.save(journal)

    async def _manifest_to_dht(self, work: Work) -> None:
        pointer, pieces = split_manifest(work.raw_manifest)
        stored: list[int] = []

        async def publish(key: bytes, value: bytes) -> None:
            stored.append(await self.dht.publish(key, value, ttl=MANIFEST_TTL))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(publish, manifest_key(work.cid), encode_pointer(pointer))
            for index, piece in enumerate(pieces):
                key = manifest_piece_key(pointer.manifest_hash, index)
                nursery.start_soon(publish, key, piece)
        work.journal.dht_stored = min(stored) > 0
        if not work.journal.dht_stored:
            log.warning(
                "no DHT node took a copy of the manifest of %s; its hosts keep and publish it",
                work.file.name,
            )


def _describe(shards: Sequence[Shard], name: str) -> str:
    """How a request's shards are named in errors and logs."""
    if len(shards) == 1:
        _, s, i, _ = shards[0]
        return f"chunk {i} of stripe {s} of {name}"
    stripes = sorted({s for _, s, _, _ in shards})
    return f"{len(shards)} chunks of stripes {stripes[0]}..{stripes[-1]} of {name}"


def _stripe(data: memoryview, index: int, size: int) -> memoryview | bytes:
    """Stripe ``index`` of the work: a view, or a padded copy for a short last stripe."""
    piece = data[index * size : (index + 1) * size]
    if piece.nbytes == size:
        return piece
    return bytes(piece) + bytes(size - piece.nbytes)


__all__ = ["ATTEMPTS", "CODING_BATCH", "FLUSH_INTERVAL", "Uploader"]
