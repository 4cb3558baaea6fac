"""RLNC: random packets, recodings and stored shards all decode one stripe, progressively."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from storenode.coding.errors import (
    CodingParamsError,
    NotEnoughShardsError,
    PacketError,
    ShardIndexError,
    ShardSizeError,
)
from storenode.coding.rlnc import Packet, ProgressiveDecoder, random_packet, recode, shard_packet
from storenode.coding.rs import ReedSolomon


def make_blocks(rng: random.Random, k: int, size: int) -> list[bytes]:
    return [rng.randbytes(size) for _ in range(k)]


def feed_until_complete(decoder: ProgressiveDecoder, packets: Any) -> int:
    """Offer packets until the decoder is complete; the number offered."""
    offered = 0
    for packet in packets:
        if decoder.complete:
            break
        decoder.add(packet)
        offered += 1
    return offered


def random_packets(blocks: list[bytes], rng: random.Random) -> Any:
    while True:
        yield random_packet(blocks, rng)


@pytest.fixture(scope="module")
def gf256() -> Any:
    """GF(2^8) with ISA-L's polynomial 0x11D, from galois (the oracle; ~1.5 s to build)."""
    import galois

    return galois.GF(2**8, irreducible_poly=0x11D, primitive_element=2)


def apply_vector(gf: Any, coefficients: bytes, blocks: list[bytes]) -> bytes:
    """sum_j coefficients[j] * blocks[j] over GF(2^8), computed by galois."""
    c = gf(np.frombuffer(coefficients, dtype=np.uint8))
    b = gf(np.frombuffer(b"".join(blocks), dtype=np.uint8).reshape(len(blocks), -1))
    return np.asarray(c @ b, dtype=np.uint8).tobytes()


def gf_rank(gf: Any, vectors: list[bytes], k: int) -> int:
    if not vectors:
        return 0
    m = gf(np.frombuffer(b"".join(vectors), dtype=np.uint8).reshape(len(vectors), k))
    return int(np.linalg.matrix_rank(m))


# -- random packets -------------------------------------------------------------------------------


@pytest.mark.parametrize(("k", "size"), [(1, 1), (1, 100), (2, 3), (4, 1024), (8, 0), (16, 513)])
def test_random_packets_decode_the_exact_blocks(k: int, size: int) -> None:
    rng = random.Random(k * 7919 + size)
    blocks = make_blocks(rng, k, size)
    decoder = ProgressiveDecoder(k)

    offered = feed_until_complete(decoder, random_packets(blocks, rng))

    assert decoder.complete
    assert decoder.rank == k
    assert decoder.received == offered
    assert offered <= k + 2  # almost every random packet is innovative
    assert [bytes(b) for b in decoder.blocks()] == blocks
    assert decoder.stripe() == b"".join(blocks)


def test_random_packets_are_almost_always_innovative() -> None:
    """Over GF(2^8) a random packet is innovative with probability >= 1 - 1/256."""
    rng = random.Random(20240229)
    k, stripes = 8, 200
    extra = 0
    for _ in range(stripes):
        blocks = make_blocks(rng, k, 16)
        decoder = ProgressiveDecoder(k)
        dropped = 0
        while not decoder.complete:
            if not decoder.add(random_packet(blocks, rng)):
                dropped += 1
        assert decoder.received - decoder.rank == dropped
        assert decoder.stripe() == b"".join(blocks)
        extra += decoder.received - k

    # Expected ~0.004 extra packets per stripe; 0.1 leaves a wide margin.
    assert extra / stripes < 0.1


def test_random_packet_payload_is_its_coefficients_applied_to_the_blocks(gf256: Any) -> None:
    rng = random.Random(5)
    blocks = make_blocks(rng, 6, 777)

    for _ in range(20):
        packet = random_packet(blocks, rng)
        assert packet.k == 6
        assert any(packet.coefficients)
        assert bytes(packet.payload) == apply_vector(gf256, packet.coefficients, blocks)


