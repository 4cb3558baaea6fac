"""What publishers, hosts and listeners put in the DHT, and the keys they use.

Every value lives in a signed DHT record (:mod:`storenode.dht.records`), so its
owner is authenticated; this module fixes the keys and the value formats.
Spec: docs/specs/manifest.md §6.

=============================  =================================  =====================
key                            value                              owner
=============================  =================================  =====================
``hosts_key(b)``, b < 32         :class:`HostAd` (msgpack)          each host in bucket b
``manifest_key(cid)``          :class:`ManifestPointer`           the publisher
``manifest_piece_key(h, i)``   piece i of the manifest's bytes    the publisher
``providers_key(cid)``         a provider record (its contact)    each host holding
                                                                  shards of the work
=============================  =================================  =====================

* The **host directory** holds one ad per host, spread over
  :data:`HOST_BUCKETS` keys: a host puts its ad under ``hosts_key(b)`` for its
  bucket ``b = host_bucket(its key)`` (a DHT key holds at most 64 owners, so
  one key would hide every host past the 64th); a publisher reads them all.
  The buckets follow the hosts' DHT ids, so they fill evenly: about a
  thousand hosts fit before the fullest one does.
* A **manifest** can be larger than a record's 64 KiB (about 350 bytes per
  stripe at n = 10), so it is stored as pieces under keys derived from its
  hash, and a small :class:`ManifestPointer` under the CID says which. A reader
  joins the pieces, checks them against the hash (:func:`join_manifest`), and
  then the manifest's own signature; the same hash is in the work's registry
  entry on the ledger, so a reader that trusts the ledger needs no pointer.
* A **provider record** under ``providers_key(cid)`` says that its owner keeps
  shards of the work and where to reach it; which shards, the host answers
  itself (``chunk.packet`` names the stripe).

Pure and synchronous.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Final

import msgspec

from contracts.encoding import Bps, ChainId
from storenode.identity import dht_id, keccak256
from storenode.wire.messages import U32, U64, Hash32, Host, Port, PublicKey

HOSTS_KEY_PREFIX: Final = b"storenode/hosts/2/"
HOST_BUCKETS: Final = 32
"""Keys the host directory is spread over."""
PIECE_SIZE: Final = 60 * 1024
"""Bytes of a manifest per DHT record (under the record's 64 KiB limit)."""
MAX_PIECES: Final = 1024
"""Pieces a manifest has at most (60 MiB: every manifest :mod:`manifest` accepts)."""
HOST_AD_TTL: Final = 3600
"""Seconds a host ad lives; hosts republish it every few minutes with their free space."""
MANIFEST_TTL: Final = 48 * 3600
"""Seconds a manifest's records live; the publisher's node (or any host) republishes them."""


class RecordFormatError(ValueError):
    """A DHT value that is not what its key holds."""


def host_bucket(host_key: bytes) -> int:
    """The directory bucket of the host with Ed25519 key ``host_key``: its DHT id's
    first byte, modulo :data:`HOST_BUCKETS`."""
    return dht_id(host_key)[0] % HOST_BUCKETS


def hosts_key(bucket: int) -> bytes:
    """The DHT key of directory bucket ``bucket`` (0 ≤ bucket < :data:`HOST_BUCKETS`)."""
    if not 0 <= bucket < HOST_BUCKETS:
        raise ValueError(f"host directory buckets are 0..{HOST_BUCKETS - 1}, not {bucket}")
    return HOSTS_KEY_PREFIX + bytes([bucket])


class HostAd(msgspec.Struct, frozen=True, forbid_unknown_fields=True, array_like=True):
    """A host's offer, under ``hosts_key(host_bucket(key))`` (the record's owner is the
    host)."""

    key: PublicKey
    host: Host
    port: Port
    """Where the host's wire listens."""
    http_port: Annotated[int, msgspec.Meta(ge=0, le=65535)]
    """Its HTTP gateway's port on the same host (0: none)."""
    chain_id: ChainId
    price: Annotated[str, msgspec.Meta(min_length=1, max_length=78, pattern=r"^[0-9]+$")]
    """Base units per GiB per window, in decimal (an amount may exceed 64 bits)."""
    collateral_bps: Bps
    max_windows: U32
    free: U64
    """Bytes of capacity not yet promised to contracts."""


class ManifestPointer(msgspec.Struct, frozen=True, forbid_unknown_fields=True, array_like=True):
    """Under ``manifest_key(cid)``: the manifest's hash (keccak256), size and piece count."""

    manifest_hash: Hash32
    size: Annotated[int, msgspec.Meta(ge=1, le=MAX_PIECES * PIECE_SIZE)]
    pieces: Annotated[int, msgspec.Meta(ge=1, le=MAX_PIECES)]


_encoder = msgspec.msgpack.Encoder()
_ad_decoder = msgspec.msgpack.Decoder(HostAd)
_pointer_decoder = msgspec.msgpack.Decoder(ManifestPointer)


def manifest_key(cid: bytes) -> bytes:
    return b"m/" + cid


def manifest_piece_key(manifest_hash: bytes, index: int) -> bytes:
    return b"mp/" + manifest_hash + index.to_bytes(2, "big")


def providers_key(cid: bytes) -> bytes:
    return b"p/" + cid


def encode_host_ad(ad: HostAd) -> bytes:
    return _encoder.encode(ad)


def decode_host_ad(raw: bytes, *, owner: bytes) -> HostAd:
    """The ad in ``raw``; :class:`RecordFormatError` unless it is one and names ``owner``."""
    try:
        ad = _ad_decoder.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError) as e:  # ValidationError is a DecodeError
        raise RecordFormatError(f"not a host ad: {e}") from None
    if ad.key != owner:
        raise RecordFormatError("a host ad for another host than its record's owner")
    return ad


