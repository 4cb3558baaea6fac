"""Finding a work's manifest: in the DHT, else at the hosts that hold the work.

The DHT has, under ``manifest_key(cid)``, pointers (any owner may write one:
what they point to is checked) to manifests stored in pieces; the pieces of
a pointer are looked up in parallel and joined against its hash, and the
manifest must decode, verify (its signature, its fields, its CID) and — when
the reader trusts a ledger — be the one the work's registry entry names
(``registered``). Pointers most owners agree on are tried first. At the
same time a few of the work's providers are asked for it (``manifest.get``:
the hosts keep it whole, one request where the DHT needs a lookup per
piece); the first valid manifest ends both searches. Every refusal is noted,
so a reader that finds nothing usable is told why
(:class:`~storenode.client.content.ContentNotFoundError`).
Spec: docs/specs/streaming.md §2.
"""

from __future__ import annotations

import itertools
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Final

import trio

from storenode.client.content import ContentNotFoundError
from storenode.dht import Contact
from storenode.host.messages import ManifestData, ManifestGet
from storenode.net.dht import DhtService
from storenode.net.errors import NetError
from storenode.net.rpc import RpcNode
from storenode.publish.manifest import (
    Manifest,
    ManifestError,
    decode_manifest,
    manifest_hash,
    verify_manifest,
)
from storenode.publish.records import (
    ManifestPointer,
    RecordFormatError,
    decode_pointer,
    join_manifest,
    manifest_key,
    manifest_piece_key,
)
from storenode.wire.errors import RemoteError, WireError
from storenode.wire.messages import ErrorCode

log = logging.getLogger(__name__)

MANIFEST_ASKS: Final = 4
"""Providers asked at once for a manifest the DHT does not have."""
MANIFEST_TIMEOUT: Final = 5.0
PIECE_LOOKUPS: Final = 16
"""Manifest pieces looked up at once."""
PIECE_COMBINATIONS: Final = 8
"""Combinations of differing piece values tried before a pointer is given up."""


async def find_manifest(
    dht: DhtService,
    rpc: RpcNode,
    cid: bytes,
    *,
    registered: bytes | None,
    providers: Callable[[bytes], Awaitable[Mapping[bytes, Contact]]],
) -> Manifest:
    """The work's manifest from the DHT, else from a host that keeps it; with
    ``registered`` (the registry's manifest hash) only that one."""
    problems: list[str] = []
    found: list[Manifest] = []

    async def from_dht(done: trio.CancelScope) -> None:
        m = await _from_dht(dht, cid, registered, problems)
        if m is not None and not found:
            found.append(m)
            done.cancel()

    async def from_hosts(done: trio.CancelScope) -> None:
        # The hosts keep the manifest whole: one request, where the DHT needs a
        # lookup per piece. The providers are needed for the read anyway.
        contacts = list((await providers(cid)).values())[:MANIFEST_ASKS]
        m = await _from_hosts(rpc, contacts, cid, registered, problems)
        if m is not None and not found:
            found.append(m)
            done.cancel()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(from_dht, nursery.cancel_scope)
        nursery.start_soon(from_hosts, nursery.cancel_scope)
    if found:
        return found[0]
    if not problems:
        raise ContentNotFoundError(
            f"no manifest for work {cid.hex()} in the DHT or at its hosts: check the CID, "
            "or that its publisher's hosts are running"
        )
    raise ContentNotFoundError(f"no usable manifest for work {cid.hex()} ({'; '.join(problems)})")


def _checked(
    raw: bytes, cid: bytes, registered: bytes | None, problems: list[str]
) -> Manifest | None:
    """The manifest in ``raw`` if it is valid for ``cid`` (and the registered one)."""
    try:
        m = decode_manifest(raw)
        verify_manifest(m, cid=cid)
    except ManifestError as e:
        problems.append(str(e))
        return None
    if registered is not None and manifest_hash(m) != registered:
        problems.append(
            f"a manifest {manifest_hash(m).hex()} other than the one the work's registry "
            f"entry names ({registered.hex()}): refused"
        )
        return None
    return m


async def _from_dht(
    dht: DhtService, cid: bytes, registered: bytes | None, problems: list[str]
) -> Manifest | None:
    """The manifest the DHT points to (the pointer most owners agree on first)."""
    pointers: dict[bytes, ManifestPointer] = {}
    owners: Counter[bytes] = Counter()
    for record in await dht.find_value(manifest_key(cid)):
        try:
            pointer = decode_pointer(record.value)
        except RecordFormatError as e:
            log.info("ignoring a bad manifest pointer for %s: %s", cid.hex()[:16], e)
            continue
        pointers[pointer.manifest_hash] = pointer
        owners[pointer.manifest_hash] += 1
    for hash_, _ in owners.most_common():
        if registered is not None and hash_ != registered:
            problems.append(
                f"the DHT points to manifest {hash_.hex()}, not the one the work's registry "
                f"entry names ({registered.hex()}): refused"
            )
            continue
        raw = await _manifest_bytes(dht, pointers[hash_])
        if raw is None:
            problems.append(f"the pieces of manifest {hash_.hex()} are missing from the DHT")
            continue
        m = _checked(raw, cid, registered, problems)
        if m is not None:
            return m
    return None


async def _from_hosts(
    rpc: RpcNode,
    contacts: Sequence[Contact],
    cid: bytes,
    registered: bytes | None,
    problems: list[str],
) -> Manifest | None:
    """The manifest one of ``contacts`` keeps (``manifest.get``), asking them at once."""
    found: list[Manifest] = []

    async def ask(contact: Contact, cancel: trio.CancelScope) -> None:
        try:
            reply = await rpc.request(contact, ManifestGet(cid), timeout=MANIFEST_TIMEOUT)
        except RemoteError as e:
            if e.code != ErrorCode.NOT_FOUND:
                problems.append(f"host {contact.key.hex()[:16]}: {e}")
            return
        except (NetError, WireError) as e:
            problems.append(f"host {contact.key.hex()[:16]}: {e}")
            return
        assert isinstance(reply, ManifestData)  # the registry checked it
        m = _checked(reply.raw, cid, registered, problems)
        if m is not None and not found:
            found.append(m)
            cancel.cancel()

    async with trio.open_nursery() as nursery:
        for contact in contacts:
            nursery.start_soon(ask, contact, nursery.cancel_scope)
    return found[0] if found else None


async def _manifest_bytes(dht: DhtService, pointer: ManifestPointer) -> bytes | None:
    """The manifest's bytes from its pieces, or None if they cannot be had."""
    values: list[list[bytes]] = [[] for _ in range(pointer.pieces)]
    limiter = trio.CapacityLimiter(PIECE_LOOKUPS)

    async def piece(i: int) -> None:
        async with limiter:
            # A piece is content-addressed (the joined bytes are checked against the
            # pointer's hash): the first copy will do, so the lookup stops there.
            records = await dht.find_value(manifest_piece_key(pointer.manifest_hash, i), enough=1)
        # several owners may disagree: the most common value first
        counts = Counter(r.value for r in records)
        values[i] = [v for v, _ in counts.most_common()]

    async with trio.open_nursery() as nursery:
        for i in range(pointer.pieces):
            nursery.start_soon(piece, i)
    if not all(values):
        return None
    for pieces in itertools.islice(itertools.product(*values), PIECE_COMBINATIONS):
        try:
            return join_manifest(pointer, pieces)
        except RecordFormatError:
            continue
    return None
