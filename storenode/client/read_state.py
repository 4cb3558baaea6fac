"""What the fetch scheduler (:mod:`storenode.client.scheduler`) keeps about one
read: the phases a stripe goes through, how a request can end, the requests
themselves, each host's measured rate and standing, each stripe's decoder and
requests, and the counts reported to the user. Plain records, no behaviour
beyond their own bookkeeping."""

from __future__ import annotations

import enum
import math
from collections import Counter
from dataclasses import dataclass, field

from storenode.coding.kernel import Buffer
from storenode.coding.rlnc import Packet, ProgressiveDecoder


class Phase(enum.Enum):
    FETCHING = "fetching"
    """Asking hosts for packets."""
    DECODING = "decoding"
    """Rank k reached: the shell decodes it and checks its hash."""
    VERIFYING = "verifying"
    """The hash did not match: fetching shards, each verified against its chunk id."""
    REBUILDING = "rebuilding"
    """k verified shards: the shell rebuilds the stripe from them."""
    DONE = "done"


class Miss(enum.Enum):
    """How a request ended without the answer it asked for."""

    ABSENT = "absent"
    """The host does not hold it (``NOT_FOUND``): no penalty."""
    REFUSED = "refused"
    """The host will not serve this work to us (``REFUSED``, e.g. no receipt)."""
    FAILED = "failed"
    """An error, a timeout, a lost connection: the host is down for a while."""


@dataclass(frozen=True, slots=True)
class Ask:
    """A request to start: ``chunk.packet`` of ``stripe`` (``shard`` None) or
    ``chunk.get`` of shard ``shard`` of it, within ``timeout`` seconds."""

    id: int
    host: bytes
    stripe: int
    shard: int | None
    timeout: float
    batch: int = -1
    """Requests of one plan with the same ``batch`` (0 or more) go to their host as one
    ``chunk.packets``; -1: on its own."""


@dataclass(slots=True)
class HostState:
    key: bytes
    rate: float | None = None
    """Bytes per second it delivers (EWMA), None until measured."""
    in_flight: int = 0
    down_until: float = -math.inf
    failures: int = 0
    """Failures in a row (reset by an answer)."""
    distrusted: bool = False
    refused: bool = False
    batches: bool = True
    """Whether it answers ``chunk.packets`` (False once it said it does not)."""

    def down(self, now: float) -> bool:
        return now < self.down_until

    @property
    def usable(self) -> bool:
        return not self.distrusted and not self.refused


@dataclass
class FetchStats:
    """What reads did, for the CLI's summary, the bench and the demo."""

    bytes_by_host: Counter[bytes] = field(default_factory=Counter)
    """Payload bytes each host delivered (key: its public key)."""
    requests: int = 0
    """Stripes asked of a host (a batch asks for several in one request)."""
    batches: int = 0
    """Requests that asked one host for several stripes (``chunk.packets``)."""
    packets: int = 0
    """Packets received (innovative or not)."""
    shards: int = 0
    """Verified shards received (after a hash mismatch)."""
    cancelled: int = 0
    """Requests cancelled because their stripe was complete or their host failed."""
    failovers: int = 0
    """Requests that failed and were planned again on other hosts."""
    mismatches: int = 0
    """Stripes whose decoded bytes missed the manifest's hash."""
    distrusted: set[bytes] = field(default_factory=set)
    stripes: int = 0
    """Stripes delivered."""

    @property
    def hosts_used(self) -> int:
        return sum(1 for b in self.bytes_by_host.values() if b)


@dataclass(slots=True)
class StripeState:
    """One stripe of the window (read-only to the shell)."""

    index: int
    decoder: ProgressiveDecoder
    phase: Phase = Phase.FETCHING
    tried: set[bytes] = field(default_factory=set)
    """Hosts asked for a packet of it (whatever came of it)."""
    absent: set[bytes] = field(default_factory=set)
    """Hosts that hold no shard of it."""
    packets: list[tuple[bytes, Packet]] = field(default_factory=list)
    """Every packet received, with its sender (kept until the stripe is checked)."""
    rows: dict[bytes, int] = field(default_factory=dict)
    """Host -> the shard whose generator row it sent (so it holds that shard)."""
    asks: dict[int, Ask] = field(default_factory=dict)
    """Requests open for it."""
    shards: dict[int, Buffer] = field(default_factory=dict)
    """Verified shards (after a hash mismatch)."""
    shard_tried: set[tuple[bytes, int]] = field(default_factory=set)


__all__ = ["Ask", "FetchStats", "HostState", "Miss", "Phase", "StripeState"]
