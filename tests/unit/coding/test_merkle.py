"""Merkle trees over 1 KiB segments: roots, proofs, their bytes, and chained proofs."""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from storenode.coding import merkle
from storenode.coding.errors import CodingError, ProofInvalidError, ProofMalformedError
from storenode.coding.merkle import (
    SEGMENT_SIZE,
    ChainedProof,
    MerkleTree,
    Proof,
    contract_root,
    merkle_root,
    prove_chained,
    verify_chained,
    verify_segment,
)

REJECTED = (ProofInvalidError, ProofMalformedError)
KIB = SEGMENT_SIZE

# --- an independent RFC 6962 implementation -------------------------------------------------


def rfc6962_segments(data: bytes) -> list[bytes]:
    """A chunk's segments; an empty chunk is one empty segment."""
    return [data[i : i + KIB] for i in range(0, len(data), KIB)] or [b""]


def largest_power_of_two_below(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth_of_hashes(hashes: list[bytes]) -> bytes:
    """MTH over already-hashed leaves (chunk roots, for a contract)."""
    if len(hashes) == 1:
        return hashes[0]
    k = largest_power_of_two_below(len(hashes))
    return hashlib.sha256(b"\x01" + mth_of_hashes(hashes[:k]) + mth_of_hashes(hashes[k:])).digest()


def mth(segments: list[bytes]) -> bytes:
    """RFC 6962 section 2.1: MTH(D[n])."""
    return mth_of_hashes([hashlib.sha256(b"\x00" + s).digest() for s in segments])


def rfc6962_path(m: int, segments: list[bytes]) -> list[bytes]:
    """RFC 6962 section 2.1.1: PATH(m, D[n]), sibling hashes from the leaf up."""
    if len(segments) == 1:
        return []
    k = largest_power_of_two_below(len(segments))
    if m < k:
        return [*rfc6962_path(m, segments[:k]), mth(segments[k:])]
    return [*rfc6962_path(m - k, segments[k:]), mth(segments[:k])]


def test_reference_implementation_matches_rfc6962_known_values() -> None:
    # The empty segment, and a two-leaf tree computed by hand.
    assert mth([b""]) == hashlib.sha256(b"\x00").digest()
    left = hashlib.sha256(b"\x00a").digest()
    right = hashlib.sha256(b"\x00b").digest()
    assert mth([b"a", b"b"]) == hashlib.sha256(b"\x01" + left + right).digest()


# --- data ----------------------------------------------------------------------------------

BOUNDARY_SIZES = [0, 1, 1023, 1024, 1025, 2047, 2048, 2049, 3 * KIB, 4 * KIB + 1, 5 * KIB - 1]
BOUNDARY_SIZES += [7 * KIB, 8 * KIB, 9 * KIB + 512, 16 * KIB, 17 * KIB + 1, 20 * KIB]
sizes = st.one_of(
    st.sampled_from(BOUNDARY_SIZES),
    st.integers(0, 20).flatmap(lambda n: st.integers(max(0, n * KIB - 2), n * KIB + 2)),
    st.integers(0, 20 * KIB),
)
seeds = st.integers(0, 2**32 - 1)


def random_bytes(seed: int, size: int) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes()


@st.composite
def chunks(draw: st.DrawFn, min_size: int = 0) -> bytes:
    size = draw(sizes.filter(lambda s: s >= min_size), label="size")
    return random_bytes(draw(seeds, label="seed"), size)


# --- roots and proofs ----------------------------------------------------------------------


@given(data=chunks())
def test_root_equals_the_rfc6962_tree_hash(data: bytes) -> None:
    expected = mth(rfc6962_segments(data))
    assert merkle_root(data) == expected
    assert merkle_root(bytearray(data)) == expected
    assert merkle_root(memoryview(data)) == expected
    tree = MerkleTree.of_chunk(data)
    assert tree.root == expected
    assert tree.leaf_count == merkle.segment_count(len(data)) == len(rfc6962_segments(data))


@given(data=chunks())
def test_every_segment_has_the_rfc6962_audit_path_and_verifies(data: bytes) -> None:
    segments = rfc6962_segments(data)
    tree = MerkleTree.of_chunk(data)
    for i, seg in enumerate(segments):
        assert bytes(merkle.segment(data, i)) == seg
        proof = tree.proof(i)
        assert (proof.index, proof.leaf_count) == (i, len(segments))
        assert list(proof.path) == rfc6962_path(i, segments)
        verify_segment(tree.root, seg, proof, index=i, leaf_count=len(segments))
        verify_segment(tree.root, memoryview(seg), proof, index=i, leaf_count=len(segments))


@given(data=chunks())
def test_proofs_survive_serialization(data: bytes) -> None:
    tree = MerkleTree.of_chunk(data)
    for i, seg in enumerate(rfc6962_segments(data)):
        proof = tree.proof(i)
        raw = proof.to_bytes()
        assert len(raw) == 18 + 32 * len(proof.path)
        again = Proof.from_bytes(raw)
        assert again == proof
        assert Proof.from_bytes(memoryview(raw)) == proof
        assert again.to_bytes() == raw
        verify_segment(tree.root, seg, again, index=i, leaf_count=tree.leaf_count)


def test_a_tree_needs_a_leaf() -> None:
    with pytest.raises(ValueError):
        MerkleTree([])
    with pytest.raises(ValueError):
        contract_root([])


@pytest.mark.parametrize("size", [0, 1, 1024, 5000])
def test_proof_of_a_leaf_outside_the_tree_is_an_index_error(size: int) -> None:
    tree = MerkleTree.of_chunk(bytes(size))
    for index in (-1, tree.leaf_count, tree.leaf_count + 7, 2**64):
        with pytest.raises(IndexError):
            tree.proof(index)


# --- forgeries -----------------------------------------------------------------------------


def flip_bit(raw: bytes, bit: int) -> bytes:
    out = bytearray(raw)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


@dataclass(frozen=True)
class Position:
    """The segment a verifier asked for: its challenge and the chunk's segment count."""

    index: int
    leaf_count: int


Case = tuple[bytes, bytes, Proof, Position]


@st.composite
def proven_segments(draw: st.DrawFn, min_size: int = 0) -> Case:
    """(root, segment, proof, asked) for a random segment of a random chunk.

    ``asked`` is the position the verifier challenged, known to it independently
    of any proof; forgeries below are checked against it.
    """
    data = draw(chunks(min_size=min_size), label="chunk")
    tree = MerkleTree.of_chunk(data)
    index = draw(st.integers(0, tree.leaf_count - 1), label="index")
    asked = Position(index, tree.leaf_count)
    return tree.root, bytes(merkle.segment(data, index)), tree.proof(index), asked


def verify_asked(root: bytes, seg: bytes | memoryview, proof: Proof, asked: Position) -> None:
    verify_segment(root, seg, proof, index=asked.index, leaf_count=asked.leaf_count)


@given(case=proven_segments(), data=st.data())
def test_a_flipped_bit_in_the_segment_is_rejected(case: Case, data: st.DataObject) -> None:
    root, seg, proof, asked = case
    assume(seg)
    bit = data.draw(st.integers(0, 8 * len(seg) - 1), label="bit")
    with pytest.raises(ProofInvalidError):
        verify_asked(root, flip_bit(seg, bit), proof, asked)


@given(case=proven_segments(), data=st.data())
def test_a_resized_segment_is_rejected(case: Case, data: st.DataObject) -> None:
    root, seg, proof, asked = case
    cut = data.draw(st.integers(0, len(seg)), label="cut")
    extra = data.draw(st.binary(min_size=1, max_size=8), label="extra")
    for forged in ((seg[:cut] if cut < len(seg) else None), seg + extra):
        if forged is not None:
            with pytest.raises(REJECTED):
                verify_asked(root, forged, proof, asked)


@given(case=proven_segments(min_size=KIB + 1), data=st.data())
def test_forged_path_is_rejected(case: Case, data: st.DataObject) -> None:
    root, seg, proof, asked = case
    which = data.draw(st.integers(0, len(proof.path) - 1), label="hash")
    bit = data.draw(st.integers(0, 255), label="bit")
    path = list(proof.path)
    path[which] = flip_bit(path[which], bit)
    with pytest.raises(ProofInvalidError):
        verify_asked(root, seg, Proof(proof.index, proof.leaf_count, tuple(path)), asked)


@given(case=proven_segments(min_size=2 * KIB + 1))
def test_a_reordered_path_is_rejected(case: Case) -> None:
    root, seg, proof, asked = case
    assume(len(proof.path) >= 2)
    forged = Proof(proof.index, proof.leaf_count, tuple(reversed(proof.path)))
    with pytest.raises(ProofInvalidError):
        verify_asked(root, seg, forged, asked)


@given(case=proven_segments(), data=st.data())
def test_a_proof_for_another_index_is_rejected(case: Case, data: st.DataObject) -> None:
    root, seg, proof, asked = case
    index = data.draw(
        st.one_of(st.integers(0, proof.leaf_count + 2), st.integers(0, 2**64 - 1)).filter(
            lambda i: i != proof.index
        ),
        label="index",
    )
    forged = Proof(index, proof.leaf_count, proof.path)
    # the verifier asked for the segment it got, and the proof claims another index ...
    with pytest.raises(REJECTED):
        verify_asked(root, seg, forged, asked)
    # ... or it asked for that other index and got this segment: the path gives it away
    with pytest.raises(REJECTED):
        verify_asked(root, seg, forged, Position(index, asked.leaf_count))


@given(case=proven_segments(), data=st.data())
def test_a_proof_of_impossible_shape_is_rejected_as_malformed(
    case: Case, data: st.DataObject
) -> None:
    root, seg, proof, asked = case
    extra = data.draw(st.binary(min_size=32, max_size=32), label="extra hash")
    short_hash = data.draw(st.binary(max_size=31), label="short hash")
    for forged in (
        Proof(proof.index, proof.leaf_count, (*proof.path, extra)),
        Proof(proof.index, proof.leaf_count, (*proof.path[:-1], short_hash)),
    ):
        with pytest.raises(ProofMalformedError):
            verify_asked(root, seg, forged, asked)
    # No tree has 0 leaves: the shape is malformed, and the verifier says so before it
    # even compares positions.
    no_tree = Proof(proof.index, 0, proof.path)
    with pytest.raises(ProofMalformedError):
        no_tree.check_shape()
    with pytest.raises(ProofMalformedError):
        Proof.from_bytes(no_tree.to_bytes())
    with pytest.raises(ProofMalformedError):
        verify_asked(root, seg, no_tree, asked)


@given(case=proven_segments(), wrong_root=st.binary(min_size=32, max_size=32))
def test_a_proof_against_another_root_is_rejected(case: Case, wrong_root: bytes) -> None:
    root, seg, proof, asked = case
    assume(wrong_root != root)
    with pytest.raises(ProofInvalidError):
        verify_asked(wrong_root, seg, proof, asked)


def test_a_segment_longer_than_1_kib_is_malformed() -> None:
    data = bytes(range(256)) * 8
    tree = MerkleTree.of_chunk(data)
    with pytest.raises(ProofMalformedError):
        verify_segment(tree.root, data[: KIB + 1], tree.proof(0), index=0, leaf_count=2)


@given(case=proven_segments(), data=st.data())
def test_truncated_or_extended_proof_bytes_are_malformed(case: Case, data: st.DataObject) -> None:
    _root, _seg, proof, _asked = case
    raw = proof.to_bytes()
    cut = data.draw(st.integers(0, len(raw) - 1), label="cut")
    extra = data.draw(st.binary(min_size=1, max_size=100), label="extra")
    for forged in (raw[:cut], raw + extra):
        with pytest.raises(ProofMalformedError):
            Proof.from_bytes(forged)


@given(case=proven_segments(), data=st.data())
def test_a_flipped_bit_in_the_proof_bytes_is_rejected(case: Case, data: st.DataObject) -> None:
    # Every bit, those of the header's index and leaf count included: the verifier
    # compares them with the position it asked for.
    root, seg, proof, asked = case
    raw = proof.to_bytes()
    forged = flip_bit(raw, data.draw(st.integers(0, 8 * len(raw) - 1), label="bit"))
    with pytest.raises(REJECTED):
        verify_asked(root, seg, Proof.from_bytes(forged), asked)


@given(case=proven_segments(), data=st.data())
def test_an_honest_proof_verified_for_another_position_is_rejected(
    case: Case, data: st.DataObject
) -> None:
    root, seg, proof, asked = case
    verify_asked(root, seg, proof, asked)
    other_count = data.draw(
        st.one_of(st.integers(1, asked.leaf_count + 3), st.integers(1, 2**64 - 1)).filter(
            lambda n: n != asked.leaf_count
        ),
        label="stated leaf count",
    )
    other_index = data.draw(
        st.integers(0, asked.leaf_count + 2).filter(lambda i: i != asked.index),
        label="stated index",
    )
    # the right segment and its own proof, but the verifier asked about another position
    for stated in (
        Position(asked.index, other_count),
        Position(other_index, asked.leaf_count),
        Position(other_index, other_count),
    ):
        with pytest.raises(ProofInvalidError):
            verify_asked(root, seg, proof, stated)


def test_a_proof_with_another_leaf_count_is_rejected() -> None:
    # A root does not commit to its leaf count: each forgery below folds to the root,
    # and only the position the verifier states exposes it.
    data = random_bytes(1, 5 * KIB)
    tree = MerkleTree.of_chunk(data)
    forgeries = [
        # (segment sent, segment asked for, forged proof)
        (4, 2, Proof(2, 3, tree.proof(4).path)),  # segment 4 answers a challenge for segment 2
        (0, 0, Proof(0, 6, tree.proof(0).path)),
        (0, 0, Proof(0, 7, tree.proof(0).path)),
    ]
    for sent, asked_index, forged in forgeries:
        seg = merkle.segment(data, sent)
        assert merkle.root_from_path(merkle.leaf_hash(seg), forged) == tree.root
        with pytest.raises(ProofInvalidError):
            verify_segment(tree.root, seg, forged, index=asked_index, leaf_count=tree.leaf_count)


def test_a_chained_proof_cannot_move_a_segment_into_another_chunk() -> None:
    one_segment, two_segments = random_bytes(3, 1000), random_bytes(4, 2 * KIB)
    (short, long), contract_tree = build_contract([one_segment, two_segments])
    seg = merkle.segment(two_segments, 0)
    # segment 0 of chunk 1 (its sibling segment, then chunk 0's root), re-split so that
    # it claims to be segment 2 (of 4) of chunk 0 (of 1); it does fold to the contract root
    forged = ChainedProof(Proof(2, 4, (long.levels[0][1], short.root)), Proof(0, 1, ()))
    chunk_root = merkle.root_from_path(merkle.leaf_hash(seg), forged.segment)
    assert merkle.root_from_path(chunk_root, forged.chunk) == contract_tree.root
    # The verifier states the challenge it issued; the forgery answers none of them (the
    # one it is after is segment 0 of 1 of chunk 0 of 2).
    for chunk_index, tree in enumerate((short, long)):
        for segment_index in range(tree.leaf_count):
            with pytest.raises(ProofInvalidError):
                verify_chained(
                    contract_tree.root,
                    seg,
                    forged,
                    chunk_index=chunk_index,
                    chunk_count=2,
                    segment_index=segment_index,
                    segment_count=tree.leaf_count,
                )
    # while the honest proof of that segment answers its own challenge
    honest = prove_chained(long, contract_tree, 1, 0)
    verify_chained(
        contract_tree.root,
        seg,
        honest,
        chunk_index=1,
        chunk_count=2,
        segment_index=0,
        segment_count=2,
    )


def test_a_leaf_cannot_pose_as_an_inner_node() -> None:
    data = random_bytes(2, 6 * KIB)
    tree = MerkleTree.of_chunk(data)
    upper = MerkleTree(tree.levels[1])  # the tree from the first inner level up
    assert upper.root == tree.root
    for i in range(len(tree.levels[1])):
        left, right = tree.levels[0][2 * i], tree.levels[0][2 * i + 1]
        proof = upper.proof(i)
        # the path is right for the inner node itself ...
        assert merkle.root_from_path(merkle.node_hash(left, right), proof) == tree.root
        # ... but its 64 bytes presented as a segment hash differently, even to a verifier
        # told that the chunk has len(levels[1]) segments (so the position matches) ...
        with pytest.raises(ProofInvalidError):
            verify_segment(tree.root, left + right, proof, index=i, leaf_count=upper.leaf_count)
        # ... and a verifier that knows the chunk's real segment count refuses the position
        with pytest.raises(ProofInvalidError):
            verify_segment(tree.root, left + right, proof, index=i, leaf_count=tree.leaf_count)


# --- arbitrary bytes -----------------------------------------------------------------------


def check_parsed(proof: Proof, raw: bytes) -> None:
    proof.check_shape()
    assert proof.to_bytes() == raw  # one proof, one encoding


@given(raw=st.binary(max_size=300))
def test_arbitrary_bytes_parse_as_a_proof_or_are_malformed(raw: bytes) -> None:
    try:
        proof = Proof.from_bytes(raw)
    except ProofMalformedError:
        return
    check_parsed(proof, raw)


u64 = st.one_of(st.integers(0, 40), st.integers(0, 2**64 - 1), st.sampled_from([2**63, 2**64 - 1]))


@st.composite
def proof_like_bytes(draw: st.DrawFn) -> bytes:
    """Version-1 headers with plausible and implausible fields, and a body near its length."""
    version = draw(st.sampled_from([1, 1, 1, 0, 2, 255]))
    index, count = draw(u64), draw(u64)
    depth = draw(st.one_of(st.integers(0, 8), st.integers(0, 255)))
    body_len = max(0, 32 * depth + draw(st.sampled_from([0, 0, 0, -1, 1, -32, 32])))
    body = draw(st.binary(min_size=body_len, max_size=body_len))
    return struct.pack(">BQQB", version, index, count, depth) + body


@given(raw=proof_like_bytes())
def test_proof_like_bytes_parse_as_a_proof_or_are_malformed(raw: bytes) -> None:
    try:
        proof = Proof.from_bytes(raw)
    except ProofMalformedError:
        return
    check_parsed(proof, raw)
    # against a root no proof leads to: whether the verifier asked for the position the
    # proof claims (so the path is folded) or for another one
    for asked in (Position(proof.index, proof.leaf_count), Position(0, 1)):
        with pytest.raises(REJECTED):
            verify_asked(b"\x00" * 32, b"segment", proof, asked)


@st.composite
def chained_proof_like_bytes(draw: st.DrawFn) -> bytes:
    a, b = draw(proof_like_bytes()), draw(proof_like_bytes())
    n = draw(st.sampled_from([len(a), len(a), 0, len(a) - 1, len(a) + 1, 2**16 - 1]))
    return struct.pack(">H", max(0, n)) + a + b


@given(raw=st.one_of(st.binary(max_size=300), proof_like_bytes(), chained_proof_like_bytes()))
def test_arbitrary_bytes_parse_as_a_chained_proof_or_are_malformed(raw: bytes) -> None:
    try:
        chained = ChainedProof.from_bytes(raw)
    except ProofMalformedError:
        return
    chained.segment.check_shape()
    chained.chunk.check_shape()
    assert chained.to_bytes() == raw


# --- chained proofs: segment -> chunk -> contract ------------------------------------------

contracts = st.lists(
    st.tuples(st.integers(1, 5 * KIB + 1), seeds).map(lambda t: random_bytes(t[1], t[0])),
    min_size=1,
    max_size=6,
)


def build_contract(chunk_data: list[bytes]) -> tuple[list[MerkleTree], MerkleTree]:
    chunk_trees = [MerkleTree.of_chunk(d) for d in chunk_data]
    return chunk_trees, MerkleTree([t.root for t in chunk_trees])


def challenge(chunk_trees: list[MerkleTree], chunk: int, segment: int) -> dict[str, int]:
    """verify_chained's keyword arguments for segment ``segment`` of chunk ``chunk``,
    as a verifier knows them from its contract (not from any proof)."""
    return {
        "chunk_index": chunk,
        "chunk_count": len(chunk_trees),
        "segment_index": segment,
        "segment_count": chunk_trees[chunk].leaf_count,
    }


@given(chunk_data=contracts)
def test_contract_root_is_the_rfc6962_tree_over_chunk_roots(chunk_data: list[bytes]) -> None:
    roots = [mth(rfc6962_segments(d)) for d in chunk_data]
    _chunk_trees, contract_tree = build_contract(chunk_data)
    assert contract_root(roots) == mth_of_hashes(roots) == contract_tree.root


@given(chunk_data=contracts)
def test_every_segment_of_every_chunk_proves_against_the_contract(
    chunk_data: list[bytes],
) -> None:
    chunk_trees, contract_tree = build_contract(chunk_data)
    root = contract_root([t.root for t in chunk_trees])
    for c, (data, tree) in enumerate(zip(chunk_data, chunk_trees, strict=True)):
        for s in range(tree.leaf_count):
            asked = challenge(chunk_trees, c, s)
            proof = prove_chained(tree, contract_tree, c, s)
            seg = merkle.segment(data, s)
            verify_chained(root, seg, proof, **asked)
            again = ChainedProof.from_bytes(proof.to_bytes())
            assert again == proof
            verify_chained(root, seg, again, **asked)


@given(chunk_data=contracts.filter(lambda cs: len(cs) >= 2), data=st.data())
def test_a_segment_of_the_wrong_chunk_is_rejected(
    chunk_data: list[bytes], data: st.DataObject
) -> None:
    chunk_trees, contract_tree = build_contract(chunk_data)
    root = contract_tree.root
    c, other = data.draw(
        st.lists(st.integers(0, len(chunk_data) - 1), min_size=2, max_size=2, unique=True),
        label="chunks",
    )
    s = data.draw(st.integers(0, chunk_trees[c].leaf_count - 1), label="segment")
    proof = prove_chained(chunk_trees[c], contract_tree, c, s)
    for t in range(chunk_trees[other].leaf_count):
        wrong = bytes(merkle.segment(chunk_data[other], t))
        if wrong != bytes(merkle.segment(chunk_data[c], s)):
            with pytest.raises(ProofInvalidError):
                verify_chained(root, wrong, proof, **challenge(chunk_trees, c, s))


@given(chunk_data=contracts, wrong_root=st.binary(min_size=32, max_size=32))
def test_a_chained_proof_against_another_contract_is_rejected(
    chunk_data: list[bytes], wrong_root: bytes
) -> None:
    chunk_trees, contract_tree = build_contract(chunk_data)
    assume(wrong_root != contract_tree.root)
    proof = prove_chained(chunk_trees[0], contract_tree, 0, 0)
    with pytest.raises(ProofInvalidError):
        verify_chained(
            wrong_root, merkle.segment(chunk_data[0], 0), proof, **challenge(chunk_trees, 0, 0)
        )


@given(chunk_data=contracts, data=st.data())
def test_a_chained_proof_verified_for_another_position_is_rejected(
    chunk_data: list[bytes], data: st.DataObject
) -> None:
    chunk_trees, contract_tree = build_contract(chunk_data)
    c = data.draw(st.integers(0, len(chunk_trees) - 1), label="chunk")
    s = data.draw(st.integers(0, chunk_trees[c].leaf_count - 1), label="segment")
    proof = prove_chained(chunk_trees[c], contract_tree, c, s)
    seg = merkle.segment(chunk_data[c], s)
    asked = challenge(chunk_trees, c, s)
    verify_chained(contract_tree.root, seg, proof, **asked)
    # the honest proof of the right segment, but one of the four stated positions differs:
    # the chunk count, the segment count, or either index
    for name, right in asked.items():
        wrong = data.draw(
            st.one_of(st.integers(0, right + 3), st.integers(0, 2**64 - 1)).filter(right.__ne__),
            label=name,
        )
        with pytest.raises(ProofInvalidError):
            verify_chained(contract_tree.root, seg, proof, **{**asked, name: wrong})


def test_chained_proofs_with_other_counts_are_rejected() -> None:
    chunk_data = [random_bytes(5, 3 * KIB), random_bytes(6, 5 * KIB), random_bytes(7, KIB)]
    chunk_trees, contract_tree = build_contract(chunk_data)
    proof = prove_chained(chunk_trees[1], contract_tree, 1, 4)
    seg = merkle.segment(chunk_data[1], 4)
    asked = challenge(chunk_trees, 1, 4)
    assert asked == {"chunk_index": 1, "chunk_count": 3, "segment_index": 4, "segment_count": 5}
    verify_chained(contract_tree.root, seg, proof, **asked)
    for changed in (
        {"chunk_count": 2},
        {"chunk_count": 4},
        {"segment_count": 6},
        {"segment_count": 8},
        {"chunk_count": 4, "segment_count": 6},
    ):
        with pytest.raises(ProofInvalidError):
            verify_chained(contract_tree.root, seg, proof, **{**asked, **changed})


def test_a_chained_segment_longer_than_1_kib_is_malformed() -> None:
    chunk_trees, contract_tree = build_contract([bytes(3 * KIB)])
    proof = prove_chained(chunk_trees[0], contract_tree, 0, 0)
    with pytest.raises(ProofMalformedError):
        verify_chained(contract_tree.root, bytes(KIB + 1), proof, **challenge(chunk_trees, 0, 0))


def test_proving_a_chunk_that_is_not_in_the_contract_is_refused() -> None:
    chunk_trees, contract_tree = build_contract([b"a" * 3000, b"b" * 2000])
    with pytest.raises(ValueError):
        prove_chained(chunk_trees[1], contract_tree, 0, 0)


def test_proof_errors_are_coding_errors() -> None:
    assert issubclass(ProofInvalidError, CodingError)
    assert issubclass(ProofMalformedError, CodingError)
    assert issubclass(ProofMalformedError, ValueError)
