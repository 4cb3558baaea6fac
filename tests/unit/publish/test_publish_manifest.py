"""The signed manifest: building, canonical bytes, strict decoding, verification."""

from __future__ import annotations

import contextlib
import random

import blake3
import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storenode.coding.merkle import merkle_root
from storenode.coding.rs import ReedSolomon
from storenode.identity import Identity, keccak256
from storenode.publish import (
    MANIFEST_DOMAIN,
    Manifest,
    ManifestError,
    ManifestInvalidError,
    ManifestMalformedError,
    ManifestParamsError,
    ManifestSignatureError,
    ManifestVersionError,
    StripeEntry,
    build_manifest,
    decode_manifest,
    encode_manifest,
    join_stripes,
    manifest_hash,
    manifest_payload,
    verify_manifest,
)

PUBLISHER = Identity.from_seed(bytes(range(32)))
OTHER = Identity.from_seed(bytes(32))
CREATED = 1_700_000_000
DATA = random.Random(7).randbytes(10_000)


def _build(data: bytes = DATA, **kw: int) -> tuple[Manifest, list[list[memoryview]]]:
    params = {"k": 4, "n": 6, "stripe_size": 4096, "created": CREATED} | kw
    return build_manifest(PUBLISHER, "track.wav", "audio/wav", data, **params)


MANIFEST, SHARDS = _build()
RAW = encode_manifest(MANIFEST)


def _resign(m: Manifest, identity: Identity = PUBLISHER) -> Manifest:
    """``m`` with a fresh valid signature, so only the field under test is wrong."""
    signature = identity.sign(MANIFEST_DOMAIN, manifest_payload(m))
    return msgspec.structs.replace(m, publisher=identity.public_key, signature=signature)


# -- building ----------------------------------------------------------------------------


def test_a_built_manifest_describes_the_work_and_verifies() -> None:
    m = MANIFEST

    verify_manifest(m, cid=keccak256(DATA))
    assert (m.version, m.name, m.media_type, m.length) == (2, "track.wav", "audio/wav", 10_000)
    assert (m.k, m.n, m.stripe_size, m.created) == (4, 6, 4096, CREATED)
    assert m.cid == keccak256(DATA)
    assert m.publisher == PUBLISHER.public_key
    assert len(m.stripes) == len(SHARDS) == 3
    assert m.chunk_count == 18


def test_chunk_ids_are_merkle_roots_of_the_shards_and_decode_back_to_the_work() -> None:
    rs = ReedSolomon(MANIFEST.k, MANIFEST.n)
    stripes = []
    for entry, shards in zip(MANIFEST.stripes, SHARDS, strict=True):
        assert entry.chunk_ids == tuple(merkle_root(s) for s in shards)
        stripe = rs.decode_stripe([5, 1, 4, 2], [shards[i] for i in (5, 1, 4, 2)])
        assert blake3.blake3(stripe).digest() == entry.digest  # version 2's stripe hash
        stripes.append(stripe)

    assert join_stripes(stripes, MANIFEST.length) == DATA


def test_building_the_same_work_twice_gives_the_same_bytes() -> None:
    again, _ = _build()

    assert encode_manifest(again) == RAW
    assert manifest_hash(again) == manifest_hash(MANIFEST) == keccak256(RAW)


@pytest.mark.parametrize(
    ("name", "media_type", "data", "params"),
    [
        ("", "audio/wav", DATA, {}),
        ("x" * 256, "audio/wav", DATA, {}),
        ("\udc80.wav", "audio/wav", DATA, {}),
        ("a.wav", "audio", DATA, {}),
        ("a.wav", "Audio/WAV", DATA, {}),
        ("a.wav", "audio/wav\n", DATA, {}),
        ("a.wav", "audio/wav", b"", {}),
        ("a.wav", "audio/wav", DATA, {"k": 4, "n": 3}),
        ("a.wav", "audio/wav", DATA, {"k": 0}),
        ("a.wav", "audio/wav", DATA, {"n": 256}),
        ("a.wav", "audio/wav", DATA, {"stripe_size": 4098}),
        ("a.wav", "audio/wav", DATA, {"created": -1}),
        ("a.wav", "audio/wav", DATA, {"created": 2**64}),
    ],
)
def test_arguments_outside_the_manifests_bounds_are_refused(
    name: str, media_type: str, data: bytes, params: dict[str, int]
) -> None:
    kw = {"k": 4, "n": 6, "stripe_size": 4096, "created": CREATED} | params
    with pytest.raises(ManifestParamsError):
        build_manifest(PUBLISHER, name, media_type, data, **kw)


# -- bytes ---------------------------------------------------------------------------------


def test_encoding_round_trips() -> None:
    assert decode_manifest(RAW) == MANIFEST
    assert decode_manifest(memoryview(RAW)) == MANIFEST


