"""The records a node owns, and when to republish them.

Only an owner can renew a record (a renewal is a fresh signature over a new
``created``), so a record lives in the DHT while its owner republishes it and
expires ``ttl`` seconds after the owner stops. :class:`OwnRecords` remembers
what this node published and hands back, in :meth:`OwnRecords.due_republish`,
the records whose time has come, re-signed with ``created = now`` (or one
second after the previous version, if that is later: replicas keep only a
strictly newer version).

A record is republished every ``ttl * fraction`` seconds (default half its
TTL): a replica that missed one republish (its
node was down, or the k closest changed) still gets the next one before the
record expires, and the new k closest nodes learn it within ``ttl / 2``.
The service stores each returned record on the k closest nodes of its key
(a lookup, then STORE to each), as it did when first publishing it.
"""

from __future__ import annotations

from dataclasses import dataclass

from storenode.dht.contact import Contact, encode_contact
from storenode.dht.records import PROVIDER_TTL, Record, sign_record
from storenode.identity import Identity

REPUBLISH_FRACTION = 0.5


@dataclass(slots=True)
class _Own:
    record: Record
    due: float


class OwnRecords:
    """What ``identity`` has published, one record per key."""

    def __init__(self, identity: Identity, *, fraction: float = REPUBLISH_FRACTION) -> None:
        if not 0 < fraction < 1:
            raise ValueError("the republish fraction is in (0, 1)")
        self.identity = identity
        self.fraction = fraction
        self._own: dict[bytes, _Own] = {}

    def publish(self, key: bytes, value: bytes, now: float, ttl: int) -> Record:
        """Sign ``value`` under ``key`` (created = ``now``) and keep it alive from
        now on; replaces what this node published under ``key`` before. Raises
        :class:`~storenode.dht.errors.RecordInvalidError` for bad sizes."""
        record = sign_record(self.identity, key, value, created=self._created(key, now), ttl=ttl)
        self._own[key] = _Own(record, self._due(record))
        return record

    def publish_provider(
        self, key: bytes, contact: Contact, now: float, ttl: int = PROVIDER_TTL
    ) -> Record:
        """Announce that this node, at ``contact``, holds ``key``."""
        if contact.key != self.identity.public_key:
            raise ValueError("a provider record announces its owner's own contact")
        return self.publish(key, encode_contact(contact), now, ttl)

    def withdraw(self, key: bytes) -> bool:
        """Stop republishing ``key`` (its replicas expire within its TTL)."""
        return self._own.pop(key, None) is not None

    def due_republish(self, now: float) -> list[Record]:
        """The records due at ``now``, re-signed with ``created = now``; each is
        due again ``ttl * fraction`` seconds later."""
        out: list[Record] = []
        for key, own in self._own.items():
            if own.due <= now:
                old = own.record
                created = self._created(key, now)
                record = sign_record(self.identity, key, old.value, created=created, ttl=old.ttl)
                self._own[key] = _Own(record, self._due(record))
                out.append(record)
        return out

    def records(self) -> list[Record]:
        """The current version of every record this node keeps alive."""
        return [own.record for own in self._own.values()]

    def next_due(self) -> float | None:
        """When :meth:`due_republish` next returns something (None if nothing is kept)."""
        return min((own.due for own in self._own.values()), default=None)

    def __len__(self) -> int:
        return len(self._own)

    def __contains__(self, key: object) -> bool:
        return key in self._own

    def _created(self, key: bytes, now: float) -> int:
        """``now`` in whole seconds, but always after the key's previous version:
        replicas keep the newer ``created`` and ignore an equal one."""
        previous = self._own.get(key)
        return int(now) if previous is None else max(int(now), previous.record.created + 1)

    def _due(self, record: Record) -> float:
        return record.created + record.ttl * self.fraction
