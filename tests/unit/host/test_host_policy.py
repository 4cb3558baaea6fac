"""What a host signs, stores and serves: the proposal checks, uploads, reads, manifests."""

from __future__ import annotations

import dataclasses
import hashlib
import random
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from msgspec.structs import replace
from mutations import mutations

from contracts import Amount, ContractTerms, Params, State, contract_id, genesis_state, tokens
from contracts.encoding import amount_bytes, encode
from contracts.entries import (
    Listing,
    Receipt,
    Status,
    StorageContract,
    Work,
    contract_key,
    listing_key,
    receipt_key,
    work_key,
)
from storenode.coding.merkle import MerkleTree, contract_root
from storenode.host.book import BookContract, BookState, HostBook
from storenode.host.messages import (
    ACCEPT_HORIZON,
    ContractProposal,
    Placement,
    RepairRequest,
    ShardRef,
)
from storenode.host.policy import (
    GIB,
    ContractUploadPolicy,
    Offer,
    ReceiptReadPolicy,
    RefusedError,
    Standing,
    check_manifest,
    check_proposal,
    check_repair,
    decode_terms,
    price_for,
    read_manifest,
)
from storenode.publish.manifest import Manifest, build_manifest, encode_manifest
from storenode.testing.ledger import account
from storenode.wire.messages import ErrorCode

HOST, PUBLISHER = account(1), account(0)
PARAMS = Params(chain_id="testnet", min_window_blocks=2, max_window_blocks=100, max_windows=500)
OFFER = Offer(price=tokens(1), collateral_bps=5_000, max_windows=100)
SIZE = 2048
K, N = 2, 4


def refs(count: int) -> tuple[ShardRef, ...]:
    return tuple(ShardRef(i, i % N, hashlib.sha256(b"%d" % i).digest()) for i in range(count))


def good(count: int = 4) -> tuple[ContractProposal, ContractTerms]:
    shards = refs(count)
    terms = ContractTerms(
        chain_id="testnet",
        publisher=PUBLISHER.public_key,
        host=HOST.public_key,
        root=contract_root([s.chunk_id for s in shards]),
        chunk_count=count,
        chunk_size=SIZE,
        price_per_window=Amount(price_for(OFFER.price, count * SIZE)),
        windows=10,
        window_blocks=20,
        collateral=tokens("0.00001"),
        accept_until=150,
        salt=0,
    )
    return ContractProposal(encode(terms), bytes(32), K, N, shards), terms


STANDING = Standing("testnet", 100, PARAMS, balance=tokens(1), collateral_pending=0)


def check(
    proposal: ContractProposal,
    terms: ContractTerms,
    *,
    chain: Standing = STANDING,
    free: int = 1 << 20,
    new_bytes: int | None = None,
) -> None:
    check_proposal(
        proposal,
        terms,
        host_key=HOST.public_key,
        offer=OFFER,
        chain=chain,
        free=free,
        new_bytes=terms.chunk_count * terms.chunk_size if new_bytes is None else new_bytes,
    )


def test_good_terms_pass() -> None:
    check(*good())


Change = Callable[[ContractProposal, ContractTerms], tuple[ContractProposal, ContractTerms]]


def terms_with(**kw: Any) -> Change:
    return lambda p, t: (p, replace(t, **kw))


def proposal_with(**kw: Any) -> Change:
    return lambda p, t: (replace(p, **kw), t)


