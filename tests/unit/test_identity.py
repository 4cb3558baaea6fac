"""Ed25519 identities: RFC 8032 vectors, and OpenSSL against pycryptodome.

Signing and verification run on OpenSSL (through ``cryptography``); pycryptodome,
which the project used before (docs/decisions/0010), is the independent oracle
here. Every node must agree on which signatures are valid, so :func:`verify`
accepts exactly what *both* libraries accept; the edge cases where they differ
are built below with a small reference implementation of the curve.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest
from Crypto.PublicKey import ECC
from Crypto.Signature import eddsa
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from hypothesis import given
from hypothesis import strategies as st

from storenode.identity import (
    Identity,
    KeyInvalidError,
    SignatureInvalidError,
    _verify_message,
    is_valid_signature,
    signing_message,
    verify,
)

DOMAIN = b"storenode/test"

# -- RFC 8032, section 7.1 -----------------------------------------------------------

RFC8032_7_1 = [
    pytest.param(
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
        "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
        id="TEST 1",
    ),
    pytest.param(
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
        "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
        id="TEST 2",
    ),
    pytest.param(
        "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "af82",
        "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac"
        "18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
        id="TEST 3",
    ),
]


@pytest.mark.parametrize(("secret", "public", "message", "signature"), RFC8032_7_1)
def test_rfc8032_vectors(secret: str, public: str, message: str, signature: str) -> None:
    identity = Identity.from_seed(bytes.fromhex(secret))
    assert identity.public_key.hex() == public
    assert identity._sign_message(bytes.fromhex(message)).hex() == signature
    _verify_message(identity.public_key, bytes.fromhex(message), bytes.fromhex(signature))
    with pytest.raises(SignatureInvalidError):
        _verify_message(
            identity.public_key, bytes.fromhex(message) + b"\x00", bytes.fromhex(signature)
        )


# -- a reference Ed25519, to build the edge cases (RFC 8032, 5.1) --------------------

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = -121665 * pow(121666, -1, P) % P
Point = tuple[int, int]
IDENTITY_POINT: Point = (0, 1)


def _x_of(y: int, sign: int) -> int | None:
    x2 = (y * y - 1) * pow(D * y * y + 1, -1, P) % P
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P:
        x = x * pow(2, (P - 1) // 4, P) % P
    if (x * x - x2) % P:
        return None
    return P - x if x & 1 != sign else x


def _add(a: Point, b: Point) -> Point:
    (x1, y1), (x2, y2) = a, b
    t = D * x1 * x2 * y1 * y2 % P
    return (x1 * y2 + x2 * y1) * pow(1 + t, -1, P) % P, (y1 * y2 + x1 * x2) * pow(1 - t, -1, P) % P


def _mul(k: int, point: Point) -> Point:
    result = IDENTITY_POINT
    while k:
        if k & 1:
            result = _add(result, point)
        point, k = _add(point, point), k >> 1
    return result


def _encode(point: Point) -> bytes:
    return (point[1] | (point[0] & 1) << 255).to_bytes(32, "little")


def _raw(y: int, sign: int = 0) -> bytes:
    """Any y (also y >= p) with any sign bit: encodings a decoder must judge."""
    return (y | sign << 255).to_bytes(32, "little")


def _decode(encoding: str) -> Point:
    n = int.from_bytes(bytes.fromhex(encoding), "little")
    x = _x_of(n & (2**255 - 1), n >> 255)
    assert x is not None
    return x, n & (2**255 - 1)


B = _decode("5866666666666666666666666666666666666666666666666666666666666666")
T8 = _decode("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a")  # order 8
TORSION: list[Point] = [_mul(i, T8) for i in range(8)]  # the 8 points of small order


def _k(r_enc: bytes, a_enc: bytes, message: bytes) -> int:
    return int.from_bytes(hashlib.sha512(r_enc + a_enc + message).digest(), "little") % L


def _order(point: Point) -> int:
    return next(n for n in (1, 2, 4, 8) if _mul(n, point) == IDENTITY_POINT)


def _forge(a_enc: bytes, torsion: Point, message: bytes, cofactorless: bool) -> bytes:
    """A signature under a key whose point is ``torsion`` (small order, no secret
    needed): R = [r]B, S = r, so [S]B = R, and R + [k]A = R exactly when k is a
    multiple of A's order. ``cofactorless`` picks r so that it is (both libraries
    accept) or is not (only the cofactored check, pycryptodome's, accepts)."""
    order = _order(torsion)
    for r in range(1, 1000):
        r_enc = _encode(_mul(r, B))
        if (_k(r_enc, a_enc, message) % order == 0) == cofactorless:
            return r_enc + r.to_bytes(32, "little")
    raise AssertionError("no r found")  # each r has a chance of 1/order or better


def _secret_scalar(seed: bytes) -> int:
    """RFC 8032 5.1.5: the secret scalar of a seed."""
    h = bytearray(hashlib.sha512(seed).digest()[:32])
    h[0] &= 248
    h[31] = h[31] & 127 | 64
    return int.from_bytes(h, "little")


def _sign_shifted(secret: int, a_point: Point, torsion: Point, message: bytes) -> bytes:
    """A signature by the owner of ``secret`` whose R carries a small-order component."""
    r = 0x1234567
    r_enc = _encode(_add(_mul(r, B), torsion))
    s = (r + _k(r_enc, _encode(a_point), message) * secret) % L
    return r_enc + s.to_bytes(32, "little")


def test_the_reference_curve() -> None:
    assert _mul(L, B) == IDENTITY_POINT and B != IDENTITY_POINT
    assert [_order(t) for t in TORSION] == [1, 8, 4, 8, 2, 8, 4, 8]
    assert _encode(TORSION[6]) == bytes(32)  # the all-zero key has order 4
    assert Identity.from_seed(bytes(32)).public_key == _encode(_mul(_secret_scalar(bytes(32)), B))


# -- the oracles ---------------------------------------------------------------------


def _pycryptodome_sign(seed: bytes, message: bytes) -> bytes:
    return bytes(eddsa.new(ECC.construct(curve="Ed25519", seed=seed), "rfc8032").sign(message))


def _pycryptodome_key_ok(public_key: bytes) -> bool:
    try:
        eddsa.import_public_key(public_key)
    except ValueError:
        return False
    return True


def _pycryptodome_accepts(public_key: bytes, message: bytes, signature: bytes) -> bool:
    try:
        eddsa.new(eddsa.import_public_key(public_key), "rfc8032").verify(message, signature)
    except ValueError:
        return False
    return True


def _openssl_accepts(public_key: bytes, message: bytes, signature: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except InvalidSignature:
        return False
    return True


def _ours(public_key: bytes, payload: bytes, signature: bytes) -> str:
    try:
        verify(public_key, DOMAIN, payload, signature)
    except KeyInvalidError:
        return "bad key"
    except SignatureInvalidError:
        return "bad signature"
    return "valid"


# -- OpenSSL signs as pycryptodome did -----------------------------------------------


@given(seed=st.binary(min_size=32, max_size=32), payload=st.binary(max_size=300))
def test_signatures_are_byte_identical_to_pycryptodome(seed: bytes, payload: bytes) -> None:
    identity = Identity.from_seed(seed)
    message = signing_message(DOMAIN, payload)
    signature = identity.sign(DOMAIN, payload)
    assert signature == _pycryptodome_sign(seed, message)
    pycryptodome_key = ECC.construct(curve="Ed25519", seed=seed).public_key()
    assert identity.public_key == pycryptodome_key.export_key(format="raw")
    assert _pycryptodome_accepts(identity.public_key, message, signature)
    verify(identity.public_key, DOMAIN, payload, signature)


@given(
    seed=st.binary(min_size=32, max_size=32),
    payload=st.binary(max_size=100),
    bit=st.integers(0, 64 * 8 - 1),
)
def test_a_flipped_bit_is_rejected_by_both(seed: bytes, payload: bytes, bit: int) -> None:
    identity = Identity.from_seed(seed)
    signature = bytearray(identity.sign(DOMAIN, payload))
    signature[bit // 8] ^= 1 << (bit % 8)
    assert not _pycryptodome_accepts(
        identity.public_key, signing_message(DOMAIN, payload), bytes(signature)
    )
    assert _ours(identity.public_key, payload, bytes(signature)) == "bad signature"


@given(seed=st.binary(min_size=32, max_size=32), payload=st.binary(max_size=100))
def test_a_non_canonical_s_is_rejected_by_both(seed: bytes, payload: bytes) -> None:
    identity = Identity.from_seed(seed)
    signature = identity.sign(DOMAIN, payload)
    s_plus_l = int.from_bytes(signature[32:], "little") + L  # the same S mod L
    forged = signature[:32] + s_plus_l.to_bytes(32, "little")
    message = signing_message(DOMAIN, payload)
    assert not _pycryptodome_accepts(identity.public_key, message, forged)
    assert not _openssl_accepts(identity.public_key, message, forged)
    assert _ours(identity.public_key, payload, forged) == "bad signature"


@given(
    public_key=st.binary(min_size=32, max_size=32), signature=st.binary(min_size=64, max_size=64)
)
def test_any_32_bytes_are_a_key_for_us_exactly_when_they_are_for_pycryptodome(
    public_key: bytes, signature: bytes
) -> None:
    expected = "bad signature" if _pycryptodome_key_ok(public_key) else "bad key"
    assert _ours(public_key, b"payload", signature) == expected


@given(
    seed=st.binary(min_size=32, max_size=32),
    payload=st.binary(max_size=100),
    torsion=st.sampled_from(TORSION[1:]),
)
def test_a_small_order_component_in_r_is_rejected(
    seed: bytes, payload: bytes, torsion: Point
) -> None:
    """pycryptodome's cofactored check accepts it, OpenSSL's cofactorless one
    does not; we reject it."""
    secret = _secret_scalar(seed)
    a_point = _mul(secret, B)
    message = signing_message(DOMAIN, payload)
    signature = _sign_shifted(secret, a_point, torsion, message)
    public_key = _encode(a_point)
    assert public_key == Identity.from_seed(seed).public_key
    assert _pycryptodome_accepts(public_key, message, signature)
    assert not _openssl_accepts(public_key, message, signature)
    assert _ours(public_key, payload, signature) == "bad signature"


# -- the edge cases, one by one -------------------------------------------------------

PAYLOAD = b"a payload"
MESSAGE = signing_message(DOMAIN, PAYLOAD)


def _edge_cases() -> Iterator[object]:
    """(public key, signature, pycryptodome accepts, OpenSSL accepts, our verdict)."""
    valid = Identity.from_seed(bytes(range(32)))
    signature = valid.sign(DOMAIN, PAYLOAD)
    yield pytest.param(valid.public_key, signature, True, True, "valid", id="valid")

    for i, point in enumerate(TORSION):
        key = _encode(point)
        name = {0: "identity point 01 00..00", 6: "all-zero key"}.get(i, f"small-order key {i}T8")
        # Both accept a signature that anyone can make for a small-order key, as
        # long as it satisfies the cofactorless equation.
        yield pytest.param(
            key, _forge(key, point, MESSAGE, True), True, True, "valid", id=f"{name}, forged"
        )
        if point != IDENTITY_POINT:
            yield pytest.param(
                key,
                _forge(key, point, MESSAGE, False),
                True,
                False,
                "bad signature",
                id=f"{name}, forged, cofactored check only",
            )

    # Non-canonical encodings of small-order points: OpenSSL reduces y mod p and
    # takes x = 0 with the sign bit for x = 0; pycryptodome (RFC 8032) refuses.
    for key, point, name in [
        (_raw(P + 1), IDENTITY_POINT, "identity as y = p + 1"),
        (_raw(P + 1, 1), IDENTITY_POINT, "identity as y = p + 1 with the sign bit"),
        (_raw(1, 1), IDENTITY_POINT, "identity with the sign bit (x = -0)"),
        (_raw(P - 1, 1), (0, P - 1), "(0, -1) with the sign bit (x = -0)"),
        (_raw(P), TORSION[6], "all-zero key as y = p"),
        (_raw(P, 1), TORSION[2], "all-zero key as y = p with the sign bit"),
    ]:
        yield pytest.param(key, _forge(key, point, MESSAGE, True), False, True, "bad key", id=name)

    # A key with a small-order component, signed by the owner of its prime-order
    # part: the cofactorless equation fails unless 8 divides k.
    secret = 0xC0FFEE
    shifted_key = _encode(_add(_mul(secret, B), T8))
    r = next(r for r in range(1, 100) if _k(_encode(_mul(r, B)), shifted_key, MESSAGE) % 8)
    r_enc = _encode(_mul(r, B))
    mixed = r_enc + ((r + _k(r_enc, shifted_key, MESSAGE) * secret) % L).to_bytes(32, "little")
    yield pytest.param(shifted_key, mixed, True, False, "bad signature", id="mixed-order key")

    # R = the identity point, S = 0: valid under the identity key; written with a
    # non-canonical R (y = p + 1), valid for neither.
    identity_key = _encode(IDENTITY_POINT)
    yield pytest.param(
        identity_key, _raw(P + 1) + bytes(32), False, False, "bad signature", id="non-canonical R"
    )
    yield pytest.param(
        identity_key, _raw(1) + L.to_bytes(32, "little"), False, False, "bad signature", id="S = L"
    )

    off_curve = next(y for y in range(2, 100) if _x_of(y, 0) is None)
    yield pytest.param(_raw(off_curve), signature, False, False, "bad key", id="key off the curve")
    yield pytest.param(
        valid.public_key,
        _raw(off_curve) + signature[32:],
        False,
        False,
        "bad signature",
        id="R off the curve",
    )


@pytest.mark.parametrize(
    ("public_key", "signature", "pycryptodome", "openssl", "ours"), list(_edge_cases())
)
def test_edge_cases_are_accepted_only_if_both_libraries_accept(
    public_key: bytes, signature: bytes, pycryptodome: bool, openssl: bool, ours: str
) -> None:
    assert _pycryptodome_accepts(public_key, MESSAGE, signature) == pycryptodome
    assert _openssl_accepts(public_key, MESSAGE, signature) == openssl
    assert _ours(public_key, PAYLOAD, signature) == ours
    assert (ours == "valid") == (pycryptodome and openssl)
    assert is_valid_signature(public_key, DOMAIN, PAYLOAD, signature) == (ours == "valid")


# -- the API's other errors -------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 31, 33])
def test_a_key_of_the_wrong_size_is_a_key_error(size: int) -> None:
    with pytest.raises(KeyInvalidError):
        verify(bytes(size), DOMAIN, b"", bytes(64))


def test_a_signature_of_the_wrong_size_is_a_signature_error() -> None:
    identity = Identity.from_seed(bytes(32))
    with pytest.raises(SignatureInvalidError):
        verify(identity.public_key, DOMAIN, b"", identity.sign(DOMAIN, b"")[:63])


def test_a_seed_of_the_wrong_size_is_a_key_error() -> None:
    with pytest.raises(KeyInvalidError):
        Identity.from_seed(bytes(31))


def test_a_signature_does_not_verify_in_another_domain() -> None:
    identity = Identity.from_seed(bytes(32))
    signature = identity.sign(DOMAIN, b"payload")
    assert not is_valid_signature(identity.public_key, b"storenode/other", b"payload", signature)
