"""The manifest of a work: what a reader needs to find, fetch and check it.

A manifest is one msgpack array (spec: docs/specs/manifest.md)::

    [version, cid, name, media_type, length, k, n, stripe_size,
     [[[chunk_id × n], stripe_hash] × stripes], publisher, created, signature]

* ``cid`` is keccak256 of the work's bytes (the key of the registry and of the
  manifest in the DHT); ``length`` is the work's true length in bytes.
* Each stripe is Reed–Solomon coded into n shards; a shard's chunk id is the
  Merkle root over its 1 KiB segments; ``stripe_hash`` is BLAKE3-256 of the
  stripe as coded (the last one with its zero padding; version 1 had SHA-256).
* ``signature`` is the publisher's Ed25519 signature, in domain
  :data:`MANIFEST_DOMAIN`, of the canonical encoding of every field before it
  (:func:`manifest_payload`).

Encoding is canonical (msgspec's shortest forms): :func:`decode_manifest`
re-encodes what it decoded and refuses any other byte string, so one manifest
has exactly one encoding, and :func:`manifest_hash` (keccak256 of it) names it
in the registry. Decoding checks the shape and bounds of every field;
:func:`verify_manifest` checks that the fields agree with each other and the
signature. Every failure is a :class:`ManifestError`. Pure and synchronous.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Annotated, Final, TypeVar

import msgspec

from storenode.coding.errors import CodingParamsError
from storenode.coding.merkle import merkle_root
from storenode.coding.rs import ReedSolomon
from storenode.identity import (
    SIGNATURE_SIZE,
    Identity,
    KeyInvalidError,
    SignatureInvalidError,
    keccak256,
    verify,
)
from storenode.publish.stripes import (
    Buffer,
    StripeSizeError,
    check_stripe_size,
    cut_stripes,
    stripe_count,
    stripe_hash,
)
from storenode.wire.messages import U64, Hash32, PublicKey, Signature

MANIFEST_VERSION: Final = 2
MANIFEST_DOMAIN: Final = b"storenode/manifest/2"
"""The signing domain of manifests (its last part is the format version)."""

MAX_N: Final = 255
"""The largest n (and k) of the Reed–Solomon code over GF(2^8)."""
MAX_STRIPE_SIZE: Final = 64 << 20
MAX_STRIPES: Final = 1 << 20
MAX_U64: Final = 2**64 - 1
MAX_NAME_LENGTH: Final = 255
MAX_MEDIA_TYPE_LENGTH: Final = 127
MAX_MANIFEST_SIZE: Final = 64 << 20
"""Bytes :func:`decode_manifest` reads at most (before any parsing)."""

_TOKEN = r"[a-z0-9][a-z0-9!#$&^_.+-]*"
MEDIA_TYPE_PATTERN: Final = rf"\A{_TOKEN}/{_TOKEN}\Z"
"""``type/subtype`` in lowercase (RFC 6838 restricted names), no parameters."""

ChunkIds = Annotated[tuple[Hash32, ...], msgspec.Meta(min_length=1, max_length=MAX_N)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_NAME_LENGTH)]
MediaType = Annotated[
    str, msgspec.Meta(min_length=3, max_length=MAX_MEDIA_TYPE_LENGTH, pattern=MEDIA_TYPE_PATTERN)
]
Version = Annotated[int, msgspec.Meta(ge=0, le=255)]
Length = Annotated[int, msgspec.Meta(ge=1)]
CodeParam = Annotated[int, msgspec.Meta(ge=1, le=MAX_N)]
StripeSize = Annotated[int, msgspec.Meta(ge=1, le=MAX_STRIPE_SIZE)]


class ManifestError(Exception):
    """Base of the errors of manifests."""


class ManifestMalformedError(ManifestError, ValueError):
    """Bytes that are not a manifest: not msgpack, a wrong shape, a field out of
    bounds, or not the canonical encoding."""


class ManifestVersionError(ManifestError):
    """A manifest of a format version this node does not read."""


class ManifestInvalidError(ManifestError):
    """A well-formed manifest whose fields disagree (k, n, stripes, length, CID)."""


class ManifestSignatureError(ManifestError):
    """A manifest whose signature does not verify under its publisher's key."""


class ManifestParamsError(ManifestError, ValueError):
    """Arguments to :func:`build_manifest` that make no valid manifest."""


class StripeEntry(msgspec.Struct, frozen=True, forbid_unknown_fields=True, array_like=True):
    """One stripe: its n chunk ids in shard order, and the hash of the stripe as coded
    (BLAKE3-256, :func:`~storenode.publish.stripes.stripe_hash`)."""

    chunk_ids: ChunkIds
    digest: Hash32


