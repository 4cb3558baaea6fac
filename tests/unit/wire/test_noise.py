"""Noise XX_25519_AESGCM_SHA256: the published vectors, the primitives, the state rules."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from Crypto.Cipher import AES
from Crypto.Hash import SHA256
from Crypto.Protocol.DH import import_x25519_private_key, import_x25519_public_key, key_agreement
from Crypto.Protocol.KDF import HKDF
from hypothesis import given
from hypothesis import strategies as st

from storenode.wire import noise
from storenode.wire.errors import ConnectionStateError, FrameDecryptError, HandshakeError
from storenode.wire.noise import (
    MAX_NONCE,
    PROTOCOL_NAME,
    CipherState,
    HandshakeState,
    SymmetricState,
    hkdf,
    nonce_bytes,
    x25519,
    x25519_public_key,
)

VECTORS_FILE = Path(__file__).parents[2] / "vectors" / "noise_XX_25519_AESGCM_SHA256.json"
VECTORS: list[dict[str, Any]] = json.loads(VECTORS_FILE.read_text())["vectors"]


def _hex(vector: dict[str, Any], field: str) -> bytes:
    return bytes.fromhex(vector[field])


# -- the published vectors --------------------------------------------------------


def test_vector_file_names_its_source() -> None:
    data = json.loads(VECTORS_FILE.read_text())
    assert "cacophony" in data["source"]
    assert VECTORS
    assert all(v["protocol_name"] == PROTOCOL_NAME.decode() for v in VECTORS)


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["protocol_name"])
def test_cacophony_vector_replays_byte_for_byte(vector: dict[str, Any]) -> None:
    initiator = HandshakeState(
        initiator=True,
        static=_hex(vector, "init_static"),
        ephemeral=_hex(vector, "init_ephemeral"),
        prologue=_hex(vector, "init_prologue"),
    )
    responder = HandshakeState(
        initiator=False,
        static=_hex(vector, "resp_static"),
        ephemeral=_hex(vector, "resp_ephemeral"),
        prologue=_hex(vector, "resp_prologue"),
    )
    messages = vector["messages"]
    handshake, transport = messages[: len(noise.XX)], messages[len(noise.XX) :]

    # Handshake: message i is written by the initiator when i is even.
    for i, message in enumerate(handshake):
        writer, reader = (initiator, responder) if i % 2 == 0 else (responder, initiator)
        payload, ciphertext = bytes.fromhex(message["payload"]), message["ciphertext"]
        assert writer.write_message(payload).hex() == ciphertext, f"message {i}"
        assert reader.read_message(bytes.fromhex(ciphertext)) == payload, f"message {i}"
    assert initiator.complete and responder.complete
    assert initiator.handshake_hash.hex() == vector["handshake_hash"]
    assert responder.handshake_hash.hex() == vector["handshake_hash"]
    assert initiator.remote_static == x25519_public_key(_hex(vector, "resp_static"))
    assert responder.remote_static == x25519_public_key(_hex(vector, "init_static"))

    # Transport: c1 carries initiator -> responder, c2 the other way; the vector's
    # messages keep alternating, starting with the initiator.
    i_c1, i_c2 = initiator.split()
    r_c1, r_c2 = responder.split()
    for i, message in enumerate(transport, start=len(handshake)):
        send, receive = (i_c1, r_c1) if i % 2 == 0 else (r_c2, i_c2)
        payload, ciphertext = bytes.fromhex(message["payload"]), message["ciphertext"]
        assert send.encrypt_with_ad(b"", payload).hex() == ciphertext, f"message {i}"
        assert receive.decrypt_with_ad(b"", bytes.fromhex(ciphertext)) == payload


# -- primitives --------------------------------------------------------------------


def test_x25519_matches_rfc7748_section_6_1() -> None:
    alice = bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
    bob = bytes.fromhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
    alice_public = x25519_public_key(alice)
    bob_public = x25519_public_key(bob)
    assert alice_public.hex() == "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
    assert bob_public.hex() == "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"
    shared = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"
    assert x25519(alice, bob_public).hex() == shared
    assert x25519(bob, alice_public).hex() == shared


_P = 2**255 - 19
#: The u-coordinates of the points of small order of Curve25519 and its twist
#: (cr.yp.to/ecdh.html), also as u + p where that fits in 255 bits, each also
#: with the high bit set (which X25519 ignores): the shared secret is all zeros.
SMALL_ORDER_PUBLIC_KEYS = [
    (u | high << 255).to_bytes(32, "little")
    for u in [
        0,
        1,
        325606250916557431795983626356110631294008115727848805560023387167927233504,
        39382357235489614581723060781553021112529911719440698176882885853963445705823,
        _P - 1,
        _P,
        _P + 1,
    ]
    for high in (0, 1)
]


@pytest.mark.parametrize("public", SMALL_ORDER_PUBLIC_KEYS, ids=lambda k: k.hex()[:8])
def test_x25519_with_a_small_order_public_key_is_a_handshake_error(public: bytes) -> None:
    with pytest.raises(HandshakeError):
        x25519(bytes(range(32)), public)


@given(
    private=st.binary(min_size=32, max_size=32),
    public=st.binary(min_size=32, max_size=32) | st.sampled_from(SMALL_ORDER_PUBLIC_KEYS),
)
def test_x25519_agrees_with_pycryptodome(private: bytes, public: bytes) -> None:
    """OpenSSL computes what pycryptodome (the project's X25519 before decision
    0010) computed, and refuses the same peer keys."""
    pycryptodome_private = import_x25519_private_key(private)
    assert x25519_public_key(private) == pycryptodome_private.public_key().export_key(format="raw")
    try:
        expected = key_agreement(
            static_priv=pycryptodome_private,
            static_pub=import_x25519_public_key(public),
            kdf=bytes,
        )
    except ValueError:
        with pytest.raises(HandshakeError):
            x25519(private, public)
    else:
        assert x25519(private, public) == expected


@given(ck=st.binary(min_size=32, max_size=32), ikm=st.binary(max_size=64))
def test_hkdf_is_rfc5869_with_the_chaining_key_as_salt(ck: bytes, ikm: bytes) -> None:
    reference = HKDF(ikm, 32, ck, SHA256, num_keys=2, context=b"")
    assert hkdf(ck, ikm) == tuple(reference)


def test_a_short_protocol_name_is_padded_into_h_and_ck() -> None:
    state = SymmetricState(PROTOCOL_NAME)
    assert len(PROTOCOL_NAME) == 28
    assert state.h == state.ck == PROTOCOL_NAME + bytes(4)


def test_nonce_is_four_zero_bytes_then_the_counter_big_endian() -> None:
    assert nonce_bytes(0x0102030405060708) == bytes.fromhex("000000000102030405060708")
    key = bytes(range(32))
    cipher = CipherState(key)
    cipher.set_nonce(0x0102030405060708)
    reference = AES.new(key, AES.MODE_GCM, nonce=bytes.fromhex("000000000102030405060708"))
    reference.update(b"ad")
    ciphertext, tag = reference.encrypt_and_digest(b"payload")
    assert cipher.encrypt_with_ad(b"ad", b"payload") == ciphertext + tag
    assert cipher.nonce == 0x0102030405060709


def test_the_reserved_nonce_is_never_used() -> None:
    cipher = CipherState(bytes(32))
    cipher.set_nonce(MAX_NONCE - 1)
    cipher.encrypt_with_ad(b"", b"last")
    with pytest.raises(ConnectionStateError):
        cipher.encrypt_with_ad(b"", b"one too many")
    receiver = CipherState(bytes(32))
    receiver.set_nonce(MAX_NONCE)
    with pytest.raises(ConnectionStateError):
        receiver.decrypt_with_ad(b"", bytes(16))


def test_a_cipher_without_a_key_passes_data_through() -> None:
    cipher = CipherState()
    assert not cipher.has_key
    assert cipher.encrypt_with_ad(b"h", b"clear") == b"clear"
    assert cipher.decrypt_with_ad(b"h", b"clear") == b"clear"


def test_a_failed_decryption_leaves_the_nonce_unchanged() -> None:
    sender, receiver = CipherState(bytes(32)), CipherState(bytes(32))
    ciphertext = bytearray(sender.encrypt_with_ad(b"", b"hello"))
    ciphertext[0] ^= 1
    with pytest.raises(FrameDecryptError):
        receiver.decrypt_with_ad(b"", ciphertext)
    assert receiver.nonce == 0
    ciphertext[0] ^= 1
    assert receiver.decrypt_with_ad(b"", ciphertext) == b"hello"
    with pytest.raises(FrameDecryptError):
        receiver.decrypt_with_ad(b"", bytes(15))


# -- the AES-GCM behind CipherState ---------------------------------------------------


_LENGTHS = st.one_of(st.integers(0, 100), st.sampled_from([4095, 4096, 4097, 65519]))


def _reference_seal(key: bytes, counter: int, ad: bytes, plaintext: bytes) -> bytes:
    """AES-256-GCM by pycryptodome, an implementation independent of OpenSSL's."""
    cipher = AES.new(key, AES.MODE_GCM, nonce=noise.nonce_bytes(counter))
    cipher.update(ad)
    ciphertext, tag = cipher.encrypt_and_digest(plaintext)
    return ciphertext + tag