def test_the_same_seed_gives_the_same_packets() -> None:
    """Randomness is an argument, so a simulation or a failing test can be replayed."""
    blocks = make_blocks(random.Random(0), 5, 64)

    def run(seed: int) -> list[tuple[bytes, bytes]]:
        rng = random.Random(seed)
        first = [random_packet(blocks, rng) for _ in range(4)]
        packets = [*first, recode(first, rng), recode(first[:2], rng)]
        return [(p.coefficients, bytes(p.payload)) for p in packets]

    assert run(17) == run(17)
    assert run(17) != run(18)


# -- recoding -------------------------------------------------------------------------------------


@pytest.mark.parametrize("held", [1, 2, 3, 8])
def test_recoded_payload_is_its_composed_coefficients_applied_to_the_blocks(
    gf256: Any, held: int
) -> None:
    rng = random.Random(held)
    blocks = make_blocks(rng, 5, 301)
    rs = ReedSolomon(5, 9)
    shards = rs.encode(blocks)
    # A holder with some random packets and some stored shards.
    packets = [random_packet(blocks, rng) for _ in range(held)]
    packets += [shard_packet(rs, i, shards[i]) for i in range(held % 9, 9, 3)]

    for _ in range(10):
        packet = recode(packets, rng)
        assert packet.k == 5
        assert bytes(packet.payload) == apply_vector(gf256, packet.coefficients, blocks)


def test_recoding_one_packet_sends_a_nonzero_multiple_of_it(gf256: Any) -> None:
    rng = random.Random(1)
    blocks = make_blocks(rng, 3, 50)
    source = random_packet(blocks, rng)

    for _ in range(20):
        packet = recode([source], rng)
        assert any(packet.coefficients)
        decoder = ProgressiveDecoder(3)
        decoder.add(source)
        assert not decoder.add(packet)  # the same information, scaled
        assert bytes(packet.payload) == apply_vector(gf256, packet.coefficients, blocks)


def test_recodings_of_recodings_still_decode() -> None:
    """Two hops: host -> relay -> listener, and the listener sees only second-hop packets."""
    rng = random.Random(2)
    k = 6
    blocks = make_blocks(rng, k, 1000)
    rs = ReedSolomon(k, 10)
    shards = rs.encode(blocks)
    host = [shard_packet(rs, i, shards[i]) for i in (1, 4, 6, 7, 8, 9)]
    relay = [recode(host, rng) for _ in range(k + 1)]
    decoder = ProgressiveDecoder(k)

    offered = feed_until_complete(decoder, (recode(relay, rng) for _ in range(3 * k)))

    assert decoder.complete
    assert offered <= k + 2
    assert decoder.stripe() == b"".join(blocks)


@pytest.mark.parametrize("rank", [1, 3, 5, 7])
def test_recodings_never_exceed_the_rank_of_what_the_holder_has(rank: int) -> None:
    """A holder cannot create information it does not have."""
    rng = random.Random(rank)
    k = 8
    blocks = make_blocks(rng, k, 64)
    basis = [random_packet(blocks, rng) for _ in range(rank)]
    # The holder also keeps a combination of what it has: more packets, no more rank.
    holding = [*basis, recode(basis, rng), basis[0]]
    check = ProgressiveDecoder(k)
    assert sum(check.add(p) for p in holding) == rank

    decoder = ProgressiveDecoder(k)
    for _ in range(40):
        decoder.add(recode(holding, rng))

    assert decoder.rank == rank
    assert decoder.received == 40
    assert not decoder.complete
    with pytest.raises(NotEnoughShardsError):
        decoder.blocks()


def test_recodings_from_two_holders_add_up_to_the_rank_of_their_union() -> None:
    rng = random.Random(3)
    k = 8
    blocks = make_blocks(rng, k, 32)
    rs = ReedSolomon(k, 16)
    shards = rs.encode(blocks)
    first = [shard_packet(rs, i, shards[i]) for i in (0, 1, 2, 9, 10)]
    second = [shard_packet(rs, i, shards[i]) for i in (2, 9, 12)]  # two shared with the first
    decoder = ProgressiveDecoder(k)

    for _ in range(20):
        decoder.add(recode(first, rng))
        decoder.add(recode(second, rng))

    assert decoder.rank == 6


