"""The records a node holds for others: bounded, multi-valued, expiring.

:class:`RecordStore` keeps, per key, at most one record per owner:

* a record from an owner already held replaces the held one only if its
  ``created`` is newer; an older one is refused (``STALE``), the very same
  record again is a no-op (``DUPLICATE``, still accepted);
* a key holds at most ``max_per_key`` owners (64). When it is full, a new
  owner's record takes the place of the held record that expires first, if
  the new one expires later; otherwise it is refused (``KEY_FULL``). Records
  that are kept alive by their owners therefore stay, and abandoned ones give
  way first. (Owners are keys and keys are free, so an attacker can still fill
  a key with live records; preferring reputable owners is left to the layer
  that knows reputations.)
* the whole store holds at most ``max_records`` records and ``max_bytes``
  bytes (:attr:`Record.size`). A record that would exceed them is refused
  (``STORE_FULL``) after expired records are purged; nothing held is evicted
  for it.

Every record is validated (:class:`~storenode.dht.records.RecordValidator`)
before anything else; an invalid one raises
:class:`~storenode.dht.errors.RecordInvalidError` and changes nothing.
Expired records are never returned and are purged by :meth:`RecordStore.expire`
(the service calls it now and then; ``put`` purges too when the store is full).
"""

from __future__ import annotations

import enum

from storenode.dht.records import Record, RecordValidator

MAX_PER_KEY = 64
"""Owners a key holds, and records a FIND_VALUE reply carries."""


class PutOutcome(enum.StrEnum):
    """What :meth:`RecordStore.put` did with a valid record."""

    STORED = "stored"
    """A new (key, owner): stored (possibly in place of a record expiring sooner)."""
    REPLACED = "replaced"
    """It replaced an older record of the same owner under the key."""
    DUPLICATE = "duplicate"
    """The very same record was already held."""
    STALE = "stale"
    """A record of the owner with the same or a newer ``created`` is held."""
    KEY_FULL = "key-full"
    """The key holds ``max_per_key`` owners whose records all expire later."""
    STORE_FULL = "store-full"
    """The store's record or byte limit would be exceeded."""

    @property
    def accepted(self) -> bool:
        """Whether the record is held after the call."""
        return self in (PutOutcome.STORED, PutOutcome.REPLACED, PutOutcome.DUPLICATE)


class RecordStore:
    """Records held for others, keyed by (key, owner)."""

    def __init__(
        self,
        validator: RecordValidator,
        *,
        max_records: int = 100_000,
        max_bytes: int = 256 * 1024 * 1024,
        max_per_key: int = MAX_PER_KEY,
    ) -> None:
        if min(max_records, max_bytes, max_per_key) < 1:
            raise ValueError("store limits are at least 1")
        self.validator = validator
        self.max_records = max_records
        self.max_bytes = max_bytes
        self.max_per_key = max_per_key
        self._records: dict[bytes, dict[bytes, Record]] = {}
        self._count = 0
        self._bytes = 0

    def put(self, record: Record, now: float) -> PutOutcome:
        """Validate ``record`` (raising :class:`RecordInvalidError`) and store it
        by the rules of the module docstring."""
        self.validator.check(record, now)
        owners = self._records.get(record.key, {})
        held = owners.get(record.owner)
        if held is not None:
            if held == record:
                return PutOutcome.DUPLICATE
            if held.created >= record.created:
                return PutOutcome.STALE
            if not self._fits(record.size - held.size, 0, now):
                return PutOutcome.STORE_FULL
            self._remove(held)
            self._add(record)
            return PutOutcome.REPLACED
        victim: Record | None = None
        live = [r for r in owners.values() if r.is_live(now)]
        if len(live) >= self.max_per_key:
            victim = min(live, key=lambda r: r.expires)
            if victim.expires >= record.expires:
                return PutOutcome.KEY_FULL
        freed = victim.size if victim is not None else 0
        if not self._fits(record.size - freed, 0 if victim is not None else 1, now):
            return PutOutcome.STORE_FULL
        if victim is not None:
            self._remove(victim)
        self._add(record)
        return PutOutcome.STORED

    def get(self, key: bytes, now: float, limit: int = MAX_PER_KEY) -> list[Record]:
        """Up to ``limit`` live records under ``key``, latest expiry first."""
        owners = self._records.get(key)
        if not owners:
            return []
        live = [r for r in owners.values() if r.is_live(now)]
        live.sort(key=lambda r: (r.expires, r.created), reverse=True)
        return live[:limit]

    def expire(self, now: float) -> int:
        """Drop every record expired at ``now``; returns how many were dropped."""
        dead = [
            r for owners in self._records.values() for r in owners.values() if not r.is_live(now)
        ]
        for record in dead:
            self._remove(record)
        return len(dead)

    def keys(self) -> list[bytes]:
        return list(self._records)

    def __len__(self) -> int:
        return self._count

    @property
    def bytes_used(self) -> int:
        return self._bytes

    # -- internals -----------------------------------------------------------------

    def _fits(self, extra_bytes: int, extra_records: int, now: float) -> bool:
        def fits() -> bool:
            return (
                self._bytes + extra_bytes <= self.max_bytes
                and self._count + extra_records <= self.max_records
            )

        if fits():
            return True
        self.expire(now)
        return fits()

    def _add(self, record: Record) -> None:
        self._records.setdefault(record.key, {})[record.owner] = record
        self._count += 1
        self._bytes += record.size

    def _remove(self, record: Record) -> None:
        owners = self._records.get(record.key, {})
        if owners.get(record.owner) is not record:
            return  # already purged by expire()
        del owners[record.owner]
        if not owners:
            del self._records[record.key]
        self._count -= 1
        self._bytes -= record.size
