"""Publishing a work: stripes, the signed manifest, and where each shard goes.

* :mod:`~storenode.publish.stripes`: cut a work into stripes and join them back;
* :mod:`~storenode.publish.manifest`: code a work and sign its manifest; the
  manifest's canonical bytes, strict decoding and verification;
* :mod:`~storenode.publish.placement`: the host of shard i of stripe s;
* :mod:`~storenode.publish.records`: what goes into the DHT, under which keys;
* :mod:`~storenode.publish.works`: the files a publish covers, their media types;
* :mod:`~storenode.publish.plan`: the hosts that can take a work, their shards,
  and the contract terms offered to each;
* :mod:`~storenode.publish.journal`: what is done, so a publish resumes;
* :mod:`~storenode.publish.errors`: the errors of ``storenode publish``.

These are pure and synchronous (the journal reads and writes its files).
:mod:`storenode.publish.pipeline`, the trio shell that drives them over the
wire and the ledger, is imported on its own (it needs the host's messages,
which need this package), with its steps: :mod:`~storenode.publish.contracting`
(hosts' acceptances), :mod:`~storenode.publish.transactions` (the ledger),
:mod:`~storenode.publish.upload` (chunks and manifest) and what they share,
:mod:`~storenode.publish.session`. Spec: docs/specs/manifest.md; guide:
docs/publisher.md.
"""

from storenode.publish.errors import (
    BalanceTooLowError,
    ChainMismatchError,
    HostFailedError,
    HostRefusedError,
    JournalError,
    PublishError,
    PublishInputError,
    TooFewHostsError,
    TxFailedError,
    WorkOwnedError,
    WorkPathError,
)
from storenode.publish.journal import HostEntry, Journal, JournalStore, Stage
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
from storenode.publish.plan import (
    HostChoice,
    HostOffer,
    assign,
    make_terms,
    price_per_window,
    select_hosts,
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
from storenode.publish.works import WorkFile, discover_works, media_type_of

__all__ = [
    "DEFAULT_STRIPE_SIZE",
    "MANIFEST_DOMAIN",
    "MANIFEST_VERSION",
    "PLACEMENT_WINDOW",
    "BalanceTooLowError",
    "Candidate",
    "ChainMismatchError",
    "HostChoice",
    "HostEntry",
    "HostFailedError",
    "HostOffer",
    "HostRefusedError",
    "Journal",
    "JournalError",
    "JournalStore",
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
    "PublishError",
    "PublishInputError",
    "Stage",
    "StripeEntry",
    "StripeError",
    "StripeLengthError",
    "StripeSizeError",
    "TooFewHostsError",
    "TxFailedError",
    "WorkFile",
    "WorkOwnedError",
    "WorkPathError",
    "assign",
    "build_manifest",
    "cut_stripes",
    "decode_manifest",
    "discover_works",
    "encode_manifest",
    "encode_stripes",
    "join_stripes",
    "make_terms",
    "manifest_hash",
    "manifest_payload",
    "media_type_of",
    "padded_size",
    "place",
    "price_per_window",
    "select_hosts",
    "shard_target",
    "sign_manifest",
    "stripe_count",
    "stripe_size_for",
    "verify_manifest",
]