class Manifest(msgspec.Struct, frozen=True, forbid_unknown_fields=True, array_like=True):
    """A work's signed manifest (see the module docstring for the fields)."""

    version: Version
    cid: Hash32
    name: Name
    media_type: MediaType
    length: Length
    k: CodeParam
    n: CodeParam
    stripe_size: StripeSize
    stripes: Annotated[tuple[StripeEntry, ...], msgspec.Meta(min_length=1, max_length=MAX_STRIPES)]
    publisher: PublicKey
    created: U64
    signature: Signature

    @property
    def chunk_count(self) -> int:
        return self.n * len(self.stripes)

    def __repr__(self) -> str:
        return (
            f"Manifest(cid={self.cid.hex()[:16]}, name={self.name!r}, length={self.length}, "
            f"k={self.k}, n={self.n}, stripes={len(self.stripes)})"
        )


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Manifest)


def manifest_payload(m: Manifest) -> bytes:
    """The bytes the publisher signs: the canonical msgpack array of every field but
    the signature (the manifest's encoding without its last element)."""
    return _encoder.encode(msgspec.structs.astuple(m)[:-1])


def encode_manifest(m: Manifest) -> bytes:
    """The manifest's one canonical byte string."""
    return _encoder.encode(m)


def manifest_hash(m: Manifest) -> bytes:
    """keccak256 of the canonical encoding: what the registry entry records."""
    return keccak256(encode_manifest(m))


def decode_manifest(raw: Buffer) -> Manifest:
    """The manifest encoded in ``raw``: shape and bounds checked, canonical.

    Raises :class:`ManifestMalformedError` or :class:`ManifestVersionError`, never
    anything else. It does not check that the fields agree or the signature: call
    :func:`verify_manifest` before trusting it.
    """
    raw = memoryview(raw).cast("B")
    if raw.nbytes > MAX_MANIFEST_SIZE:
        raise ManifestMalformedError(
            f"{raw.nbytes} bytes, a manifest is at most {MAX_MANIFEST_SIZE}"
        )
    version = _peek_version(raw)
    if version is not None and version != MANIFEST_VERSION:
        raise ManifestVersionError(
            f"manifest format version {version}; this node reads version {MANIFEST_VERSION}"
        )
    try:
        m = _decoder.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError) as e:  # ValidationError is a DecodeError
        raise ManifestMalformedError(f"not a manifest: {e}") from None
    if m.version != MANIFEST_VERSION:
        raise ManifestVersionError(
            f"manifest format version {m.version}; this node reads version {MANIFEST_VERSION}"
        )
    if encode_manifest(m) != bytes(raw):
        raise ManifestMalformedError("not the canonical encoding of the manifest")
    return m


def _peek_version(raw: memoryview) -> int | None:
    """The version, when ``raw`` starts like any manifest: an array whose first element
    is a positive fixint (so a later format, whatever its shape, is reported as such)."""
    offset = {0xDC: 3, 0xDD: 5}.get(raw[0], 1) if raw.nbytes else 0
    if not raw.nbytes or not (0x90 <= raw[0] <= 0x9F or raw[0] in (0xDC, 0xDD)):
        return None
    if raw.nbytes <= offset or raw[offset] > 0x7F:
        return None
    return int(raw[offset])


def verify_manifest(m: Manifest, *, cid: bytes | None = None) -> None:
    """Raise a :class:`ManifestError` unless ``m`` is a version-1 manifest whose fields
    agree with each other (and with ``cid`` if given) and whose signature verifies.

    The checks: version; 1 <= k <= n <= 255; the stripe size a multiple of k; as many
    stripes as the length and stripe size make; n chunk ids per stripe; the signature
    of :func:`manifest_payload` by ``publisher`` in :data:`MANIFEST_DOMAIN`.
    """
    if m.version != MANIFEST_VERSION:
        raise ManifestVersionError(
            f"manifest format version {m.version}; this node reads version {MANIFEST_VERSION}"
        )
    if cid is not None and m.cid != cid:
        raise ManifestInvalidError(f"the manifest is for CID {m.cid.hex()}, not {cid.hex()}")
    if not 1 <= m.k <= m.n <= MAX_N:
        raise ManifestInvalidError(f"k={m.k} n={m.n}: need 1 <= k <= n <= {MAX_N}")
    if m.stripe_size % m.k:
        raise ManifestInvalidError(f"a stripe of {m.stripe_size} bytes does not split into k={m.k}")
    expected = stripe_count(m.length, m.stripe_size)
    if len(m.stripes) != expected:
        raise ManifestInvalidError(
            f"{len(m.stripes)} stripes listed; {m.length} bytes in stripes of "
            f"{m.stripe_size} make {expected}"
        )
    for s, entry in enumerate(m.stripes):
        if len(entry.chunk_ids) != m.n:
            raise ManifestInvalidError(f"stripe {s} lists {len(entry.chunk_ids)} chunks, n={m.n}")
    try:
        verify(m.publisher, MANIFEST_DOMAIN, manifest_payload(m), m.signature)
    except (KeyInvalidError, SignatureInvalidError) as e:
        raise ManifestSignatureError(f"the manifest's signature is not valid: {e}") from None


