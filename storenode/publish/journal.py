"""The journal of a publish: what is done, so an interrupted publish resumes.

One JSON file per work in the home's ``config.publish_dir``, named
``<cid hex>.json``, replaced atomically (:func:`storenode.config.write_atomic`)
after every step, with the signed manifest beside it in ``<cid hex>.manifest``
(written once, before anything names its hash). A resumed publish keeps
that manifest, so the hash it registers and the chunks hosts hold are the
ones already agreed on.

What a resumed publish skips (:mod:`storenode.publish.pipeline` reads it):

* the coding pass, when the manifest is there;
* a host whose acceptance (``terms`` and ``signature``) is still good: it is
  not asked again;
* a transaction (``register_tx``, a host's ``open_tx``, ``listing_tx``)
  already in a block (``registered``, ``opened``, ``listed``) or still
  pending: it is not sent again;
* chunks a host acknowledged (``acked``, positions in its ``shards``);
* hosts that keep the manifest (``manifest_stored``), and the DHT copy
  (``dht_stored``).

The :class:`Stage` says how far the publish got: ``coded`` (manifest
signed), ``contracted`` (every host accepted), ``sent`` (the transactions
are sent), ``uploaded`` (every chunk acknowledged), ``complete`` (the
transactions are in blocks and the manifest is with the hosts and in the DHT).
A complete journal is kept: publishing the work again finds it and changes
nothing.
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Final

import msgspec

from contracts.encoding import DECODE_ERRORS, decoder
from contracts.tx import ContractTerms
from storenode.config import write_atomic
from storenode.identity import address_hex, address_of
from storenode.publish.errors import JournalError

JOURNAL_VERSION: Final = 1

_terms_decoder = decoder(ContractTerms)


class Stage(enum.StrEnum):
    CODED = "coded"
    CONTRACTED = "contracted"
    SENT = "sent"
    UPLOADED = "uploaded"
    COMPLETE = "complete"


class HostEntry(msgspec.Struct, kw_only=True):
    """One host of the work: where it listens, its shards and its contract."""

    key: str
    """Its public key, hex."""
    host: str
    port: int
    shards: list[tuple[int, int]]
    """Its ``(stripe, shard)`` pairs, in contract order."""
    terms: str = ""
    """``encode(ContractTerms)`` in hex, once the host accepted them."""
    signature: str = ""
    """The host's signature of the terms, hex."""
    open_tx: str = ""
    opened: bool = False
    acked: list[int] = []
    """Positions in ``shards`` of the chunks the host acknowledged."""
    manifest_stored: bool = False

    @property
    def public_key(self) -> bytes:
        return bytes.fromhex(self.key)

    @property
    def who(self) -> str:
        """The host's address, ``0x…``, for messages."""
        return address_hex(address_of(self.public_key))

    @property
    def accepted(self) -> bool:
        return bool(self.terms and self.signature)

    def contract_terms(self) -> ContractTerms:
        """The accepted terms (:class:`JournalError` if there are none or they are damaged)."""
        try:
            return _terms_decoder.decode(bytes.fromhex(self.terms))
        except (ValueError, *DECODE_ERRORS) as exc:  # ValueError: not hex
            raise JournalError(
                f"the journal's terms for host {self.key[:16]}… are damaged ({exc}): remove "
                "the journal to start this work's publish over"
            ) from None

    def accept(self, terms: bytes, signature: bytes) -> None:
        """Record the host's acceptance of ``terms`` (a new one forgets the old open tx)."""
        self.terms = terms.hex()
        self.signature = signature.hex()
        self.open_tx = ""
        self.opened = False


class Journal(msgspec.Struct, kw_only=True):
    """What is done of the publish of one work (see the module docstring)."""

    version: int = JOURNAL_VERSION
    cid: str
    genesis: str
    """The hash of the chain's genesis, hex: a journal of another chain is not resumed."""
    path: str
    name: str
    media_type: str
    length: int
    k: int
    n: int
    stripe_size: int
    stripes: int
    manifest_hash: str
    windows: int
    stage: Stage = Stage.CODED
    register_tx: str = ""
    registered: bool = False
    price: str = ""
    """The price per download last listed, base units ("" while none was)."""
    listing_tx: str = ""
    listed: bool = False
    hosts: list[HostEntry] = []
    dht_stored: bool = False

    @property
    def shard_size(self) -> int:
        return self.stripe_size // self.k

    @property
    def complete(self) -> bool:
        return self.stage is Stage.COMPLETE

    def host(self, key: bytes) -> HostEntry | None:
        hex_key = key.hex()
        return next((h for h in self.hosts if h.key == hex_key), None)

    @property
    def contracts_sent(self) -> bool:
        """Whether an OpenContract was sent: from then on the hosts are fixed."""
        return any(h.open_tx or h.opened for h in self.hosts)


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Journal)


class JournalStore:
    """The journals of one home (``config.publish_dir``), made on first save."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def journal_path(self, cid: bytes) -> Path:
        return self.directory / f"{cid.hex()}.json"

    def manifest_path(self, cid: bytes) -> Path:
        return self.directory / f"{cid.hex()}.manifest"

    def load(self, cid: bytes) -> tuple[Journal, bytes] | None:
        """The journal of ``cid`` and its manifest's bytes, or None if there is none."""
        path = self.journal_path(cid)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise JournalError(f"cannot read the publish journal {path}: {exc}") from None
        try:
            journal = _decoder.decode(raw)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
            raise JournalError(
                f"the publish journal {path} is damaged ({exc}): remove it to start this "
                "work's publish over"
            ) from None
        if journal.version != JOURNAL_VERSION or journal.cid != cid.hex():
            raise JournalError(
                f"{path} is not a version-{JOURNAL_VERSION} journal of work {cid.hex()}: "
                "remove it to start this work's publish over"
            )
        try:
            manifest = self.manifest_path(cid).read_bytes()
        except OSError as exc:
            raise JournalError(
                f"the manifest of the publish journal {path} cannot be read ({exc}): "
                "remove the journal to start this work's publish over"
            ) from None
        return journal, manifest

    def save_manifest(self, cid: bytes, raw: bytes) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        write_atomic(self.manifest_path(cid), raw, replace=True)

    def save(self, journal: Journal) -> None:
        self.write(bytes.fromhex(journal.cid), encode_journal(journal))

    def write(self, cid: bytes, raw: bytes) -> None:
        """Replace the journal of ``cid`` with ``raw`` (:func:`encode_journal`'s bytes)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        write_atomic(self.journal_path(cid), raw, replace=True)


def encode_journal(journal: Journal) -> bytes:
    """The journal's JSON bytes (acknowledged positions sorted)."""
    for entry in journal.hosts:
        entry.acked.sort()
    return _encoder.encode(journal)


__all__ = [
    "JOURNAL_VERSION",
    "HostEntry",
    "Journal",
    "JournalStore",
    "Stage",
    "encode_journal",
]
