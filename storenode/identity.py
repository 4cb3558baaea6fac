"""Who a node, a publisher or a listener is: an Ed25519 key (RFC 8032).

* The **public key** (32 bytes) is the identity: a peer on the wire *is* its
  key, records and transactions are signed with it.
* The **address** is the last 20 bytes of keccak256(public key), shown as
  ``0x…`` hex, as on Ethereum. It names accounts on the ledger.
* The **node id** in the DHT is the same 160 bits (:func:`dht_id` of the
  public key), so a node cannot choose where it sits in the keyspace.

Signatures are always over a domain-separated message (:func:`signing_message`)
so that a signature made for one purpose can never be replayed for another.

Ed25519 is OpenSSL's, through ``cryptography`` (docs/decisions/0010); keccak256
stays pycryptodome's, since OpenSSL has SHA3-256 but not Keccak-256.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache

from Crypto.Hash import keccak
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

PUBLIC_KEY_SIZE = 32
SIGNATURE_SIZE = 64
SEED_SIZE = 32
ID_SIZE = 20

# Ed25519's field prime and curve constant d (RFC 8032, 5.1), for key decoding.
_P = 2**255 - 19
_D = -121665 * pow(121666, -1, _P) % _P


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


# -- verification ------------------------------------------------------------------
#
# Every node must accept and reject exactly the same signatures (the ledger is
# consensus-critical), so what is accepted is pinned down here, not left to a
# library. A signature is accepted only if both RFC 8032 verifiers this project
# has used would accept it (docs/decisions/0010):
#
# * OpenSSL checks the cofactorless equation [S]B = R + [k]A, requires S < L and
#   compares R byte for byte with the canonical encoding of [S]B - [k]A.
#   pycryptodome checks the cofactored [8S]B = [8]R + [8k]A, which also accepts
#   signatures whose R or A has a small-order component; OpenSSL's answer is
#   the stricter one, and it is the one taken.
# * OpenSSL decodes A leniently: y is reduced mod p (so y >= p is accepted, e.g.
#   0xee ff .. ff 7f is the identity point), and x = 0 with the sign bit set is
#   taken for x = 0. pycryptodome rejects both, as RFC 8032 5.1.3 says, and so
#   do we (:func:`_verifier`), before OpenSSL sees the key.


def _is_canonical(public_key: bytes) -> bool:
    """RFC 8032 5.1.3's checks that OpenSSL skips: y < p, and no sign bit on x = 0
    (x = 0 exactly when y = 1 or y = p - 1)."""
    n = int.from_bytes(public_key, "little")
    y, x_sign = n & ((1 << 255) - 1), n >> 255
    return y < _P and not (x_sign and y in (1, _P - 1))


def _is_on_curve(public_key: bytes) -> bool:
    """Whether the encoded y has an x on the curve: x^2 = (y^2 - 1) / (d y^2 + 1)
    must be a square mod p (Euler's criterion). ~0.1 ms of Python: only run to
    tell a bad key from a bad signature once OpenSSL has rejected the pair."""
    y = int.from_bytes(public_key, "little") & ((1 << 255) - 1)
    x2 = (y * y - 1) * pow(_D * y * y + 1, -1, _P) % _P
    return x2 == 0 or pow(x2, (_P - 1) // 2, _P) == 1


@lru_cache(maxsize=4096)
def _verifier(public_key: bytes) -> Ed25519PublicKey:
    if not _is_canonical(public_key):
        raise KeyInvalidError("not an Ed25519 public key: a non-canonical encoding")
    return Ed25519PublicKey.from_public_bytes(public_key)


def _verify_message(public_key: bytes, message: bytes, signature: bytes) -> None:
    """RFC 8032 verification of ``message`` itself (no signing domain)."""
    _check_public(public_key)
    if len(signature) != SIGNATURE_SIZE:
        raise SignatureInvalidError(f"a signature is 64 bytes, not {len(signature)}")
    try:
        _verifier(public_key).verify(signature, message)
    except InvalidSignature:
        # OpenSSL rejects a key that is not a point the same way as a bad signature.
        if not _is_on_curve(public_key):
            raise KeyInvalidError("not an Ed25519 public key: not a point of the curve") from None
        raise SignatureInvalidError("the signature does not verify under that key") from None


def verify(public_key: bytes, domain: bytes, payload: bytes, signature: bytes) -> None:
    """Raise :class:`SignatureInvalidError` unless ``signature`` is ``public_key``'s
    signature of ``payload`` in ``domain``; :class:`KeyInvalidError` if
    ``public_key`` is not an Ed25519 public key."""
    _verify_message(public_key, signing_message(domain, payload), signature)


def is_valid_signature(public_key: bytes, domain: bytes, payload: bytes, signature: bytes) -> bool:
    try:
        verify(public_key, domain, payload, signature)
    except (SignatureInvalidError, KeyInvalidError):
        return False
    return True


# -- signing -----------------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    """A private Ed25519 key with its public key, address and node id."""

    seed: bytes = field(repr=False)
    public_key: bytes
    _signer: Ed25519PrivateKey = field(repr=False, compare=False)

    @classmethod
    def generate(cls) -> Identity:
        return cls.from_seed(os.urandom(SEED_SIZE))

    @classmethod
    def from_seed(cls, seed: bytes) -> Identity:
        if len(seed) != SEED_SIZE:
            raise KeyInvalidError(f"an Ed25519 seed is 32 bytes, not {len(seed)}")
        signer = Ed25519PrivateKey.from_private_bytes(bytes(seed))
        return cls(bytes(seed), signer.public_key().public_bytes_raw(), signer)

    @property
    def address(self) -> bytes:
        return address_of(self.public_key)

    @property
    def node_id(self) -> bytes:
        return dht_id(self.public_key)

    def sign(self, domain: bytes, payload: bytes) -> bytes:
        return self._sign_message(signing_message(domain, payload))

    def _sign_message(self, message: bytes) -> bytes:
        """RFC 8032 signature of ``message`` itself (no signing domain)."""
        return self._signer.sign(message)