# -- building ----------------------------------------------------------------------------

_T = TypeVar("_T")


def _checked(value: _T, kind: object, what: str) -> _T:
    try:
        return msgspec.convert(value, kind)  # type: ignore[no-any-return]
    except msgspec.ValidationError as e:
        raise ManifestParamsError(f"{what} {value!r}: {e}") from None


def encode_stripes(
    data: Buffer, *, k: int, n: int, stripe_size: int
) -> Iterator[tuple[StripeEntry, list[memoryview]]]:
    """Each stripe's manifest entry and its n shards (shard i is chunk ``chunk_ids[i]``)."""
    try:
        check_stripe_size(stripe_size, k)
        rs = ReedSolomon(k, n)
    except (StripeSizeError, CodingParamsError) as e:
        raise ManifestParamsError(str(e)) from None
    for stripe in cut_stripes(data, stripe_size, k):
        shards = rs.encode_stripe(stripe)
        ids = tuple(merkle_root(shard) for shard in shards)
        yield StripeEntry(ids, stripe_hash(stripe)), shards


def build_manifest(
    identity: Identity,
    name: str,
    media_type: str,
    data: Buffer,
    *,
    k: int,
    n: int,
    stripe_size: int,
    created: int,
) -> tuple[Manifest, list[list[memoryview]]]:
    """Code ``data`` and sign its manifest as ``identity`` at unix second ``created``.

    Returns the manifest and, per stripe, its n shards in shard order. Raises
    :class:`ManifestParamsError` for arguments outside the manifest's bounds.
    """
    data = memoryview(data).cast("B")
    length = data.nbytes
    _checked(name, Name, "name")
    try:
        name.encode()
    except UnicodeEncodeError:
        raise ManifestParamsError(f"name {name!r} is not valid Unicode") from None
    _checked(media_type, MediaType, "media type")
    _checked(length, Length, "a work of length")
    _checked(stripe_size, StripeSize, "stripe size")
    _checked(created, U64, "created")
    if created > MAX_U64:
        raise ManifestParamsError(f"created {created}: a manifest's time is a u64")
    if stripe_count(length, stripe_size) > MAX_STRIPES:
        raise ManifestParamsError(
            f"{length} bytes in stripes of {stripe_size} make more than {MAX_STRIPES} stripes: "
            "give a larger stripe size"
        )
    entries: list[StripeEntry] = []
    shards: list[list[memoryview]] = []
    for entry, stripe_shards in encode_stripes(data, k=k, n=n, stripe_size=stripe_size):
        entries.append(entry)
        shards.append(stripe_shards)
    manifest = sign_manifest(
        identity,
        cid=keccak256(data),
        name=name,
        media_type=media_type,
        length=length,
        k=k,
        n=n,
        stripe_size=stripe_size,
        stripes=entries,
        created=created,
    )
    return manifest, shards


def sign_manifest(
    identity: Identity,
    *,
    cid: bytes,
    name: str,
    media_type: str,
    length: int,
    k: int,
    n: int,
    stripe_size: int,
    stripes: Sequence[StripeEntry],
    created: int,
) -> Manifest:
    """The manifest of these fields, signed by ``identity``, for a caller that coded the
    stripes itself (:func:`encode_stripes`, storing each stripe's shards as it goes).

    Raises :class:`ManifestParamsError` unless the result passes :func:`verify_manifest`.
    """
    unsigned = Manifest(
        version=MANIFEST_VERSION,
        cid=cid,
        name=name,
        media_type=media_type,
        length=length,
        k=k,
        n=n,
        stripe_size=stripe_size,
        stripes=tuple(stripes),
        publisher=identity.public_key,
        created=created,
        signature=bytes(SIGNATURE_SIZE),
    )
    try:
        # the schema's bounds are checked on decoding only: round-trip the fields
        checked = _decoder.decode(_encoder.encode(unsigned))
    except (msgspec.DecodeError, UnicodeError, OverflowError) as e:
        raise ManifestParamsError(f"these fields make no manifest: {e}") from None
    signature = identity.sign(MANIFEST_DOMAIN, manifest_payload(checked))
    manifest = msgspec.structs.replace(checked, signature=signature)
    try:
        verify_manifest(manifest)
    except ManifestError as e:
        raise ManifestParamsError(str(e)) from None
    return manifest
