"""WireConnection: two sans-IO cores wired together with no network, and a raw
Noise peer (built from the spec's objects, as any Noise library would be) that
can send what a well-behaved node never would."""

from __future__ import annotations

import os
import random

import hypothesis
import pytest
from hypothesis import given
from hypothesis import strategies as st

from storenode.identity import Identity, verify
from storenode.wire.connection import (
    IDENTITY_DOMAIN,
    MAX_FIRST_FRAME_BODY,
    MAX_FRAME_PLAINTEXT,
    MAX_MESSAGE_SIZE,
    PROLOGUE,
    ConnectionEnded,
    Event,
    HandshakeComplete,
    MessageReceived,
    Role,
    WireConnection,
)
from storenode.wire.errors import (
    ConnectionStateError,
    FrameDecryptError,
    FrameMalformedError,
    FrameTooLargeError,
    HandshakeError,
    IdentityProofInvalidError,
    MessageTooLargeError,
    PeerKeyMismatchError,
    WireError,
)
from storenode.wire.noise import CipherState, HandshakeState, x25519_public_key

ALICE = Identity.from_seed(bytes([0xA1]) * 32)
BOB = Identity.from_seed(bytes([0xB0]) * 32)
CAROL = Identity.from_seed(bytes([0xC4]) * 32)


# -- helpers ----------------------------------------------------------------------


def connect(
    a_expects: bytes | None = None, b_expects: bytes | None = None
) -> tuple[WireConnection, WireConnection]:
    """An initiator (Alice) and a responder (Bob) after a complete handshake."""
    a = WireConnection(ALICE, Role.INITIATOR, expected_peer=a_expects)
    b = WireConnection(BOB, Role.RESPONDER, expected_peer=b_expects)
    assert b.start() == b""
    b.receive_data(a.start())
    assert b.next_event() is None
    a.receive_data(b.data_to_send())
    assert a.next_event() == HandshakeComplete(BOB.public_key)
    b.receive_data(a.data_to_send())
    assert b.next_event() == HandshakeComplete(ALICE.public_key)
    return a, b


def drain(conn: WireConnection) -> list[Event]:
    events: list[Event] = []
    while (event := conn.next_event()) is not None:
        events.append(event)
        if isinstance(event, ConnectionEnded):
            break
    return events


def bodies(events: list[Event]) -> list[bytes | bytearray]:
    return [e.body for e in events if isinstance(e, MessageReceived)]


def feed_in_pieces(conn: WireConnection, data: bytes, cuts: list[int]) -> list[Event]:
    """Feed ``data`` cut at ``cuts``, draining events after every piece."""
    events: list[Event] = []
    start = 0
    for cut in [*sorted({c for c in cuts if 0 < c < len(data)}), len(data)]:
        if cut == start:  # nothing left (empty data): never feed b"", that is the end
            break
        conn.receive_data(data[start:cut])
        start = cut
        events += drain(conn)
    return events


def framed(message: bytes) -> bytes:
    return len(message).to_bytes(2, "big") + message


class RawPeer:
    """One side of the handshake from noise.HandshakeState with hand-made framing;
    after the handshake it can frame any plaintext it likes."""

    def __init__(
        self,
        identity: Identity,
        *,
        initiator: bool,
        prologue: bytes = PROLOGUE,
        proof: bytes | None = None,
    ) -> None:
        self.identity = identity
        self.initiator = initiator
        self.static = os.urandom(32)
        self.handshake = HandshakeState(
            initiator=initiator, static=self.static, ephemeral=os.urandom(32), prologue=prologue
        )
        static_public = x25519_public_key(self.static)
        self.proof = (
            identity.public_key + identity.sign(IDENTITY_DOMAIN, static_public)
            if proof is None
            else proof
        )
        self.send: CipherState | None = None
        self.recv: CipherState | None = None

    def write(self, payload: bytes | None = None) -> bytes:
        message = self.handshake.write_message(self.proof if payload is None else payload)
        self._maybe_split()
        return framed(message)

    def read(self, data: bytes) -> bytes:
        length = int.from_bytes(data[:2], "big")
        assert len(data) == 2 + length
        payload = self.handshake.read_message(data[2:])
        self._maybe_split()
        return payload

    def _maybe_split(self) -> None:
        if self.handshake.complete:
            c1, c2 = self.handshake.split()
            self.send, self.recv = (c1, c2) if self.initiator else (c2, c1)

    def frame(self, plaintext: bytes) -> bytes:
        assert self.send is not None
        return framed(self.send.encrypt_with_ad(b"", plaintext))

    def message(self, body: bytes) -> bytes:
        """A message framed as the spec says (maximal frames)."""
        first = len(body).to_bytes(4, "big") + body[:MAX_FIRST_FRAME_BODY]
        out = self.frame(first)
        for start in range(MAX_FIRST_FRAME_BODY, len(body), MAX_FRAME_PLAINTEXT):
            out += self.frame(body[start : start + MAX_FRAME_PLAINTEXT])
        return out