def split_manifest(raw: bytes) -> tuple[ManifestPointer, list[bytes]]:
    """The pointer and the pieces that store the manifest bytes ``raw``."""
    pieces = [raw[i : i + PIECE_SIZE] for i in range(0, len(raw), PIECE_SIZE)]
    if not 1 <= len(pieces) <= MAX_PIECES:
        raise RecordFormatError(f"a manifest of {len(raw)} bytes does not fit in the DHT")
    return ManifestPointer(keccak256(raw), len(raw), len(pieces)), pieces


def encode_pointer(pointer: ManifestPointer) -> bytes:
    return _encoder.encode(pointer)


def decode_pointer(raw: bytes) -> ManifestPointer:
    try:
        pointer = _pointer_decoder.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise RecordFormatError(f"not a manifest pointer: {e}") from None
    if -(-pointer.size // PIECE_SIZE) != pointer.pieces:
        raise RecordFormatError(
            f"a manifest of {pointer.size} bytes is {-(-pointer.size // PIECE_SIZE)} pieces, "
            f"not {pointer.pieces}"
        )
    return pointer


def join_manifest(pointer: ManifestPointer, pieces: Sequence[bytes]) -> bytes:
    """The manifest's bytes from its pieces in order; :class:`RecordFormatError`
    unless they are the pointer's size and hash."""
    if len(pieces) != pointer.pieces:
        raise RecordFormatError(f"{len(pieces)} pieces given, the manifest has {pointer.pieces}")
    raw = b"".join(pieces)
    if len(raw) != pointer.size or keccak256(raw) != pointer.manifest_hash:
        raise RecordFormatError("the manifest's pieces do not hash to its pointer")
    return raw


__all__ = [
    "HOSTS_KEY_PREFIX",
    "HOST_AD_TTL",
    "HOST_BUCKETS",
    "MANIFEST_TTL",
    "MAX_PIECES",
    "PIECE_SIZE",
    "HostAd",
    "ManifestPointer",
    "RecordFormatError",
    "decode_host_ad",
    "decode_pointer",
    "encode_host_ad",
    "encode_pointer",
    "host_bucket",
    "hosts_key",
    "join_manifest",
    "manifest_key",
    "manifest_piece_key",
    "providers_key",
    "split_manifest",
]