# -- mixing stored shards and recodings -----------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(
    k=st.integers(1, 12),
    extra=st.integers(0, 8),
    size=st.integers(0, 300),
    seed=st.integers(0, 2**32 - 1),
    told_the_code=st.booleans(),
    data=st.data(),
)
def test_decoder_accepts_mix_of_shards_and_recodings(
    k: int, extra: int, size: int, seed: int, told_the_code: bool, data: st.DataObject
) -> None:
    rng = random.Random(seed)
    blocks = make_blocks(rng, k, size)
    rs = ReedSolomon(k, k + extra)
    shards = rs.encode(blocks)
    stored = [shard_packet(rs, i, shards[i]) for i in range(rs.n)]
    direct = data.draw(st.lists(st.sampled_from(range(rs.n)), max_size=k, unique=True))
    holders = data.draw(
        st.lists(st.lists(st.sampled_from(range(rs.n)), min_size=1, unique=True), max_size=4)
    )
    offers = [stored[i] for i in direct]
    offers += [recode([stored[i] for i in holder], rng) for holder in holders]
    rng.shuffle(offers)
    decoder = ProgressiveDecoder(k, code=rs if told_the_code else None)

    feed_until_complete(decoder, offers)
    # Whatever was missing, any host holding every shard can recode the rest.
    feed_until_complete(decoder, (recode(stored, rng) for _ in range(k + 10)))

    assert decoder.complete
    assert decoder.stripe() == b"".join(blocks)
    assert [bytes(b) for b in decoder.blocks()] == blocks


def test_stored_data_shards_alone_decode_to_the_same_bytes() -> None:
    rng = random.Random(4)
    blocks = make_blocks(rng, 4, 1025)
    rs = ReedSolomon(4, 12)
    shards = rs.encode(blocks)
    decoder = ProgressiveDecoder(4)

    for i in (3, 1, 0, 2):
        assert decoder.add(shard_packet(rs, i, shards[i]))

    assert [bytes(b) for b in decoder.blocks()] == blocks


def test_any_k_stored_shards_decode_like_reed_solomon() -> None:
    rng = random.Random(6)
    blocks = make_blocks(rng, 4, 99)
    rs = ReedSolomon(4, 12)
    shards = rs.encode(blocks)

    for picked in ([8, 9, 10, 11], [11, 0, 7, 3], [4, 5, 2, 6]):
        decoder = ProgressiveDecoder(4)
        assert all(decoder.add(shard_packet(rs, i, shards[i])) for i in picked)
        assert decoder.stripe() == rs.decode_stripe(picked, [shards[i] for i in picked])


@settings(max_examples=100, deadline=None)
@given(
    k=st.integers(1, 10),
    extra=st.integers(0, 10),
    size=st.integers(0, 64),
    seed=st.integers(0, 2**32 - 1),
    data=st.data(),
)
def test_a_decoder_told_the_code_takes_shards_as_the_general_one_does(
    k: int, extra: int, size: int, seed: int, data: st.DataObject
) -> None:
    """Shards only, repeats included (what hosts holding one shard each send): the
    decoder that knows the code skips the elimination and says the same."""
    rng = random.Random(seed)
    blocks = make_blocks(rng, k, size)
    rs = ReedSolomon(k, k + extra)
    shards = rs.encode(blocks)
    order = data.draw(st.lists(st.sampled_from(range(rs.n)), min_size=1, max_size=3 * rs.n))
    told, general = ProgressiveDecoder(k, code=rs), ProgressiveDecoder(k)
    for i in order:
        packet = shard_packet(rs, i, shards[i])
        assert told.add(packet) == general.add(packet), i
        assert (told.rank, told.received, told.complete) == (
            general.rank,
            general.received,
            general.complete,
        )
    if general.complete:
        assert [bytes(b) for b in told.blocks()] == blocks
        assert told.stripe() == general.stripe()
    else:
        with pytest.raises(NotEnoughShardsError):
            told.blocks()


def test_a_decoder_given_a_code_of_another_k_is_refused() -> None:
    with pytest.raises(CodingParamsError):
        ProgressiveDecoder(3, code=ReedSolomon(4, 6))


