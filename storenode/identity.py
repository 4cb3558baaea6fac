"""Who a node, a publisher or a listener is: an Ed25519 key (RFC 8032).

* The **public key** (32 bytes) is the identity: a peer on the wire *is* its
  key, records and transactions are signed with it.
* The **address** is the last 20 bytes of keccak256(public key), shown as
  ``0x…`` hex, as on Ethereum. It names accounts on the ledger.
* The **node id** in the DHT is the same 160 bits (:func:`dht_id` of the
  public key), so a node cannot choose where it sits in the keyspace.

Signatures are always over a domain-separated message (:func:`signing_message`)
so that a signature made for one purpose can never be replayed for another.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache

from Crypto.Hash import keccak
from Crypto.PublicKey import ECC
from Crypto.Signature import eddsa

PUBLIC_KEY_SIZE = 32
SIGNATURE_SIZE = 64
SEED_SIZE = 32
ID_SIZE = 20


class IdentityError(Exception):
    """Base of the identity errors."""


class KeyInvalidError(IdentityError, ValueError):
    """Bytes that are not an Ed25519 public key or seed."""


class SignatureInvalidError(IdentityError):
    """A signature that does not verify under the key it claims."""


def keccak256(data: bytes | memoryview) -> bytes:
    return keccak.new(digest_bits=256, data=data).digest()


def dht_id(data: bytes) -> bytes:
    """The 160-bit position of ``data`` (a key, a CID, a public key) in the DHT."""
    return keccak256(data)[-ID_SIZE:]


def address_of(public_key: bytes) -> bytes:
    """The 20-byte account address of a public key."""
    _check_public(public_key)
    return keccak256(public_key)[-ID_SIZE:]


def address_hex(address: bytes) -> str:
    return "0x" + address.hex()


def signing_message(domain: bytes, payload: bytes) -> bytes:
    """``len(domain) || domain || payload``: what is actually signed."""
    if not 0 < len(domain) < 256:
        raise ValueError("a signing domain is 1..255 bytes")
    return bytes([len(domain)]) + domain + payload


def _check_public(public_key: bytes) -> None:
    if len(public_key) != PUBLIC_KEY_SIZE:
        raise KeyInvalidError(f"an Ed25519 public key is 32 bytes, not {len(public_key)}")


@lru_cache(maxsize=4096)
def _verifier(public_key: bytes) -> eddsa.EdDSASigScheme:
    try:
        return eddsa.new(eddsa.import_public_key(public_key), "rfc8032")
    except ValueError as e:
        raise KeyInvalidError(f"not an Ed25519 public key: {e}") from None


def verify(public_key: bytes, domain: bytes, payload: bytes, signature: bytes) -> None:
    """Raise :class:`SignatureInvalidError` unless ``signature`` is ``public_key``'s
    signature of ``payload`` in ``domain``."""
    _check_public(public_key)
    if len(signature) != SIGNATURE_SIZE:
        raise SignatureInvalidError(f"a signature is 64 bytes, not {len(signature)}")
    verifier = _verifier(public_key)  # KeyInvalidError for a point not on the curve
    try:
        verifier.verify(signing_message(domain, payload), signature)
    except ValueError:
        raise SignatureInvalidError("the signature does not verify under that key") from None


def is_valid_signature(public_key: bytes, domain: bytes, payload: bytes, signature: bytes) -> bool:
    try:
        verify(public_key, domain, payload, signature)
    except (SignatureInvalidError, KeyInvalidError):
        return False
    return True


@dataclass(frozen=True)
class Identity:
    """A private Ed25519 key with its public key, address and node id."""

    seed: bytes = field(repr=False)
    public_key: bytes
    _signer: eddsa.EdDSASigScheme = field(repr=False, compare=False)

    @classmethod
    def generate(cls) -> Identity:
        return cls.from_seed(os.urandom(SEED_SIZE))

    @classmethod
    def from_seed(cls, seed: bytes) -> Identity:
        if len(seed) != SEED_SIZE:
            raise KeyInvalidError(f"an Ed25519 seed is 32 bytes, not {len(seed)}")
        key = ECC.construct(curve="Ed25519", seed=seed)
        public = key.public_key().export_key(format="raw")
        return cls(seed, bytes(public), eddsa.new(key, "rfc8032"))

    @property
    def address(self) -> bytes:
        return address_of(self.public_key)

    @property
    def node_id(self) -> bytes:
        return dht_id(self.public_key)

    def sign(self, domain: bytes, payload: bytes) -> bytes:
        return bytes(self._signer.sign(signing_message(domain, payload)))