def test_the_signature_covers_the_encoding_of_every_other_field() -> None:
    fields = msgspec.msgpack.decode(RAW)

    assert manifest_payload(MANIFEST) == msgspec.msgpack.encode(fields[:-1])
    assert fields[-1] == MANIFEST.signature


def test_a_non_canonical_encoding_of_a_valid_manifest_is_refused() -> None:
    # the same array with its length as array16 instead of fixarray
    assert RAW[0] == 0x9C
    longer = b"\xdc\x00\x0c" + RAW[1:]

    with pytest.raises(ManifestMalformedError, match="canonical"):
        decode_manifest(longer)


@pytest.mark.parametrize("version", [1, 3])
def test_another_format_version_is_reported_as_such(version: int) -> None:
    # 1 had SHA-256 stripe hashes; 3 is one this node does not know yet
    other = msgspec.msgpack.encode([version, "a shape this node does not read"])

    with pytest.raises(ManifestVersionError, match=f"version {version}; this node reads version 2"):
        decode_manifest(other)


@pytest.mark.parametrize(
    "raw",
    [b"", b"\xc1", b"\x90", RAW[:-1], RAW + b"\x00", msgspec.msgpack.encode({"version": 1})],
)
def test_bytes_that_are_not_a_manifest_are_malformed(raw: bytes) -> None:
    with pytest.raises(ManifestMalformedError):
        decode_manifest(raw)


def test_a_name_that_is_not_utf8_is_malformed() -> None:
    at = RAW.index(b"track.wav")
    raw = RAW[:at] + b"\xa9" + RAW[at + 1 :]

    with pytest.raises(ManifestMalformedError):
        decode_manifest(raw)


@settings(max_examples=500)
@given(st.binary(max_size=600))
def test_decoding_random_bytes_raises_only_manifest_errors(raw: bytes) -> None:
    with contextlib.suppress(ManifestError):
        decode_manifest(raw)


@settings(max_examples=500)
@given(st.data())
def test_decoding_mutated_manifests_raises_only_manifest_errors(data: st.DataObject) -> None:
    raw = bytearray(RAW)
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "set", "cut", "insert"]))
        at = data.draw(st.integers(0, len(raw) - 1))
        if op == "flip":
            raw[at] ^= 1 << data.draw(st.integers(0, 7))
        elif op == "set":
            raw[at] = data.draw(st.integers(0, 255))
        elif op == "cut":
            del raw[at : at + data.draw(st.integers(1, 40))]
        else:
            raw[at:at] = data.draw(st.binary(min_size=1, max_size=8))
        if not raw:
            break
    try:
        m = decode_manifest(bytes(raw))
    except ManifestError:
        return
    # what decodes is canonical; a change anywhere must then fail verification
    assert encode_manifest(m) == bytes(raw)
    if bytes(raw) != RAW:
        with pytest.raises(ManifestError):
            verify_manifest(m)


# -- verification ----------------------------------------------------------------------------


def test_a_manifest_signed_by_someone_else_is_refused() -> None:
    forged = msgspec.structs.replace(MANIFEST, publisher=OTHER.public_key)

    with pytest.raises(ManifestSignatureError):
        verify_manifest(forged)


def test_a_changed_field_breaks_the_signature() -> None:
    changed = msgspec.structs.replace(MANIFEST, name="other.wav")

    with pytest.raises(ManifestSignatureError):
        verify_manifest(changed)


def test_a_manifest_for_another_cid_is_refused() -> None:
    with pytest.raises(ManifestInvalidError, match="not"):
        verify_manifest(MANIFEST, cid=keccak256(b"another work"))


def test_a_stripe_count_that_disagrees_with_the_length_is_refused() -> None:
    short = _resign(msgspec.structs.replace(MANIFEST, length=4096))

    with pytest.raises(ManifestInvalidError, match="3 stripes listed"):
        verify_manifest(short)


def test_a_stripe_listing_other_than_n_chunks_is_refused() -> None:
    entry = MANIFEST.stripes[1]
    bad = StripeEntry(entry.chunk_ids[:-1], entry.digest)
    stripes = (MANIFEST.stripes[0], bad, MANIFEST.stripes[2])
    m = _resign(msgspec.structs.replace(MANIFEST, stripes=stripes))

    with pytest.raises(ManifestInvalidError, match="stripe 1 lists 5 chunks, n=6"):
        verify_manifest(m)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"k": 7}, "k=7 n=6"),
        ({"stripe_size": 4097}, "does not split"),
        ({"version": 3}, "version 3"),
    ],
)
def test_inconsistent_coding_parameters_are_refused(fields: dict[str, int], message: str) -> None:
    m = _resign(msgspec.structs.replace(MANIFEST, **fields))

    with pytest.raises(ManifestError, match=message):
        verify_manifest(m)


def test_the_hash_names_one_manifest() -> None:
    later, _ = _build(created=CREATED + 1)

    assert manifest_hash(later) != manifest_hash(MANIFEST)
    assert len(manifest_hash(MANIFEST)) == 32
