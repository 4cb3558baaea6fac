"""The background scrub: the host re-reads its chunks, a slice at a time, and
reports the ones its disk damaged.

A damaged chunk is already refused to readers (the store checks every read)
and cannot be proven, so its windows would be missed; the scrub finds it even
if no challenge or reader touches it. It checks ``[host] scrub_rate`` bytes of
chunks per second against their ids (the full Merkle check, not the CRC), in
id order, reading past the page cache, and starts over once it has checked
every chunk: a pass takes the store's size over the rate, ~3 hours for 10 GiB
at the default 1 MiB/s, ~12 days for 1 TB. It reads at most half the time, so
a busy disk slows it. It deletes nothing: it logs each damaged chunk once,
with the works it belongs to, keeps the set of damaged chunks for
``/api/status``, and hands every damaged chunk it finds, in each pass, to
``on_damaged`` (the node's :class:`~storenode.host.repair.Repairer`). A chunk
repaired leaves the set at once (:meth:`Scrubber.healed`); one found damaged in
one pass and intact in the next (deleted and stored again) leaves it at the end
of that pass. A slice reads its chunks in a worker thread while repairs go on:
a chunk repaired while its slice was out may have been read before the repair,
so that slice's word on it is dropped (the next pass reads it again), not
handed to repair a second time.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Final

import trio

from storenode.store.errors import StoreClosedError, StoreError
from storenode.store.protocol import ChunkStore, ScrubPart

log = logging.getLogger("storenode.host.daemon")
"""The daemon's logger: its lines carry one name whichever part of it speaks."""

SLICE_SECONDS: Final = 1.0
"""About how long one slice's share of the rate lasts; a slice checks
``rate × SLICE_SECONDS`` bytes."""


RETRY_SECONDS: Final = 60.0
"""How long the scrub waits after it failed (a read error, a bad record) before it
starts a new pass."""


class Scrubber:
    """Checks ``store`` at ``rate`` bytes per second, forever (see the module docstring).

    ``works_of(chunk_id)`` names the works a chunk belongs to, for the log;
    ``on_damaged(chunk_id)`` is told of each damaged chunk each pass finds;
    ``in_thread`` runs a slice's check (a worker thread; tests run it inline,
    so that trio's mock clock sees only the scrub's own sleeps)."""

    def __init__(
        self,
        store: ChunkStore,
        rate: int,
        *,
        works_of: Callable[[bytes], str] = lambda chunk_id: "",
        on_damaged: Callable[[bytes], None] = lambda chunk_id: None,
        slice_seconds: float = SLICE_SECONDS,
        in_thread: Callable[
            [Callable[[bytes | None, int], ScrubPart], bytes | None, int], Awaitable[ScrubPart]
        ] = trio.to_thread.run_sync,
    ) -> None:
        self.store = store
        self.rate = rate
        self.works_of = works_of
        self.on_damaged = on_damaged
        self.slice_seconds = slice_seconds
        self.in_thread = in_thread
        self.damaged: set[bytes] = set()
        """Chunks found damaged in the last complete pass or the current one."""
        self.passes = 0
        """Complete passes over the store."""
        self._this_pass: set[bytes] = set()
        self._healed_in_slice: set[bytes] = set()  # while the slice being read is out

    async def run(self) -> None:
        """Scrub until cancelled; returns at once when the rate is 0."""
        if self.rate <= 0:
            return
        after: bytes | None = None
        budget = max(1, int(self.rate * self.slice_seconds))
        while True:
            started = trio.current_time()
            self._healed_in_slice = set()
            try:
                part = await self.in_thread(self.store.scrub_part, after, budget)
            except StoreClosedError:
                return  # the node is stopping
            except Exception as e:  # never take the node down: say so, start over later
                log.warning(
                    "the background scrub failed (%s); starting it over in a minute",
                    e,
                    exc_info=not isinstance(e, StoreError),
                )
                after = None
                await trio.sleep(RETRY_SECONDS)
                continue
            self._found(part)
            after = part.last
            if after is None:
                self._pass_done()
            # Keep to the rate: this slice's bytes at `rate` take this long. Never
            # read more than half the time (a slow slice means a busy disk: back
            # off as long as it took), and a pass that ended (or found nothing)
            # waits a slice at least, so a small store is not read over and over.
            took = trio.current_time() - started
            pause = max(part.bytes_checked / self.rate - took, took)
            if after is None:
                pause = max(pause, self.slice_seconds)
            await trio.sleep(pause)

    def _found(self, part: ScrubPart) -> None:
        for chunk_id in part.corrupt:
            if chunk_id in self._healed_in_slice:
                continue  # perhaps read before it was repaired: the next pass tells
            self._this_pass.add(chunk_id)
            self.on_damaged(chunk_id)
            if chunk_id in self.damaged:
                continue
            self.damaged.add(chunk_id)
            works = self.works_of(chunk_id)
            log.warning(
                "chunk %s… is damaged on disk (found by the background scrub)%s: it is not "
                "served, and its challenges will be missed until it is repaired; check the disk",
                chunk_id.hex()[:16],
                f", of work {works}" if works else "",
            )

    def healed(self, chunk_id: bytes) -> None:
        """``chunk_id`` is intact again (repaired): it leaves the damaged set now."""
        self.damaged.discard(chunk_id)
        self._this_pass.discard(chunk_id)
        self._healed_in_slice.add(chunk_id)

    def _pass_done(self) -> None:
        self.passes += 1
        healed = self.damaged - self._this_pass
        if healed:
            log.info("%d chunk(s) found damaged before are intact now", len(healed))
        self.damaged = self._this_pass
        self._this_pass = set()


__all__ = ["RETRY_SECONDS", "SLICE_SECONDS", "Scrubber"]