@given(
    key=st.binary(min_size=32, max_size=32),
    counter=st.one_of(st.integers(0, 2**64 - 2), st.sampled_from([0, 2**32 - 1, 2**32])),
    ad=st.one_of(st.just(b""), st.binary(max_size=70)),
    length=_LENGTHS,
    data=st.data(),
)
def test_the_transport_aes_gcm_agrees_with_an_independent_gcm(
    key: bytes, counter: int, ad: bytes, length: int, data: st.DataObject
) -> None:
    plaintext = data.draw(st.binary(min_size=length, max_size=length))
    ours = bytearray(length + 16)
    aead = noise._AesGcm(key)
    aead.seal_into(counter, ad, plaintext, memoryview(ours))
    assert ours == _reference_seal(key, counter, ad, plaintext)
    assert aead.open(counter, ad, memoryview(ours)) == plaintext
    flipped = bytearray(ours)
    position = data.draw(st.integers(0, len(flipped) * 8 - 1))
    flipped[position // 8] ^= 1 << (position % 8)
    with pytest.raises(FrameDecryptError):
        aead.open(counter, ad, memoryview(flipped))
    with pytest.raises(FrameDecryptError):
        aead.open(counter, ad + b"x", memoryview(ours))
    with pytest.raises(FrameDecryptError):
        aead.open(counter + 1, ad, memoryview(ours))


# -- handshake state ----------------------------------------------------------------


def _pair(prologue_i: bytes = b"p", prologue_r: bytes = b"p") -> tuple[HandshakeState, ...]:
    initiator = HandshakeState(
        initiator=True, static=bytes([1]) * 32, ephemeral=bytes([2]) * 32, prologue=prologue_i
    )
    responder = HandshakeState(
        initiator=False, static=bytes([3]) * 32, ephemeral=bytes([4]) * 32, prologue=prologue_r
    )
    return initiator, responder


def test_a_handshake_gives_matching_transport_ciphers() -> None:
    initiator, responder = _pair()
    responder.read_message(initiator.write_message(b""))
    assert initiator.read_message(responder.write_message(b"two")) == b"two"
    assert responder.read_message(initiator.write_message(b"three")) == b"three"
    i_c1, i_c2 = initiator.split()
    r_c1, r_c2 = responder.split()
    assert r_c1.decrypt_with_ad(b"", i_c1.encrypt_with_ad(b"", b"to responder")) == b"to responder"
    assert i_c2.decrypt_with_ad(b"", r_c2.encrypt_with_ad(b"", b"to initiator")) == b"to initiator"


def test_messages_out_of_turn_are_refused() -> None:
    initiator, responder = _pair()
    with pytest.raises(ConnectionStateError):
        responder.write_message(b"")
    with pytest.raises(ConnectionStateError):
        initiator.read_message(bytes(32))
    with pytest.raises(ConnectionStateError):
        initiator.split()
    message = initiator.write_message(b"")
    with pytest.raises(ConnectionStateError):
        initiator.write_message(b"")
    responder.read_message(message)
    initiator.read_message(responder.write_message(b""))
    responder.read_message(initiator.write_message(b""))
    for state in (initiator, responder):
        with pytest.raises(ConnectionStateError):
            state.write_message(b"")
        with pytest.raises(ConnectionStateError):
            state.read_message(b"")
        state.split()
        with pytest.raises(ConnectionStateError):
            state.split()  # a second pair of ciphers would reuse nonces


def test_a_different_prologue_fails_the_handshake() -> None:
    initiator, responder = _pair(b"storenode/1", b"storenode/2")
    responder.read_message(initiator.write_message(b""))
    with pytest.raises(HandshakeError):
        initiator.read_message(responder.write_message(b""))


def test_a_failed_read_poisons_the_handshake() -> None:
    initiator, responder = _pair()
    responder.read_message(initiator.write_message(b""))
    message = bytearray(responder.write_message(b""))
    message[40] ^= 0x80
    with pytest.raises(HandshakeError):
        initiator.read_message(message)
    with pytest.raises(ConnectionStateError):
        initiator.read_message(message)
    with pytest.raises(ConnectionStateError):
        initiator.write_message(b"")


@pytest.mark.parametrize("length", [0, 31, 32 + 48 - 1, 32 + 48 + 15])
def test_a_truncated_second_message_is_a_handshake_error(length: int) -> None:
    initiator, responder = _pair()
    responder.read_message(initiator.write_message(b""))
    message = responder.write_message(b"")
    with pytest.raises(HandshakeError):
        initiator.read_message(message[:length])


def test_a_small_order_ephemeral_key_fails_the_handshake() -> None:
    initiator, responder = _pair()
    initiator.write_message(b"")
    responder.read_message(bytes(32))  # e = 0: read, then refused at the ee token
    with pytest.raises(HandshakeError):
        responder.write_message(b"")
    with pytest.raises(ConnectionStateError):
        responder.write_message(b"")


@given(garbage=st.binary(max_size=300), index=st.integers(0, 1))
def test_garbage_handshake_messages_raise_only_handshake_errors(garbage: bytes, index: int) -> None:
    initiator, responder = _pair()
    if index == 0:
        try:
            responder.read_message(garbage)
            responder.write_message(b"")
        except HandshakeError:
            return
        assert len(garbage) >= 32
    else:
        responder.read_message(initiator.write_message(b""))
        with pytest.raises(HandshakeError):
            initiator.read_message(garbage)