def raw_initiator_to(responder: WireConnection, peer: RawPeer) -> None:
    """Complete a handshake between a raw initiator and a WireConnection responder."""
    responder.start()
    responder.receive_data(peer.write(b""))
    assert responder.next_event() is None
    peer.read(responder.data_to_send())
    responder.receive_data(peer.write())
    assert responder.next_event() == HandshakeComplete(peer.identity.public_key)


def assert_refuses_everything(conn: WireConnection) -> None:
    assert conn.failed
    calls = [
        lambda: conn.receive_data(b"x"),
        lambda: conn.receive_data(b""),
        conn.next_event,
        conn.data_to_send,
        lambda: conn.send_message(b"x"),
        conn.start,
    ]
    for call in calls:
        with pytest.raises(ConnectionStateError):
            call()


# -- handshake ----------------------------------------------------------------------


def test_handshake_proves_both_ed25519_identities() -> None:
    a, b = connect()
    assert a.peer_key == BOB.public_key and b.peer_key == ALICE.public_key
    assert a.handshake_complete and b.handshake_complete
    assert not a.failed and not b.failed
    assert a.handshake_hash == b.handshake_hash


def test_handshake_bytes_have_the_specified_lengths() -> None:
    a = WireConnection(ALICE, Role.INITIATOR)
    b = WireConnection(BOB, Role.RESPONDER)
    b.start()
    first = a.start()
    assert first[:2] == (32).to_bytes(2, "big") and len(first) == 2 + 32
    b.receive_data(first)
    assert b.next_event() is None
    second = b.data_to_send()
    assert second[:2] == (32 + 48 + 96 + 16).to_bytes(2, "big") and len(second) == 2 + 192
    assert b.data_to_send() == b""  # drained
    a.receive_data(second)
    assert isinstance(a.next_event(), HandshakeComplete)
    third = a.data_to_send()
    assert third[:2] == (48 + 96 + 16).to_bytes(2, "big") and len(third) == 2 + 160


def test_injected_keys_make_the_handshake_deterministic() -> None:
    keys = {"static": bytes([5]) * 32, "ephemeral": bytes([6]) * 32}
    first = WireConnection(ALICE, Role.INITIATOR, **keys).start()
    assert first == WireConnection(ALICE, Role.INITIATOR, **keys).start()
    assert first[2:] == x25519_public_key(keys["ephemeral"])


def test_a_standard_noise_responder_sees_the_specified_identity_payload() -> None:
    a = WireConnection(ALICE, Role.INITIATOR)
    peer = RawPeer(BOB, initiator=False)
    assert peer.read(a.start()) == b""  # message 1: empty payload
    a.receive_data(peer.write())
    assert a.next_event() == HandshakeComplete(BOB.public_key)
    proof = peer.read(a.data_to_send())
    assert len(proof) == 96 and proof[:32] == ALICE.public_key
    remote_static = peer.handshake.remote_static
    assert remote_static is not None
    verify(ALICE.public_key, b"storenode/noise-static-key", remote_static, proof[32:])
    # And messages flow both ways with the raw peer.
    a.receive_data(peer.message(b"from a raw peer"))
    assert a.next_event() == MessageReceived(b"from a raw peer")


def test_expected_peer_that_matches_completes() -> None:
    a, b = connect(a_expects=BOB.public_key, b_expects=ALICE.public_key)
    assert a.peer_key == BOB.public_key and b.peer_key == ALICE.public_key


def test_initiator_refuses_a_responder_with_another_key() -> None:
    a = WireConnection(ALICE, Role.INITIATOR, expected_peer=CAROL.public_key)
    b = WireConnection(BOB, Role.RESPONDER)
    b.start()
    b.receive_data(a.start())
    b.next_event()
    a.receive_data(b.data_to_send())
    with pytest.raises(PeerKeyMismatchError):
        a.next_event()
    assert a.peer_key is None and not a.handshake_complete
    assert_refuses_everything(a)