def test_duplicate_shard_packet_is_dropped() -> None:
    rng = random.Random(7)
    blocks = make_blocks(rng, 4, 40)
    rs = ReedSolomon(4, 8)
    shards = rs.encode(blocks)
    decoder = ProgressiveDecoder(4)
    assert decoder.add(shard_packet(rs, 5, shards[5]))
    assert decoder.add(shard_packet(rs, 1, shards[1]))

    assert not decoder.add(shard_packet(rs, 5, shards[5]))

    assert decoder.rank == 2
    assert decoder.received == 3
    assert decoder.add(shard_packet(rs, 6, shards[6]))
    assert decoder.add(shard_packet(rs, 7, shards[7]))
    assert decoder.stripe() == b"".join(blocks)


def test_non_innovative_packet_is_dropped() -> None:
    rng = random.Random(8)
    blocks = make_blocks(rng, 5, 40)
    held = [random_packet(blocks, rng) for _ in range(3)]
    decoder = ProgressiveDecoder(5)
    for packet in held:
        assert decoder.add(packet)

    assert not decoder.add(recode(held, rng))
    assert not decoder.add(Packet(bytes(5), bytes(40)))  # the all-zero vector

    assert decoder.rank == 3
    assert decoder.received == 5


def test_packet_after_completion_is_dropped() -> None:
    rng = random.Random(9)
    blocks = make_blocks(rng, 3, 12)
    decoder = ProgressiveDecoder(3)
    feed_until_complete(decoder, random_packets(blocks, rng))
    received = decoder.received

    assert not decoder.add(random_packet(blocks, rng))

    assert decoder.rank == 3
    assert decoder.received == received + 1
    assert decoder.stripe() == b"".join(blocks)


# -- refusals -------------------------------------------------------------------------------------


@pytest.mark.parametrize("length", [0, 3, 5, 255])
def test_packet_with_wrong_number_of_coefficients_is_refused(length: int) -> None:
    rng = random.Random(10)
    blocks = make_blocks(rng, 4, 20)
    decoder = ProgressiveDecoder(4)
    decoder.add(random_packet(blocks, rng))

    with pytest.raises(PacketError):
        decoder.add(Packet(bytes(range(1, length + 1)), bytes(20)))

    assert decoder.rank == 1
    assert decoder.received == 1


def test_payload_of_a_different_length_is_refused_and_the_decoder_still_decodes() -> None:
    rng = random.Random(11)
    blocks = make_blocks(rng, 4, 20)
    decoder = ProgressiveDecoder(4)
    decoder.add(random_packet(blocks, rng))
    decoder.add(random_packet(blocks, rng))

    for size in (0, 19, 21):
        with pytest.raises(PacketError):
            decoder.add(random_packet(make_blocks(rng, 4, size), rng))

    assert decoder.rank == 2
    assert decoder.received == 2
    feed_until_complete(decoder, random_packets(blocks, rng))
    assert decoder.stripe() == b"".join(blocks)


def test_decoder_told_the_block_size_refuses_other_payloads_from_the_start() -> None:
    rng = random.Random(12)
    blocks = make_blocks(rng, 3, 30)
    decoder = ProgressiveDecoder(3, block_size=30)

    with pytest.raises(PacketError):
        decoder.add(random_packet(make_blocks(rng, 3, 31), rng))

    assert decoder.received == 0
    feed_until_complete(decoder, random_packets(blocks, rng))
    assert decoder.stripe() == b"".join(blocks)


def test_blocks_before_rank_k_raise_not_enough_shards() -> None:
    rng = random.Random(13)
    blocks = make_blocks(rng, 4, 8)
    decoder = ProgressiveDecoder(4)

    for _ in range(3):
        with pytest.raises(NotEnoughShardsError):
            decoder.blocks()
        with pytest.raises(NotEnoughShardsError):
            decoder.stripe()
        decoder.add(random_packet(blocks, rng))

    assert decoder.rank == 3


