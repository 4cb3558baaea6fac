"""The fetch scheduler: which host to ask for what, and when (sans-IO).

A read of stripes ``first .. last`` of a work is driven by one
:class:`FetchScheduler`. The shell (:mod:`storenode.client.fetch`) asks it
for requests to start (:meth:`~FetchScheduler.plan`), tells it how each one
ended (:meth:`~FetchScheduler.on_packet`, :meth:`~FetchScheduler.on_shard`,
:meth:`~FetchScheduler.on_miss`), decodes the stripes it hands out
(:meth:`~FetchScheduler.take_ready`) and reports the outcome
(:meth:`~FetchScheduler.decoded`, :meth:`~FetchScheduler.rebuilt`). The core
never reads a clock (``now`` is an argument), never touches a socket, and
keeps each stripe's progressive decoder, so a test drives it with a fake
clock and real packets of a tiny code.

What it decides (docs/specs/streaming.md):

* **Window and deadlines.** Only the stripes of the window from the read
  position (:meth:`~FetchScheduler.advance`) are fetched; requests are planned
  stripe by stripe from the earliest, so the stripe needed first gets the
  best hosts first. The window opens at ``start_window`` stripes and grows by
  one per stripe taken, up to ``window``: the first stripes do not share the
  reader's bandwidth with many others, so the first byte comes early.
* **k + extra distinct hosts per stripe.** Each stripe keeps k packet
  requests (``chunk.packet``) open or answered usefully, each to a different
  host, and the ``urgent`` stripes nearest the read position ``k + extra``, so
  one slow host does not hold up the bytes needed next (the wire cannot stop
  a reply once asked, so an extra request costs its bytes: it is spent where
  the deadline is near). When a stripe's decoder reaches rank k, its other
  requests are returned for cancelling.
* **Batches ahead of the reader.** Once the window is open to its full size,
  the stripes beyond the ``urgent`` ones are planned in groups of ``batch``
  consecutive ones (the first group's stripes from the first stripe read), once
  the whole group is in the window, and each host
  chosen for a group's first stripe is asked for the group's other stripes too:
  the requests of one plan to one host for one group share a ``batch`` number
  and go out as one ``chunk.packets``. A request costs both ends about as much as
  its bytes, so a bulk read sends a quarter of the requests; the stripes the
  reader waits for next are still asked for on their own.
* **Spread by rate.** Each host's rate is an EWMA of the bytes per second it
  delivers; a request goes to the host that would finish it soonest,
  ``(in flight + 1) / rate``, so requests in flight are proportional to
  rates; never more than ``per_host`` per host. A request's timeout is a
  multiple of the time its host should take (at least ``timeout_floor``).
* **Fail-over.** A host that fails (error, timeout, lost connection) is down
  for a while (doubling with each failure in a row): its other requests are
  returned for cancelling and every request is re-planned on other hosts at
  once. A down host is asked again only when a stripe could not reach k
  without it. ``NOT_FOUND`` means the host holds no shard of that stripe: it
  is not asked for that stripe again, with no penalty.
* **Verification.** A stripe whose decoded bytes miss the manifest's hash is
  re-fetched as shards (``chunk.get``), each checked by the shell against its
  chunk id; the hosts known to hold a shard (they sent its generator row) are
  asked first. From k verified shards the shell rebuilds the stripe and names
  the hosts whose packets disagree with it; they are distrusted: never asked
  again, their open requests cancelled and their packets dropped from the
  stripes still being fetched.
* **Blocked.** :meth:`~FetchScheduler.blocked` names the first stripe that can
  no longer complete with the hosts known (the shell then looks for more
  providers, or gives up).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from typing import Final

from storenode.client.read_state import Ask, FetchStats, HostState, Miss, Phase, StripeState
from storenode.coding.kernel import Buffer, view
from storenode.coding.rlnc import Packet, ProgressiveDecoder, shard_rows
from storenode.coding.rs import ReedSolomon

DEFAULT_WINDOW: Final = 16
START_WINDOW: Final = 2
DEFAULT_EXTRA: Final = 1
URGENT: Final = 2
"""Stripes from the read position that get ``extra`` requests beyond k."""
DEFAULT_PER_HOST: Final = 8
DEFAULT_BATCH: Final = 8
"""Stripes per batched request (1: none)."""
BATCH_BYTES: Final = 4 << 20
"""The most payload one batched request asks for (a host's reply carries up to 6 MiB)."""
MAX_BATCH: Final = 16
TIMEOUT_FLOOR: Final = 2.0
"""Seconds a request is given at least, whatever its host's rate."""
TIMEOUT_SLACK: Final = 4.0
"""A request's timeout is this many times the time its host's rate predicts."""
DOWN_TIME: Final = 5.0
"""Seconds a host that failed is avoided; doubled per failure in a row."""
MAX_DOWN_TIME: Final = 120.0
RATE_PRIOR: Final = 50e6
"""Bytes per second assumed of a host before any host was measured."""
RATE_ALPHA: Final = 0.3
"""Weight of the newest sample in a host's rate."""
_WAIT: Final = -2


class FetchScheduler:
    """Plans the requests of one read (see the module docstring)."""

    def __init__(
        self,
        hosts: Iterable[bytes],
        *,
        k: int,
        n: int,
        shard_size: int,
        first: int,
        last: int,
        window: int = DEFAULT_WINDOW,
        start_window: int = START_WINDOW,
        extra: int = DEFAULT_EXTRA,
        urgent: int = URGENT,
        per_host: int = DEFAULT_PER_HOST,
        batch: int = DEFAULT_BATCH,
        timeout_floor: float = TIMEOUT_FLOOR,
        stats: FetchStats | None = None,
    ) -> None:
        if not 1 <= k <= n:
            raise ValueError(f"k={k} n={n}: need 1 <= k <= n")
        if first > last or first < 0:
            raise ValueError(f"stripes {first}..{last}: need 0 <= first <= last")
        if min(window, start_window, per_host) < 1 or min(extra, urgent) < 0:
            raise ValueError("windows and per_host must be at least 1, extra and urgent 0 or more")
        if not 1 <= batch <= MAX_BATCH:
            raise ValueError(f"batch={batch}: need 1 <= batch <= {MAX_BATCH}")
        self.k = k
        self.n = n
        self.shard_size = shard_size
        self.first = first
        self.last = last
        self.window = window
        self.start_window = min(start_window, window)
        self.extra = extra
        self.urgent = urgent
        self.per_host = per_host
        self.batch = max(1, min(batch, BATCH_BYTES // max(shard_size, 1)))
        """Stripes per batched request: ``batch``, fewer if their packets would be
        more than :data:`BATCH_BYTES`."""
        self.timeout_floor = timeout_floor
        self.stats = stats if stats is not None else FetchStats()
        self.head = first
        """The next stripe the reader takes."""
        self.hosts: dict[bytes, HostState] = {}
        self._stripes: dict[int, StripeState] = {}
        self._asks: dict[int, tuple[Ask, float]] = {}
        self._ready: list[int] = []
        self._next_id = 0
        self._next_batch = 0
        self._prior_rate: float | None = None  # the median rate, until a rate changes
        self._recheck = True  # whether a stripe may have become blocked since the last check
        self._code = ReedSolomon(k, n)
        self._rows = shard_rows(k, n)
        self.add_hosts(hosts)

    # -- hosts ---------------------------------------------------------------------------

    def add_hosts(self, keys: Iterable[bytes]) -> int:
        """Hosts to ask from now on (known ones are ignored); how many were new."""
        added = 0
        for key in keys:
            if key not in self.hosts:
                self.hosts[key] = HostState(key)
                added += 1
        return added

    def _prior(self) -> float:
        if self._prior_rate is None:
            rates = [h.rate for h in self.hosts.values() if h.rate is not None]
            self._prior_rate = statistics.median(rates) if rates else RATE_PRIOR
        return self._prior_rate

    def _cost(self, host: HostState, prior: float) -> float:
        """Seconds until ``host`` would have delivered one more shard."""
        rate = host.rate if host.rate is not None else prior
        return (host.in_flight + 1) * self.shard_size / rate

    # -- the window ----------------------------------------------------------------------

    @property
    def done(self) -> bool:
        return self.head > self.last

    def window_stripes(self) -> range:
        size = min(self.window, self.start_window + self.head - self.first)
        return range(self.head, min(self.head + size, self.last + 1))

    def stripe(self, index: int) -> StripeState:
        st = self._stripes.get(index)
        if st is None:
            if index not in self.window_stripes():
                raise KeyError(f"stripe {index} is outside the window")
            st = self._stripes[index] = StripeState(
                index, ProgressiveDecoder(self.k, block_size=self.shard_size, code=self._code)
            )
        return st

    def advance(self) -> None:
        """The reader took the head stripe (it must be done): slide the window."""
        st = self._stripes.get(self.head)
        if st is None or st.phase is not Phase.DONE:
            raise RuntimeError(f"stripe {self.head} is not done")
        del self._stripes[self.head]
        self.head += 1
        self.stats.stripes += 1
        self._recheck = True  # a stripe entered the window

    # -- planning ------------------------------------------------------------------------

    def plan(self, now: float) -> list[Ask]:
        """The requests to start now, the earliest stripe's first."""
        asks: list[Ask] = []
        prior = self._prior()
        stripes = self.window_stripes()
        chosen: dict[int, list[HostState]] = {}  # group -> its hosts in this plan
        batches: dict[tuple[int, bytes], int] = {}  # (group, host) -> batch number
        for s in stripes:
            st = self.stripe(s)
            if st.phase is Phase.FETCHING:
                group = self._group(s, stripes.stop)
                if group == _WAIT:
                    continue  # asked for with the rest of its group, once all is in the window
                want = self.k + (self.extra if s < self.head + self.urgent else 0)
                while st.decoder.rank + len(st.asks) < want:
                    needed = st.decoder.rank + len(st.asks) < self.k
                    host = None if group < 0 else self._sticky(st, chosen.get(group, ()), now)
                    if host is None:
                        host = self._pick_packet_host(st, now, prior, allow_down=needed)
                        if host is None:
                            break
                        if group >= 0 and host.batches:
                            chosen.setdefault(group, []).append(host)
                    batch = -1
                    if group >= 0 and host.batches:
                        batch = batches.setdefault((group, host.key), self._next_batch)
                        if batch == self._next_batch:
                            self._next_batch += 1
                    asks.append(self._open(st, host, None, now, prior, batch=batch))
            elif st.phase is Phase.VERIFYING:
                while len(st.shards) + len(st.asks) < self.k:
                    pick = self._pick_shard_host(st, now, prior)
                    if pick is None:
                        break
                    asks.append(self._open(st, pick[0], pick[1], now, prior))
        return asks

    def _group(self, s: int, end: int) -> int:
        """Stripe ``s``'s batch group; -1 if it is asked for on its own (batches off;
        among the urgent stripes, or the head: the read never waits on a group; or
        while the window is still opening, when a group would wait for most of it);
        :data:`_WAIT` if its group is not all in the window that ends before ``end`` yet."""
        if (
            self.batch == 1
            or s < self.head + max(self.urgent, 1)
            or self.start_window + self.head - self.first < self.window
        ):
            return -1
        group = (s - self.first) // self.batch
        if min(self.first + (group + 1) * self.batch, self.last + 1) > end:
            return _WAIT
        return group

    def _sticky(self, st: StripeState, hosts: Iterable[HostState], now: float) -> HostState | None:
        """The first of ``hosts`` (chosen for the stripe's group) that can take it."""
        for h in hosts:
            if (
                h.usable
                and h.key not in st.tried
                and h.in_flight < self.per_host
                and not h.down(now)
            ):
                return h
        return None

    def _pick_packet_host(
        self, st: StripeState, now: float, prior: float, *, allow_down: bool
    ) -> HostState | None:
        best: tuple[tuple[bool, float, bytes], HostState] | None = None
        for h in self.hosts.values():
            if not h.usable or h.key in st.tried or h.in_flight >= self.per_host:
                continue
            down = h.down(now)
            if down and not allow_down:
                continue
            key = (down, self._cost(h, prior), h.key)
            if best is None or key < best[0]:
                best = (key, h)
        if best is None:
            return None
        if best[1].down(now) and self._up_candidates(st, now):
            return None  # wait for an up host to have room rather than ask a down one
        return best[1]

    def _up_candidates(self, st: StripeState, now: float) -> bool:
        return any(
            h.usable and h.key not in st.tried and not h.down(now) for h in self.hosts.values()
        )

    def _pick_shard_host(
        self, st: StripeState, now: float, prior: float
    ) -> tuple[HostState, int] | None:
        asked = {a.shard for a in st.asks.values()}
        best: tuple[tuple[int, bool, int, float, bytes], HostState, int] | None = None
        for i in range(self.n):
            if i in st.shards or i in asked:
                continue
            for h in self.hosts.values():
                if not h.usable or h.key in st.absent or (h.key, i) in st.shard_tried:
                    continue
                if h.in_flight >= self.per_host:
                    continue
                row = st.rows.get(h.key)
                # a host that sent shard i's row holds it; one that sent a packet
                # holds something of the stripe; any other may or may not
                priority = 0 if row == i else 2 if row is not None else 1
                if priority == 1 and h.key not in st.tried:
                    priority = 3
                key = (priority, h.down(now), i, self._cost(h, prior), h.key)
                if best is None or key < best[0]:
                    best = (key, h, i)
        return None if best is None else (best[1], best[2])

    def _open(
        self,
        st: StripeState,
        host: HostState,
        shard: int | None,
        now: float,
        prior: float,
        *,
        batch: int = -1,
    ) -> Ask:
        rate = host.rate if host.rate is not None else prior
        expected = (host.in_flight + 1) * self.shard_size / rate
        ask = Ask(
            self._next_id,
            host.key,
            st.index,
            shard,
            max(self.timeout_floor, TIMEOUT_SLACK * expected),
            batch,
        )
        self._next_id += 1
        self._asks[ask.id] = (ask, now)
        st.asks[ask.id] = ask
        host.in_flight += 1
        if shard is None:
            st.tried.add(host.key)
        else:
            st.shard_tried.add((host.key, shard))
        self.stats.requests += 1
        return ask

    # -- outcomes ------------------------------------------------------------------------

    def _close(self, ask_id: int) -> tuple[Ask, float, StripeState | None] | None:
        """Forget an open request; None if it is not open (cancelled, or late)."""
        entry = self._asks.pop(ask_id, None)
        if entry is None:
            return None
        ask, sent = entry
        self.hosts[ask.host].in_flight -= 1
        st = self._stripes.get(ask.stripe)
        if st is not None:
            st.asks.pop(ask_id, None)
        return ask, sent, st

    def _measured(
        self, host: HostState, nbytes: int, sent: float, now: float, share: float
    ) -> None:
        # The host served this reply while its other open requests shared its
        # bandwidth: ``share`` of them count, so the rate is the host's, not one request's.
        sample = nbytes * share / max(now - sent, 1e-4)
        host.rate = sample if host.rate is None else host.rate + RATE_ALPHA * (sample - host.rate)
        self._prior_rate = None
        host.failures = 0
        host.down_until = -math.inf
        self.stats.bytes_by_host[host.key] += nbytes

    def on_packet(self, ask_id: int, packet: Packet, now: float) -> list[int]:
        """A ``chunk.packet`` answer; the requests to cancel (the stripe is complete,
        or the host sent a malformed packet and is distrusted)."""
        return self.on_packets([(ask_id, packet)], now)

    def on_packets(self, answers: list[tuple[int, Packet | None]], now: float) -> list[int]:
        """A ``chunk.packets`` answer: each request of the batch with its stripe's
        packet, or None where the host left the stripe out (it does not hold it).
        The requests to cancel (stripes complete, or a malformed packet: the host is
        distrusted)."""
        open_ = [(self._asks[a][0], p) for a, p in answers if a in self._asks]
        if not open_:
            return []  # all cancelled meanwhile (or late)
        sent = self._asks[open_[0][0].id][1]
        host = self.hosts[open_[0][0].host]
        if any(ask.host != host.key for ask, _ in open_):
            raise ValueError("the requests of one batch go to one host")
        packets = [p for _, p in answers if p is not None]
        if any(p.k != self.k or view(p.payload).nbytes != self.shard_size for p in packets):
            return self.distrust(host.key)
        if packets:
            # the batch had its requests and the host's others in flight
            share = (host.in_flight - len(open_) + len(answers)) / len(answers)
            self._measured(host, len(packets) * self.shard_size, sent, now, share)
        self.stats.packets += len(packets)
        cancel: list[int] = []
        for ask, packet in open_:
            closed = self._close(ask.id)
            assert closed is not None
            st = closed[2]
            if packet is None:
                self._recheck = True
                if st is not None:
                    st.absent.add(host.key)
                continue
            if st is None or st.phase is not Phase.FETCHING or not host.usable:
                continue
            cancel += self._add_packet(st, host, packet)
        return cancel

    def _add_packet(self, st: StripeState, host: HostState, packet: Packet) -> list[int]:
        st.packets.append((host.key, packet))
        row = self._rows.get(packet.coefficients)
        if row is not None:
            st.rows[host.key] = row
        if not st.decoder.add(packet):
            self._recheck = True  # it added nothing: one host fewer can help
        if not st.decoder.complete:
            return []
        st.phase = Phase.DECODING
        self._ready.append(st.index)
        return self._cancel_stripe(st)

    def no_batches(self, key: bytes, ask_ids: Iterable[int]) -> None:
        """Host ``key`` does not answer ``chunk.packets`` (a node of an older version):
        forget the batch's requests, with no penalty, and ask it one stripe at a time."""
        host = self.hosts[key]
        host.batches = False
        for ask_id in ask_ids:
            closed = self._close(ask_id)
            if closed is not None and closed[2] is not None:
                closed[2].tried.discard(key)

    def on_shard(self, ask_id: int, shard: Buffer, now: float, *, valid: bool) -> list[int]:
        """A ``chunk.get`` answer, ``valid`` if it hashes to its chunk id; the
        requests to cancel (the stripe has k shards, or the host lied)."""
        closed = self._close(ask_id)
        if closed is None:
            return []
        ask, sent, st = closed
        assert ask.shard is not None
        host = self.hosts[ask.host]
        if not valid:
            return self.distrust(host.key)
        self._measured(host, view(shard).nbytes, sent, now, host.in_flight + 1)
        self.stats.shards += 1
        if st is None or st.phase is not Phase.VERIFYING:
            return []
        st.shards[ask.shard] = shard
        st.rows[host.key] = ask.shard
        if len(st.shards) < self.k:
            return []
        st.phase = Phase.REBUILDING
        self._ready.append(st.index)
        return self._cancel_stripe(st)

    def on_miss(self, ask_id: int, miss: Miss, now: float) -> list[int]:
        """A request that brought nothing; the requests to cancel (a failed host's)."""
        closed = self._close(ask_id)
        if closed is None:
            return []
        ask, _, st = closed
        host = self.hosts[ask.host]
        self._recheck = True
        if miss is Miss.ABSENT:
            if st is not None and ask.shard is None:
                st.absent.add(host.key)
            return []
        if miss is Miss.REFUSED:
            host.refused = True
            return self._cancel_host(host)
        self.stats.failovers += 1
        host.failures += 1
        host.down_until = now + min(MAX_DOWN_TIME, DOWN_TIME * 2 ** (host.failures - 1))
        return self._cancel_host(host)

    def _cancel_stripe(self, st: StripeState) -> list[int]:
        ids = list(st.asks)
        for ask_id in ids:
            self._close(ask_id)
        self.stats.cancelled += len(ids)
        return ids

    def _cancel_host(self, host: HostState) -> list[int]:
        ids = [ask.id for ask, _ in self._asks.values() if ask.host == host.key]
        for ask_id in ids:
            self._close(ask_id)
        self.stats.cancelled += len(ids)
        self.stats.failovers += len(ids)
        return ids

    # -- decoding ------------------------------------------------------------------------

    def take_ready(self) -> list[StripeState]:
        """Stripes to decode (``DECODING``: from their decoder) or rebuild
        (``REBUILDING``: from their verified shards), each handed out once."""
        ready = [self._stripes[s] for s in self._ready if s in self._stripes]
        self._ready.clear()
        return ready

    def decoded(self, index: int, *, ok: bool) -> None:
        """The shell decoded stripe ``index``; ``ok`` if its hash matched. If not,
        the stripe is fetched again as verified shards."""
        st = self._stripes[index]
        if st.phase is not Phase.DECODING:
            raise RuntimeError(f"stripe {index} is {st.phase.value}, not decoding")
        if ok:
            st.phase = Phase.DONE
            st.packets.clear()
            return
        self.stats.mismatches += 1
        st.phase = Phase.VERIFYING
        self._recheck = True

    def rebuilt(self, index: int, liars: Iterable[bytes]) -> list[int]:
        """The shell rebuilt stripe ``index`` from verified shards and found that
        ``liars`` sent packets inconsistent with it: distrust them. The requests to
        cancel (theirs)."""
        st = self._stripes[index]
        if st.phase is not Phase.REBUILDING:
            raise RuntimeError(f"stripe {index} is {st.phase.value}, not rebuilding")
        st.phase = Phase.DONE
        st.packets.clear()
        st.shards.clear()
        cancel: list[int] = []
        for key in liars:
            cancel += self.distrust(key)
        return cancel

    def distrust(self, key: bytes) -> list[int]:
        """Never ask ``key`` again; drop its packets from the stripes being fetched.
        The requests to cancel (its open ones)."""
        host = self.hosts[key]
        if host.distrusted:
            return []
        host.distrusted = True
        self.stats.distrusted.add(key)
        self._recheck = True
        for st in self._stripes.values():
            if st.phase is Phase.FETCHING and any(sender == key for sender, _ in st.packets):
                kept = [(s, p) for s, p in st.packets if s != key]
                st.decoder = ProgressiveDecoder(self.k, block_size=self.shard_size, code=self._code)
                for _, p in kept:
                    st.decoder.add(p)
                st.packets = kept
                st.rows.pop(key, None)
        return self._cancel_host(host)

    # -- giving up -----------------------------------------------------------------------

    def blocked(self) -> StripeState | None:
        """The first stripe of the window that cannot complete with the hosts known
        (fetching: fewer than k packets possible; verifying: fewer than k shards).

        Only a miss, a packet that added nothing, a distrusted host, a mismatch or a
        stripe entering the window can block one: between those, this costs nothing."""
        if not self._recheck:
            return None
        for s in self.window_stripes():
            st = self.stripe(s)
            if st.phase is Phase.FETCHING:
                left = sum(1 for h in self.hosts.values() if h.usable and h.key not in st.tried)
                if st.decoder.rank + len(st.asks) + left < self.k:
                    return st
            elif st.phase is Phase.VERIFYING:
                asked = {a.shard for a in st.asks.values()}
                askable = sum(
                    1
                    for i in range(self.n)
                    if i not in st.shards
                    and i not in asked
                    and any(
                        h.usable and h.key not in st.absent and (h.key, i) not in st.shard_tried
                        for h in self.hosts.values()
                    )
                )
                if len(st.shards) + len(st.asks) + askable < self.k:
                    return st
        self._recheck = False
        return None

    def why_blocked(self, st: StripeState) -> str:
        """Words for a user about why ``st`` cannot complete."""
        hosts = self.hosts.values()
        refused = sum(1 for h in hosts if h.refused)
        distrusted = sum(1 for h in hosts if h.distrusted)
        failed = sum(1 for h in hosts if h.failures and h.usable)
        parts = [f"{len(st.absent)} do not hold it"]
        if failed:
            parts.append(f"{failed} failed to answer")
        if refused:
            parts.append(f"{refused} refused (a priced work needs a receipt)")
        if distrusted:
            parts.append(f"{distrusted} sent corrupt data")
        return f"of {len(self.hosts)} hosts known, " + ", ".join(parts)
