"""Publishing a work: stripes, the signed manifest, and where each shard goes.

* :mod:`~storenode.publish.stripes`: cut a work into stripes and join them back;
* :mod:`~storenode.publish.manifest`: code a work and sign its manifest; the
  manifest's canonical bytes, strict decoding and verification;
* :mod:`~storenode.publish.placement`: the host of shard i of stripe s.

Pure and synchronous. Spec: docs/specs/manifest.md.
"""

from storenode.publish.manifest import (
    MANIFEST_DOMAIN,
    MANIFEST_VERSION,
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
    encode_stripes,
    manifest_hash,
    manifest_payload,
    sign_manifest,
    verify_manifest,
)
from storenode.publish.placement import (
    PLACEMENT_WINDOW,
    Candidate,
    NotEnoughHostsError,
    PlacementError,
    PlacementParamsError,
    place,
    shard_target,
)
from storenode.publish.stripes import (
    DEFAULT_STRIPE_SIZE,
    StripeError,
    StripeLengthError,
    StripeSizeError,
    cut_stripes,
    join_stripes,
    padded_size,
    stripe_count,
    stripe_size_for,
)

__all__ = [
    "DEFAULT_STRIPE_SIZE",
    "MANIFEST_DOMAIN",
    "MANIFEST_VERSION",
    "PLACEMENT_WINDOW",
    "Candidate",
    "Manifest",
    "ManifestError",
    "ManifestInvalidError",
    "ManifestMalformedError",
    "ManifestParamsError",
    "ManifestSignatureError",
    "ManifestVersionError",
    "NotEnoughHostsError",
    "PlacementError",
    "PlacementParamsError",
    "StripeEntry",
    "StripeError",
    "StripeLengthError",
    "StripeSizeError",
    "build_manifest",
    "cut_stripes",
    "decode_manifest",
    "encode_manifest",
    "encode_stripes",
    "join_stripes",
    "manifest_hash",
    "manifest_payload",
    "padded_size",
    "place",
    "shard_target",
    "sign_manifest",
    "stripe_count",
    "stripe_size_for",
    "verify_manifest",
]