@pytest.mark.parametrize("k", [0, -1, 256, 1000])
def test_decoder_for_an_impossible_stripe_is_refused(k: int) -> None:
    with pytest.raises(CodingParamsError) as excinfo:
        ProgressiveDecoder(k)
    assert not isinstance(excinfo.value, PacketError)


@pytest.mark.parametrize("k", [1, 255])
def test_decoder_accepts_the_extreme_stripe_sizes(k: int) -> None:
    assert ProgressiveDecoder(k).rank == 0


def test_recoding_nothing_is_refused() -> None:
    with pytest.raises(PacketError):
        recode([], random.Random(14))


def test_recoding_packets_of_different_stripes_is_refused() -> None:
    with pytest.raises(PacketError):
        recode([Packet(b"\x01\x02", b"ab"), Packet(b"\x01\x02\x03", b"ab")], random.Random(15))


def test_recoding_packets_with_payloads_of_different_lengths_is_refused() -> None:
    with pytest.raises(PacketError) as excinfo:
        recode([Packet(b"\x01\x02", b"ab"), Packet(b"\x03\x04", b"abc")], random.Random(15))
    # the same refusal as decoder.add's, not the kernel's ShardSizeError leaking through
    assert excinfo.type is PacketError
    assert not isinstance(excinfo.value, ShardSizeError)


def test_random_packet_of_no_blocks_is_refused() -> None:
    with pytest.raises(PacketError):
        random_packet([], random.Random(16))


@pytest.mark.parametrize("index", [-1, 6, 7, 300])
def test_shard_packet_outside_the_code_is_refused(index: int) -> None:
    rs = ReedSolomon(3, 6)

    with pytest.raises(ShardIndexError) as excinfo:
        shard_packet(rs, index, bytes(10))
    assert not isinstance(excinfo.value, PacketError)


# -- rank bookkeeping against the oracle ----------------------------------------------------------

KINDS = st.sampled_from(["random", "shard", "recode", "duplicate", "zero"])


@settings(max_examples=120, deadline=None)
@given(
    k=st.integers(1, 20),
    extra=st.integers(0, 8),
    size=st.integers(0, 16),
    seed=st.integers(0, 2**32 - 1),
    told_the_code=st.booleans(),
    data=st.data(),
)
def test_decoder_rank_is_the_gf256_rank_of_the_vectors_seen(
    gf256: Any,
    k: int,
    extra: int,
    size: int,
    seed: int,
    told_the_code: bool,
    data: st.DataObject,
) -> None:
    """add() is True exactly when the rank grows; the rank is what galois computes."""
    length = data.draw(st.one_of(st.integers(0, k), st.integers(k, 4 * k + 8)), label="packets")
    kinds = data.draw(st.lists(KINDS, min_size=length, max_size=length), label="kinds")
    rng = random.Random(seed)
    blocks = make_blocks(rng, k, size)
    rs = ReedSolomon(k, min(k + extra, 255))
    shards = rs.encode(blocks)
    decoder = ProgressiveDecoder(k, code=rs if told_the_code else None)
    seen: list[Packet] = []
    basis: list[bytes] = []  # independent vectors among those seen, found by galois

    for kind in kinds:
        if kind == "shard" or (kind in ("recode", "duplicate") and not seen):
            i = rng.randrange(rs.n)
            packet = shard_packet(rs, i, shards[i])
        elif kind == "random":
            packet = random_packet(blocks, rng)
        elif kind == "recode":
            packet = recode(rng.sample(seen, rng.randint(1, len(seen))), rng)
        elif kind == "duplicate":
            packet = rng.choice(seen)
        else:
            packet = Packet(bytes(k), bytes(size))
        seen.append(packet)

        grew = gf_rank(gf256, [*basis, packet.coefficients], k) > len(basis)
        if grew:
            basis.append(packet.coefficients)

        assert decoder.add(packet) is grew
        assert decoder.rank == len(basis)
        assert decoder.complete is (len(basis) == k)
        assert decoder.received == len(seen)

    event("reached rank k" if decoder.complete else "stopped short of rank k")
    if decoder.complete:
        assert decoder.stripe() == b"".join(blocks)
    else:
        with pytest.raises(NotEnoughShardsError):
            decoder.blocks()
