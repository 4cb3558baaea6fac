"""The state: an immutable map from keys to entries, and its root.

A :class:`State` is a committed **snapshot** plus an **overlay** of the writes
applied since. Nothing is ever changed in place: :func:`contracts.apply` puts
one transaction's writes in a new small dict and returns a new State that
shares everything else with the old one, so the old state stays valid and a
rejected transaction leaves no trace. Overlay layers are merged as a binary
counter (a layer absorbs the newer one when it is at most twice its size), so
a block of n transactions costs O(n log n) dict copies and a read looks at
O(log n) layers before the snapshot.

:meth:`State.commit` folds the overlay into a new snapshot. A snapshot keeps
its entries in 65,536 **buckets** (by the two bytes after the key's tag) with
each entry's leaf hash, and the Merkle tree over the buckets' roots; a commit
copies only the buckets it touches and rehashes their roots and the paths
above them.

**State root** (spec: docs/specs/ledger.md, "State and state root"): an entry's
leaf is ``leaf_hash(u8 len(key) || key || encode(entry))``; a bucket's root is
:func:`storenode.coding.merkle.root_of` over its leaves sorted by key (SHA-256 of
the empty string for an empty bucket, RFC 6962's empty tree); the state root
is the root of the perfect binary tree over the 65,536 bucket roots in bucket
order, i.e. ``root_of(bucket_roots)``. So the root is a Merkle tree over the
entries sorted by (bucket, key), cut at a fixed shape that keeps a commit's
cost proportional to what changed: per touched bucket, one node hash per
entry in it plus 16 up the tree.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping
from typing import Final

from contracts.encoding import encode
from contracts.entries import Entry, bucket_of, decode_entry
from storenode.coding.merkle import leaf_hash, node_hash, root_of

DEPTH: Final = 16
BUCKETS: Final = 1 << DEPTH
EMPTY_BUCKET: Final = hashlib.sha256(b"").digest()

# _EMPTY[d]: root of an empty subtree whose top is at depth d (d = DEPTH: a bucket).
_EMPTY: Final[list[bytes]] = [EMPTY_BUCKET] * (DEPTH + 1)
for _d in range(DEPTH - 1, -1, -1):
    _EMPTY[_d] = node_hash(_EMPTY[_d + 1], _EMPTY[_d + 1])
EMPTY_ROOT: Final = _EMPTY[0]

_ABSENT: Final = object()

Bucket = dict[bytes, tuple[Entry, bytes]]  # key -> (entry, leaf hash)


def entry_leaf(key: bytes, entry: Entry) -> bytes:
    """The leaf hash of one entry."""
    return leaf_hash(bytes((len(key),)) + key + encode(entry))


class _Snapshot:
    """Committed entries by bucket, with the tree over the bucket roots.

    ``tree`` is heap-indexed (node 1 is the root, node i has children 2i and
    2i + 1, bucket b is node 2**16 + b) and holds only the nodes that are not
    the root of an empty subtree. Neither dict, nor any bucket in ``buckets``,
    is changed once the snapshot exists.
    """

    __slots__ = ("buckets", "size", "tree")

    def __init__(self, buckets: dict[int, Bucket], tree: dict[int, bytes], size: int) -> None:
        self.buckets = buckets
        self.tree = tree
        self.size = size

    @property
    def root(self) -> bytes:
        return self.tree.get(1, EMPTY_ROOT)

    def get(self, key: bytes) -> Entry | None:
        bucket = self.buckets.get(key[1] << 8 | key[2])
        if bucket is None:
            return None
        item = bucket.get(key)
        return None if item is None else item[0]

    def updated(self, changes: Mapping[bytes, Entry | None]) -> _Snapshot:
        """A new snapshot with ``changes`` (None deletes) applied."""
        buckets = dict(self.buckets)
        dirty: dict[int, Bucket] = {}
        size = self.size
        for key, entry in changes.items():
            b = bucket_of(key)
            bucket = dirty.get(b)
            if bucket is None:
                bucket = dirty[b] = dict(buckets.get(b, ()))
            if entry is None:
                if bucket.pop(key, None) is not None:
                    size -= 1
            else:
                size += key not in bucket
                bucket[key] = (entry, entry_leaf(key, entry))
        tree = dict(self.tree)
        parents = set()
        for b, bucket in dirty.items():
            node = BUCKETS + b
            if bucket:
                buckets[b] = bucket
                tree[node] = root_of([bucket[k][1] for k in sorted(bucket)])
            else:
                buckets.pop(b, None)
                tree.pop(node, None)
            parents.add(node >> 1)
        for depth in range(DEPTH - 1, -1, -1):
            empty, child_empty = _EMPTY[depth], _EMPTY[depth + 1]
            above = set()
            for node in parents:
                h = node_hash(tree.get(2 * node, child_empty), tree.get(2 * node + 1, child_empty))
                if h == empty:
                    tree.pop(node, None)
                else:
                    tree[node] = h
                above.add(node >> 1)
            parents = above
        return _Snapshot(buckets, tree, size)

    def items(self) -> Iterator[tuple[bytes, Entry]]:
        for b in sorted(self.buckets):
            bucket = self.buckets[b]
            for key in sorted(bucket):
                yield key, bucket[key][0]


_GENESIS: Final = _Snapshot({}, {}, 0)


class State:
    """An immutable map from keys to entries. Build one with
    :func:`contracts.genesis_state` or :meth:`from_entries`; change it only
    through :func:`contracts.apply` and :func:`contracts.begin_block`."""

    __slots__ = ("_committed", "_layers", "_snap")

    def __init__(self, snap: _Snapshot, layers: tuple[dict[bytes, Entry | None], ...]) -> None:
        self._snap = snap
        self._layers = layers  # newest first; no layer is changed once here
        self._committed: State | None = None if layers else self

    @classmethod
    def empty(cls) -> State:
        """A state with no entries at all (not even params): a start for genesis."""
        return cls(_GENESIS, ())

    @classmethod
    def from_entries(cls, items: Iterable[tuple[bytes, bytes]]) -> State:
        """A committed state from stored ``(key, encode(entry))`` pairs (what a
        ledger saved from :meth:`changes`). ValueError for bytes that are no entry."""
        return cls(_GENESIS.updated({key: decode_entry(key, value) for key, value in items}), ())

    # -- reading ---------------------------------------------------------------------

    def get(self, key: bytes) -> Entry | None:
        for layer in self._layers:
            entry = layer.get(key, _ABSENT)
            if entry is not _ABSENT:
                return entry  # type: ignore[return-value]
        return self._snap.get(key)

    def scan(self, prefix: bytes) -> list[tuple[bytes, Entry]]:
        """Every entry whose key starts with ``prefix``, sorted by key. With a
        prefix of at least 3 bytes only one bucket is read."""
        found: dict[bytes, Entry | None] = {}
        snap = self._snap
        if len(prefix) >= 3:
            bucket = snap.buckets.get(bucket_of(prefix), {})
            found = {k: v[0] for k, v in bucket.items() if k.startswith(prefix)}
        else:
            found = {k: v for k, v in snap.items() if k.startswith(prefix)}
        for layer in reversed(self._layers):
            for key, entry in layer.items():
                if key.startswith(prefix):
                    found[key] = entry
        return [(k, e) for k, e in sorted(found.items()) if e is not None]

    def items(self) -> Iterator[tuple[bytes, Entry]]:
        """Every entry, in the order the state root takes them: by (bucket, key)."""
        return self.commit()._snap.items()

    def __len__(self) -> int:
        return self.commit()._snap.size

    @property
    def root(self) -> bytes:
        """The state root (commits the overlay first, once; see the module docstring)."""
        return self.commit()._snap.root

    # -- changing --------------------------------------------------------------------

    def with_writes(self, writes: dict[bytes, Entry | None]) -> State:
        """A new state with ``writes`` (None deletes) on top. ``writes`` is owned
        by the new state from now on: the caller must not change it."""
        if not writes:
            return self
        layers = (writes, *self._layers)
        while len(layers) > 1 and len(layers[1]) <= 2 * len(layers[0]):
            layers = ({**layers[1], **layers[0]}, *layers[2:])
        return State(self._snap, layers)

    def changes(self) -> list[tuple[bytes, bytes | None]]:
        """The overlay since the last commit, sorted by key: ``(key, encode(entry))``
        for each entry written, ``(key, None)`` for each key deleted. What a
        ledger writes in the block's batch."""
        merged = self._merged()
        return [(k, None if e is None else encode(e)) for k, e in sorted(merged.items())]

    def commit(self) -> State:
        """The same state with its overlay folded into a new snapshot (the
        result is remembered, so the root is computed once)."""
        if self._committed is None:
            self._committed = State(self._snap.updated(self._merged()), ())
        return self._committed

    def _merged(self) -> dict[bytes, Entry | None]:
        merged: dict[bytes, Entry | None] = {}
        for layer in reversed(self._layers):
            merged.update(layer)
        return merged

    def __repr__(self) -> str:
        pending = sum(len(layer) for layer in self._layers)
        return f"<State {self._snap.size} committed entries, {pending} pending writes>"