def test_responder_refuses_an_initiator_with_another_key() -> None:
    a = WireConnection(ALICE, Role.INITIATOR)
    b = WireConnection(BOB, Role.RESPONDER, expected_peer=CAROL.public_key)
    b.start()
    b.receive_data(a.start())
    b.next_event()
    a.receive_data(b.data_to_send())
    assert isinstance(a.next_event(), HandshakeComplete)
    b.receive_data(a.data_to_send())
    with pytest.raises(PeerKeyMismatchError):
        b.next_event()
    assert_refuses_everything(b)


def _forged_proofs() -> dict[str, bytes]:
    static = os.urandom(32)  # not the static key the forger will use
    bob_over_other_static = BOB.sign(IDENTITY_DOMAIN, x25519_public_key(static))
    return {
        "carol-signs-for-bob": BOB.public_key + CAROL.sign(IDENTITY_DOMAIN, bytes(32)),
        "signature-over-another-static-key": BOB.public_key + bob_over_other_static,
        "wrong-domain": BOB.public_key + BOB.sign(b"storenode/other", bytes(32)),
        "95-bytes": BOB.public_key + bytes(63),
        "97-bytes": BOB.public_key + bytes(65),
        "empty": b"",
        "not-a-public-key": b"\xff" * 32 + bytes(64),
    }


@pytest.mark.parametrize("name", list(_forged_proofs()))
def test_initiator_refuses_a_forged_identity_proof(name: str) -> None:
    a = WireConnection(ALICE, Role.INITIATOR)
    peer = RawPeer(BOB, initiator=False, proof=_forged_proofs()[name])
    peer.read(a.start())
    a.receive_data(peer.write())
    with pytest.raises(IdentityProofInvalidError):
        a.next_event()
    assert_refuses_everything(a)


@pytest.mark.parametrize("name", list(_forged_proofs()))
def test_responder_refuses_a_forged_identity_proof(name: str) -> None:
    b = WireConnection(BOB, Role.RESPONDER)
    peer = RawPeer(ALICE, initiator=True, proof=_forged_proofs()[name])
    b.start()
    b.receive_data(peer.write(b""))
    b.next_event()
    peer.read(b.data_to_send())
    b.receive_data(peer.write())
    with pytest.raises(IdentityProofInvalidError):
        b.next_event()
    assert_refuses_everything(b)


def test_a_proof_signed_over_the_right_static_key_by_the_claimed_key_passes() -> None:
    # The control for the forgeries above: the RawPeer's default proof.
    b = WireConnection(BOB, Role.RESPONDER)
    raw_initiator_to(b, RawPeer(ALICE, initiator=True))
    assert b.peer_key == ALICE.public_key


def test_a_different_prologue_fails_the_handshake_on_both_sides() -> None:
    a = WireConnection(ALICE, Role.INITIATOR, prologue=b"storenode/2")
    b = WireConnection(BOB, Role.RESPONDER)
    b.start()
    b.receive_data(a.start())
    assert b.next_event() is None
    a.receive_data(b.data_to_send())
    with pytest.raises(HandshakeError):
        a.next_event()
    assert_refuses_everything(a)
    b.receive_data(b"")  # a hangs up
    with pytest.raises(HandshakeError):
        b.next_event()
    assert_refuses_everything(b)


def test_message_1_must_carry_an_empty_payload() -> None:
    b = WireConnection(BOB, Role.RESPONDER)
    b.start()
    b.receive_data(RawPeer(ALICE, initiator=True).write(b"hello"))
    with pytest.raises(HandshakeError):
        b.next_event()


@pytest.mark.parametrize("length", [0, 1, 31])
def test_a_short_first_message_is_refused_from_its_length_alone(length: int) -> None:
    b = WireConnection(BOB, Role.RESPONDER)
    b.start()
    b.receive_data(length.to_bytes(2, "big"))
    with pytest.raises(HandshakeError):
        b.next_event()