REFUSALS: dict[str, Change] = {
    "the terms name another host": terms_with(host=PUBLISHER.public_key),
    "the terms are for chain 'other'": terms_with(chain_id="other"),
    "k=5 exceeds n=4": proposal_with(k=5),
    "shard index 4 is outside 0..3": proposal_with(shards=(ShardRef(0, 4, bytes(32)),)),
    "a (stripe, shard) slot is listed twice": lambda p, t: (
        replace(p, shards=(p.shards[0], p.shards[0], *p.shards[2:])),
        t,
    ),
    "the terms count 5 chunks, the proposal lists 4": terms_with(chunk_count=5),
    "chunks of 4194305 bytes: at most 4194304": terms_with(chunk_size=4 * 1024 * 1024 + 1),
    "the terms' root is not the contract root": terms_with(root=bytes(32)),
    "windows of 1 blocks: the chain allows 2..100": terms_with(window_blocks=1),
    "101 windows: this host signs at most 100": terms_with(windows=101),
    "price too low": lambda p, t: (p, replace(t, price_per_window=Amount(t.price_per_window - 1))),
    "this host locks at most 50% of the escrow": lambda p, t: (
        p,
        replace(t, collateral=Amount(t.price_per_window * t.windows // 2 + 1)),
    ),
    "accept_until 100 has passed": terms_with(accept_until=100),
    f"more than {ACCEPT_HORIZON} blocks ahead": terms_with(accept_until=101 + ACCEPT_HORIZON),
}


@pytest.mark.parametrize("reason", REFUSALS)
def test_terms_that_break_a_rule_are_refused_with_the_reason(reason: str) -> None:
    proposal, terms = REFUSALS[reason](*good())
    with pytest.raises(RefusedError) as info:
        check(proposal, terms)
    assert reason in str(info.value) and info.value.code == ErrorCode.REFUSED


def test_collateral_beyond_what_the_host_can_lock_is_refused() -> None:
    proposal, terms = good()
    poor = replace_standing(balance=tokens("0.00003"), collateral_pending=tokens("0.000025"))
    with pytest.raises(RefusedError, match=re.escape("this host can lock 0.000005")):
        check(proposal, terms, chain=poor)


def replace_standing(**kw: Any) -> Standing:
    return dataclasses.replace(STANDING, **kw)


def test_shards_that_do_not_fit_in_the_free_space_are_refused() -> None:
    proposal, terms = good()
    with pytest.raises(RefusedError, match="not enough space: 8192 bytes asked for, 8191 free"):
        check(proposal, terms, free=8191)
    check(proposal, terms, free=0, new_bytes=0)  # every chunk already kept for another work


@given(st.integers(0, 10**24), st.integers(0, 1 << 40))
def test_the_price_for_some_bytes_is_rounded_up_never_down(price: int, nbytes: int) -> None:
    asked = price_for(price, nbytes)
    assert asked * GIB >= price * nbytes > (asked - 1) * GIB


def test_terms_must_be_canonical_contract_terms() -> None:
    _, terms = good()
    assert decode_terms(encode(terms)) == terms
    for raw in (b"\x93\x01\x02\x03", encode(terms) + b"\x00"):
        with pytest.raises(RefusedError) as info:
            decode_terms(raw)
        assert info.value.code == ErrorCode.BAD_REQUEST


GOOD_TERMS = encode(good()[1])
COLLATERAL = msgspec.msgpack.encode(amount_bytes(good()[1].collateral))


@settings(max_examples=300, deadline=None)
@given(raw=mutations(GOOD_TERMS) | st.binary(max_size=200))
@example(raw=GOOD_TERMS.replace(b"testnet", b"testne\xff"))  # a chain id that is not UTF-8
@example(raw=GOOD_TERMS.replace(COLLATERAL, b"\x91" * 3000 + b"\xc0"))  # nested past the limit
def test_any_proposed_terms_are_canonical_contract_terms_or_a_bad_request(raw: bytes) -> None:
    try:
        terms = decode_terms(raw)
    except RefusedError as e:
        assert e.code == ErrorCode.BAD_REQUEST
        return
    assert encode(terms) == raw


# -- uploads and reads -------------------------------------------------------------------------


def book_contract(proposal: ContractProposal, terms: ContractTerms) -> BookContract:
    return BookContract(
        contract_id(terms),
        terms,
        encode(terms),
        proposal.cid,
        proposal.k,
        proposal.n,
        proposal.shards,
        BookState.PENDING,
        1,
    )


def test_an_upload_is_taken_only_at_the_slot_a_contract_lists(tmp_path: Path) -> None:
    proposal, terms = good()
    with HostBook(tmp_path / "book") as book:
        book.add(book_contract(proposal, terms))
        policy = ContractUploadPolicy(book)
        s = proposal.shards[1]
        at = Placement(proposal.cid, s.stripe, s.shard, K, N)
        assert policy.may_store(b"u", s.chunk_id, SIZE, at) is True
        assert "not 100" in str(policy.may_store(b"u", s.chunk_id, 100, at))
        elsewhere = replace(at, shard=(s.shard + 1) % N)
        assert "elsewhere than shard" in str(policy.may_store(b"u", s.chunk_id, SIZE, elsewhere))
        other_work = replace(at, cid=bytes([1]) * 32)
        assert "no contract" in str(policy.may_store(b"u", s.chunk_id, SIZE, other_work))
        assert "no contract" in str(policy.may_store(b"u", bytes(32), SIZE, at))


CID = hashlib.sha256(b"priced work").digest()
OWNER, BUYER, STRANGER = account(2), account(3), account(4)


def priced(price: int) -> State:
    state = genesis_state({OWNER.address: 10**24}, PARAMS)
    return state.with_writes(
        {
            work_key(CID): Work("w", "1", "2024", "a", OWNER.address, bytes(32), 1, 1),
            listing_key(CID): Listing(Amount(price), ()),
            receipt_key(BUYER.address, CID): Receipt(Amount(price), 2, 2),
        }
    )


def test_a_priced_work_is_read_only_by_its_buyers_and_its_owner() -> None:
    policy = ReceiptReadPolicy(lambda: priced(tokens(1)))
    assert policy.may_read(BUYER.public_key, CID)
    assert policy.may_read(OWNER.public_key, CID)
    assert not policy.may_read(STRANGER.public_key, CID)
    free = ReceiptReadPolicy(lambda: priced(0))
    assert free.may_read(STRANGER.public_key, CID)
    unlisted = ReceiptReadPolicy(lambda: genesis_state({OWNER.address: 1}, PARAMS))
    assert unlisted.may_read(STRANGER.public_key, CID)


# -- manifests ---------------------------------------------------------------------------------


def work(seed: int = 1) -> tuple[Manifest, bytes]:
    data = random.Random(seed).randbytes(8192)
    m, _ = build_manifest(PUBLISHER, "t", "audio/wav", data, k=K, n=N, stripe_size=4096, created=1)
    return m, encode_manifest(m)


def contract_for(m: Manifest, shards: tuple[ShardRef, ...], *, k: int = K) -> BookContract:
    proposal, terms = good(len(shards))
    terms = replace(terms, root=contract_root([s.chunk_id for s in shards]))
    return book_contract(replace(proposal, cid=m.cid, k=k, shards=shards), terms)


def at(m: Manifest, *slots: tuple[int, int]) -> tuple[ShardRef, ...]:
    """The manifest's chunks at these (stripe, shard) slots."""
    return tuple(ShardRef(s, i, m.stripes[s].chunk_ids[i]) for s, i in slots)


def test_a_manifest_is_kept_only_if_it_verifies_and_lists_the_hosts_chunks() -> None:
    m, raw = work()
    check_manifest(read_manifest(raw), [contract_for(m, at(m, (0, 1), (1, 3)))])
    misplaced = (ShardRef(1, 1, m.stripes[0].chunk_ids[1]),)
    cases = {
        "no contract for that work": [],
        "the contract k=1": [contract_for(m, at(m, (0, 1)), k=1)],
        "as shard 1 of stripe 1": [contract_for(m, misplaced)],
    }
    for reason, contracts in cases.items():
        with pytest.raises(RefusedError, match=reason):
            check_manifest(read_manifest(raw), contracts)
    other, _ = work(2)
    with pytest.raises(RefusedError, match="does not verify"):
        check_manifest(read_manifest(raw), [contract_for(other, at(other, (0, 1)))])
    forged = replace(m, name="forged")
    with pytest.raises(RefusedError, match="does not verify"):
        check_manifest(forged, [contract_for(m, at(m, (0, 1)))])
    with pytest.raises(RefusedError, match="not a manifest"):
        read_manifest(msgspec.msgpack.encode([1, 2, 3]))


MANIFEST, RAW_MANIFEST = work()


@settings(max_examples=200, deadline=None)
@given(raw=mutations(RAW_MANIFEST))
def test_a_changed_manifest_from_a_peer_is_refused(raw: bytes) -> None:
    contract = contract_for(MANIFEST, at(MANIFEST, (0, 1), (1, 3)))
    try:
        check_manifest(read_manifest(raw), [contract])
    except RefusedError:
        return
    assert raw == RAW_MANIFEST  # the signature covers every byte a peer could change


# -- repairs -------------------------------------------------------------------------------------


def repair_state(m: Manifest, shards: tuple[ShardRef, ...], **kw: Any) -> tuple[State, bytes]:
    """A chain where HOST holds contract ``id`` of ``shards`` with the work's owner."""
    contract = StorageContract(
        publisher=kw.get("publisher", PUBLISHER.address),
        publisher_key=PUBLISHER.public_key,
        host=HOST.address,
        host_key=HOST.public_key,
        root=contract_root([s.chunk_id for s in shards]),
        chunk_count=len(shards),
        chunk_size=SIZE,
        price_per_window=Amount(1),
        windows=10,
        window_blocks=20,
        escrow=Amount(10),
        collateral=Amount(0),
        revision=0,
        status=kw.get("status", Status.ACTIVE),
        window=0,
        window_start=0,
        seed=b"",
        proven=False,
        windows_proven=0,
        windows_missed=0,
        opened_height=1,
    )
    cid = contract_id_of(len(shards))
    state = genesis_state({PUBLISHER.address: 10**24}, PARAMS).with_writes(
        {
            work_key(m.cid): Work("w", "1", "2024", "a", PUBLISHER.address, bytes(32), 1, 1),
            contract_key(cid): contract,
        }
    )
    return state, cid


def contract_id_of(count: int) -> bytes:
    return hashlib.sha256(b"contract of %d" % count).digest()


def repair_of(m: Manifest, shards: tuple[ShardRef, ...], i: int, contract: bytes) -> RepairRequest:
    """HOST's request to rebuild ``shards[i]``, with its path in the contract."""
    path = MerkleTree([s.chunk_id for s in shards]).proof(i).path
    return RepairRequest(m.cid, shards[i].stripe, shards[i].shard, contract, i, list(path))


def test_a_host_rebuilding_a_chunk_its_contract_lists_is_given_packets_free() -> None:
    m, _ = work()
    shards = at(m, (0, 1), (1, 1))
    state, contract = repair_state(m, shards)
    for i in range(2):
        assert check_repair(state, m, HOST.public_key, repair_of(m, shards, i, contract)) is None


def test_a_repair_is_refused_unless_every_part_of_it_holds() -> None:
    m, _ = work()
    shards = at(m, (0, 1), (1, 1))
    state, contract = repair_state(m, shards)
    good_req = repair_of(m, shards, 1, contract)
    other_work, _ = work(2)
    closed, _ = repair_state(m, shards, status=Status.CLOSED)
    strangers, _ = repair_state(m, shards, publisher=STRANGER.address)
    cases: dict[str, tuple[State, Manifest | None, bytes, RepairRequest]] = {
        "keeps no manifest": (state, None, HOST.public_key, good_req),
        "no shard 3 of stripe 9": (state, m, HOST.public_key, replace(good_req, stripe=9, shard=3)),
        "no live contract": (state, m, HOST.public_key, replace(good_req, contract=bytes(32))),
        "no live contract ": (closed, m, HOST.public_key, good_req),
        "another host's": (state, m, STRANGER.public_key, good_req),
        "not with the work's owner": (strangers, m, HOST.public_key, good_req),
        "lists 2 chunks, not 3": (state, m, HOST.public_key, replace(good_req, index=2)),
        "path is malformed": (state, m, HOST.public_key, replace(good_req, path=[])),
        # the chunk of another slot, or a path that proves another chunk
        "does not list that chunk there": (state, m, HOST.public_key, replace(good_req, shard=0)),
        "does not list that chunk there ": (
            state,
            m,
            HOST.public_key,
            replace(good_req, path=[bytes(32)]),
        ),
        "not with the work's owner ": (  # a work nobody registered
            state,
            other_work,
            HOST.public_key,
            replace(good_req, cid=other_work.cid),
        ),
    }
    for reason, (st_, manifest, key, req) in cases.items():
        why = check_repair(st_, manifest, key, req)
        assert why is not None and reason.strip() in why, (reason, why)