@pytest.mark.parametrize("cut", [0, 1, 2, 20, 34 + 100])
def test_end_of_stream_during_the_handshake_is_a_handshake_error(cut: int) -> None:
    a = WireConnection(ALICE, Role.INITIATOR)
    b = WireConnection(BOB, Role.RESPONDER)
    b.start()
    b.receive_data(a.start())
    b.next_event()
    a.receive_data(b.data_to_send()[:cut])
    a.receive_data(b"")
    with pytest.raises(HandshakeError):
        a.next_event()
    assert_refuses_everything(a)


def test_send_message_before_the_handshake_is_refused_without_failing() -> None:
    a = WireConnection(ALICE, Role.INITIATOR)
    with pytest.raises(ConnectionStateError):
        a.send_message(b"early")
    with pytest.raises(ConnectionStateError):
        a.next_event()  # before start()
    a.start()
    with pytest.raises(ConnectionStateError):
        a.start()
    with pytest.raises(ConnectionStateError):
        a.send_message(b"early")
    assert not a.failed


def test_initiator_may_send_before_flushing_message_3() -> None:
    """send_message puts the queued handshake bytes first, so the order holds."""
    a = WireConnection(ALICE, Role.INITIATOR)
    b = WireConnection(BOB, Role.RESPONDER)
    b.start()
    b.receive_data(a.start())
    b.next_event()
    a.receive_data(b.data_to_send())
    assert isinstance(a.next_event(), HandshakeComplete)
    b.receive_data(a.send_message(b"first"))
    assert a.data_to_send() == b""
    assert drain(b) == [HandshakeComplete(ALICE.public_key), MessageReceived(b"first")]


# -- messages -------------------------------------------------------------------------

FRAME_BOUNDARY_SIZES = [
    0,
    1,
    MAX_FIRST_FRAME_BODY - 1,
    MAX_FIRST_FRAME_BODY,  # 65,515: fills the first frame exactly
    MAX_FIRST_FRAME_BODY + 1,  # 65,516: one byte in a second frame
    MAX_FRAME_PLAINTEXT,  # 65,519
    MAX_FRAME_PLAINTEXT + 1,  # 65,520
    MAX_FIRST_FRAME_BODY + MAX_FRAME_PLAINTEXT,  # two full frames
    MAX_FIRST_FRAME_BODY + MAX_FRAME_PLAINTEXT + 1,
    1 << 20,
]


def _frames(size: int) -> int:
    return 1 + -(-(size - min(size, MAX_FIRST_FRAME_BODY)) // MAX_FRAME_PLAINTEXT)


@pytest.mark.parametrize("size", FRAME_BOUNDARY_SIZES)
def test_messages_at_frame_boundaries_cross_both_ways(size: int) -> None:
    a, b = connect()
    body = random.Random(size).randbytes(size)
    wire = a.send_message(body)
    assert len(wire) == size + 4 + _frames(size) * (2 + 16)
    b.receive_data(wire)
    assert b.next_event() == MessageReceived(body)
    assert b.next_event() is None
    a.receive_data(b.send_message(body))
    assert a.next_event() == MessageReceived(body)


def test_frames_are_maximal_and_length_prefixed() -> None:
    a, _ = connect()
    wire = a.send_message(bytes(MAX_FIRST_FRAME_BODY + 10))
    assert int.from_bytes(wire[:2], "big") == 65535
    second = 2 + 65535
    assert int.from_bytes(wire[second : second + 2], "big") == 10 + 16
    assert len(wire) == second + 2 + 10 + 16


def test_a_message_of_exactly_8_mib_crosses() -> None:
    a, b = connect()
    body = os.urandom(MAX_MESSAGE_SIZE)
    b.receive_data(a.send_message(memoryview(body)))
    event = b.next_event()
    assert isinstance(event, MessageReceived) and event.body == body


def test_a_message_over_8_mib_is_refused_locally_and_the_connection_lives_on() -> None:
    a, b = connect()
    with pytest.raises(MessageTooLargeError):
        a.send_message(bytes(MAX_MESSAGE_SIZE + 1))
    assert not a.failed
    b.receive_data(a.send_message(b"still here"))
    assert b.next_event() == MessageReceived(b"still here")


def test_many_messages_back_to_back_in_one_read() -> None:
    a, b = connect()
    rng = random.Random(7)
    sent = [rng.randbytes(rng.choice([0, 1, 5, 100, 70_000, 140_000])) for _ in range(60)]
    b.receive_data(b"".join(a.send_message(body) for body in sent))
    assert bodies(drain(b)) == sent
    back = sent[::-1]
    a.receive_data(b"".join(b.send_message(body) for body in back))
    assert bodies(drain(a)) == back


def test_a_memoryview_of_another_format_is_sent_as_its_bytes() -> None:
    a, b = connect()
    body = memoryview(bytearray(range(16))).cast("I")
    b.receive_data(a.send_message(body))
    assert b.next_event() == MessageReceived(bytes(range(16)))


def test_the_whole_session_fed_one_byte_at_a_time() -> None:
    a = WireConnection(ALICE, Role.INITIATOR)
    b = WireConnection(BOB, Role.RESPONDER)
    b.start()
    events = feed_in_pieces(b, a.start(), list(range(100)))
    assert events == []
    second = b.data_to_send()
    assert feed_in_pieces(a, second, list(range(len(second)))) == [
        HandshakeComplete(BOB.public_key)
    ]
    sent = [b"", b"x", os.urandom(70_000)]
    stream = a.data_to_send() + b"".join(a.send_message(m) for m in sent)
    events = feed_in_pieces(b, stream, list(range(len(stream))))
    assert events == [HandshakeComplete(ALICE.public_key), *map(MessageReceived, sent)]


@given(
    sizes=st.lists(st.sampled_from([0, 1, 3, 17, 1000, 65_515, 65_516, 70_000]), max_size=6),
    cut_fraction=st.lists(st.floats(0, 1), max_size=40),
)
def test_any_split_of_the_stream_gives_the_same_events(
    sizes: list[int], cut_fraction: list[float]
) -> None:
    a = WireConnection(ALICE, Role.INITIATOR)
    b = WireConnection(BOB, Role.RESPONDER)
    b.start()
    first = a.start()
    assert feed_in_pieces(b, first, [int(f * len(first)) for f in cut_fraction]) == []
    second = b.data_to_send()
    events = feed_in_pieces(a, second, [int(f * len(second)) for f in cut_fraction])
    assert events == [HandshakeComplete(BOB.public_key)]
    sent = [os.urandom(size) for size in sizes]
    stream = a.data_to_send() + b"".join(a.send_message(m) for m in sent)
    events = feed_in_pieces(b, stream, [int(f * len(stream)) for f in cut_fraction])
    b.receive_data(b"")
    events += drain(b)
    assert events == [
        HandshakeComplete(ALICE.public_key),
        *map(MessageReceived, sent),
        ConnectionEnded(),
    ]


def test_a_reused_receive_buffer_does_not_change_what_was_received() -> None:
    a, b = connect()
    wire = a.send_message(b"hello world")
    buffer = bytearray(wire)
    b.receive_data(memoryview(buffer)[:10])  # the shell reuses its buffer for the next read
    buffer[:10] = bytes(10)
    b.receive_data(buffer[10:])
    assert b.next_event() == MessageReceived(b"hello world")


def test_frames_split_unevenly_by_another_implementation_are_accepted() -> None:
    b = WireConnection(BOB, Role.RESPONDER)
    peer = RawPeer(ALICE, initiator=True)
    raw_initiator_to(b, peer)
    body = os.urandom(100)
    stream = (
        peer.frame((100).to_bytes(4, "big"))
        + peer.frame(body[:10])
        + peer.frame(body[10:99])
        + peer.frame(body[99:])
    )
    b.receive_data(stream)
    assert b.next_event() == MessageReceived(body)


# -- end of stream ---------------------------------------------------------------------


def test_end_of_stream_between_messages_ends_the_connection() -> None:
    a, b = connect()
    b.receive_data(a.send_message(b"bye"))
    b.receive_data(b"")
    assert drain(b) == [MessageReceived(b"bye"), ConnectionEnded()]
    assert b.next_event() == ConnectionEnded()  # and again
    b.receive_data(b"")  # a repeated end of stream is harmless
    with pytest.raises(ConnectionStateError):
        b.receive_data(b"more")
    assert not b.failed
    a.receive_data(b.send_message(b"half-closed: b may still send"))
    assert a.next_event() == MessageReceived(b"half-closed: b may still send")


@pytest.mark.parametrize("cut", [1, 2, 10, 2 + 65535, 2 + 65535 + 1])
def test_end_of_stream_inside_a_frame_or_message_is_a_truncation(cut: int) -> None:
    a, b = connect()
    wire = a.send_message(bytes(MAX_FIRST_FRAME_BODY + 100))
    b.receive_data(wire[:cut])
    b.receive_data(b"")
    with pytest.raises(FrameDecryptError):
        b.next_event()
    assert_refuses_everything(b)


# -- attacks on frames -------------------------------------------------------------------


def test_a_tampered_frame_fails_authentication() -> None:
    a, b = connect()
    wire = bytearray(a.send_message(b"pay 10 tokens"))
    wire[2 + 4] ^= 0x01
    b.receive_data(wire)
    with pytest.raises(FrameDecryptError):
        b.next_event()
    assert_refuses_everything(b)


def test_a_replayed_frame_fails_authentication() -> None:
    a, b = connect()
    wire = a.send_message(b"pay 10 tokens")
    b.receive_data(wire + wire)
    assert b.next_event() == MessageReceived(b"pay 10 tokens")
    with pytest.raises(FrameDecryptError):
        b.next_event()


def test_reordered_frames_fail_authentication() -> None:
    a, b = connect()
    first, second = a.send_message(b"one"), a.send_message(b"two")
    b.receive_data(second + first)
    with pytest.raises(FrameDecryptError):
        b.next_event()


def test_a_frame_with_a_shortened_length_fails_authentication() -> None:
    a, b = connect()
    wire = bytearray(a.send_message(b"0123456789"))
    wire[1] -= 3
    b.receive_data(wire)
    with pytest.raises(FrameDecryptError):
        b.next_event()


@pytest.mark.parametrize("length", [0, 1, 15])
def test_a_frame_shorter_than_its_tag_is_refused(length: int) -> None:
    _, b = connect()
    b.receive_data(length.to_bytes(2, "big") + bytes(length))
    with pytest.raises(FrameTooLargeError):
        b.next_event()
    assert_refuses_everything(b)


def _raw_session() -> tuple[WireConnection, RawPeer]:
    b = WireConnection(BOB, Role.RESPONDER)
    peer = RawPeer(ALICE, initiator=True)
    raw_initiator_to(b, peer)
    return b, peer


@pytest.mark.parametrize("declared", [MAX_MESSAGE_SIZE + 1, 2**32 - 1])
def test_a_declared_message_over_8_mib_is_refused_at_once(declared: int) -> None:
    b, peer = _raw_session()
    b.receive_data(peer.frame(declared.to_bytes(4, "big") + bytes(100)))
    with pytest.raises(MessageTooLargeError):
        b.next_event()
    assert_refuses_everything(b)


def test_a_declared_message_of_exactly_8_mib_is_waited_for() -> None:
    b, peer = _raw_session()
    b.receive_data(peer.frame(MAX_MESSAGE_SIZE.to_bytes(4, "big") + bytes(100)))
    assert b.next_event() is None


@pytest.mark.parametrize(
    "plaintexts",
    [
        [b"\x00\x00\x00"],  # first frame shorter than the length
        [b""],
        [(5).to_bytes(4, "big") + b"123456"],  # first frame past the message's end
        [(5).to_bytes(4, "big") + b"123", b"456"],  # continuation frame past the end
        [(5).to_bytes(4, "big") + b"123", b""],  # empty continuation frame
    ],
    ids=["short-first", "empty-first", "first-overruns", "next-overruns", "empty-next"],
)
def test_frames_that_break_the_message_layout_are_refused(plaintexts: list[bytes]) -> None:
    b, peer = _raw_session()
    b.receive_data(b"".join(peer.frame(p) for p in plaintexts))
    with pytest.raises(FrameMalformedError):
        drain(b)
    assert_refuses_everything(b)


# -- fuzzing the readers -------------------------------------------------------------------

_MUTATIONS = ["flip", "truncate", "replay", "swap", "insert", "random", "length"]


def _mutate(frames: list[bytes], mutation: str, data: st.DataObject) -> list[bytes]:
    frames = list(frames)
    if mutation == "random":
        return [data.draw(st.binary(max_size=400))]
    if mutation == "replay":
        frames.insert(data.draw(st.integers(0, len(frames))), data.draw(st.sampled_from(frames)))
        return frames
    if mutation == "swap" and len(frames) > 1:
        i = data.draw(st.integers(0, len(frames) - 2))
        frames[i], frames[i + 1] = frames[i + 1], frames[i]
        return frames
    stream = bytearray(b"".join(frames))
    position = data.draw(st.integers(0, len(stream) - 1))
    if mutation == "flip":
        stream[position] ^= 1 << data.draw(st.integers(0, 7))
    elif mutation == "truncate":
        del stream[position:]
    elif mutation == "insert":
        stream[position:position] = data.draw(st.binary(min_size=1, max_size=20))
    elif mutation == "length":
        stream[position : position + 2] = data.draw(st.binary(min_size=2, max_size=2))
    return [bytes(stream)]


def _frames_of(conn: WireConnection, body: bytes) -> list[bytes]:
    wire = conn.send_message(body)
    frames: list[bytes] = []
    pos = 0
    while pos < len(wire):
        end = pos + 2 + int.from_bytes(wire[pos : pos + 2], "big")
        frames.append(bytes(wire[pos:end]))
        pos = end
    return frames


def _read_to_the_end(conn: WireConnection, stream: bytes, cuts: list[int]) -> list[Event]:
    """Feed a finite stream then end it. Returns the events if no error; raises the
    WireError otherwise. After the end of stream, next_event never answers None."""
    events = feed_in_pieces(conn, stream, cuts)
    conn.receive_data(b"")
    for _ in range(len(stream) + 2):  # every event consumes bytes: this bounds the loop
        event = conn.next_event()
        assert event is not None
        events.append(event)
        if isinstance(event, ConnectionEnded):
            return events
    raise AssertionError("next_event did not reach the end")


@given(
    sizes=st.lists(st.sampled_from([0, 1, 30, 65_516, 70_000]), min_size=1, max_size=3),
    mutation=st.sampled_from(_MUTATIONS),
    cuts=st.lists(st.integers(0, 300_000), max_size=8),
    data=st.data(),
)
def test_any_damage_to_the_transport_is_a_typed_error_never_a_forgery(
    sizes: list[int], mutation: str, cuts: list[int], data: st.DataObject
) -> None:
    a, b = connect()
    sent = [os.urandom(size) for size in sizes]
    frames = [frame for body in sent for frame in _frames_of(a, body)]
    stream = b"".join(_mutate(frames, mutation, data))
    events: list[Event] = []
    try:
        events = _read_to_the_end(b, stream, cuts)
    except WireError as e:
        hypothesis.event(f"{mutation}: {type(e).__name__}")
        assert_refuses_everything(b)
    # Whatever happened, only messages that were sent came out, in order.
    received = bodies(events)
    assert received == sent[: len(received)]
    if not b"".join(frames).startswith(stream):  # damaged, not merely cut short
        assert b.failed


@given(
    role=st.sampled_from(Role),
    garbage=st.binary(max_size=400),
    cuts=st.lists(st.integers(0, 400), max_size=5),
)
def test_garbage_in_the_handshake_is_a_handshake_error(
    role: Role, garbage: bytes, cuts: list[int]
) -> None:
    conn = WireConnection(ALICE, role)
    conn.start()
    with pytest.raises(HandshakeError):
        _read_to_the_end(conn, garbage, cuts)
    assert_refuses_everything(conn)


def _deliver(conn: WireConnection, wire: bytes) -> tuple[Event | None, bytes]:
    """Hand ``wire`` to ``conn``; if it is left waiting for bytes, end the stream
    (the sender of damaged bytes sends nothing more), which must raise."""
    conn.receive_data(wire)
    event = conn.next_event()
    out = conn.data_to_send()
    if event is None and not out:
        conn.receive_data(b"")
        conn.next_event()
        raise AssertionError("a stalled handshake ended without an error")
    return event, out


@given(message=st.integers(0, 2), data=st.data())
def test_a_flipped_bit_in_any_handshake_message_fails_the_handshake(
    message: int, data: st.DataObject
) -> None:
    a = WireConnection(ALICE, Role.INITIATOR)
    b = WireConnection(BOB, Role.RESPONDER)
    b.start()

    def maybe_flip(index: int, wire: bytes) -> bytes:
        if index != message:
            return wire
        damaged = bytearray(wire)
        position = data.draw(st.integers(0, len(damaged) * 8 - 1))
        damaged[position // 8] ^= 1 << (position % 8)
        return bytes(damaged)

    with pytest.raises(HandshakeError):
        _, second = _deliver(b, maybe_flip(0, a.start()))
        event, third = _deliver(a, maybe_flip(1, second))
        assert event == HandshakeComplete(BOB.public_key)
        _deliver(b, maybe_flip(2, third))
    assert a.failed or b.failed
