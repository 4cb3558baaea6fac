"""Planning a publish: which hosts, which shards each keeps, and the terms offered."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts import (
    BlockContext,
    OpenContract,
    apply,
    begin_block,
    contract_id,
    contract_of,
    decode_tx,
    sign_terms,
    tokens,
    verify_tx,
)
from contracts.encoding import BPS
from storenode.coding.merkle import contract_root
from storenode.identity import Identity, keccak256
from storenode.publish.errors import TooFewHostsError
from storenode.publish.manifest import Manifest, StripeEntry, sign_manifest
from storenode.publish.placement import NotEnoughHostsError
from storenode.publish.plan import (
    ACCEPT_MARGIN,
    GIB,
    HostOffer,
    assign,
    chunk_ids_of,
    collateral_for,
    escrow_of,
    listing_for,
    make_terms,
    price_per_window,
    select_hosts,
)
from storenode.publish.records import HostAd
from storenode.testing.ledger import account, funded_genesis, signed

CID = keccak256(b"a work")
CHAIN = "testnet"
PUBLISHER = Identity.from_seed(b"p" * 32)


def ad(
    seed: int,
    *,
    price: int = 10**16,
    chain_id: str = CHAIN,
    free: int = GIB,
    max_windows: int = 1000,
    collateral_bps: int = 5000,
) -> HostAd:
    key = Identity.from_seed(bytes([seed]) * 32).public_key
    return HostAd(
        key, "127.0.0.1", 7000 + seed, 0, chain_id, str(price), collateral_bps, max_windows, free
    )


def offers(ads: list[HostAd], reputation: int = 0) -> list[HostOffer]:
    return [HostOffer(a, reputation) for a in ads]


# -- which hosts --------------------------------------------------------------------------


def select(ads: list[HostAd], **kw: object) -> tuple[list[HostAd], dict[str, int]]:
    args: dict[str, object] = {
        "chain_id": CHAIN,
        "max_price": 10**17,
        "windows": 100,
        "publisher": PUBLISHER.public_key,
    }
    args.update(kw)
    choice = select_hosts(ads, **args)  # type: ignore[arg-type]
    return choice.usable, dict(choice.skipped)


def test_hosts_of_another_chain_above_the_max_price_or_too_short_are_left_out_and_counted() -> None:
    good = [ad(1), ad(2)]
    usable, skipped = select(
        [*good, ad(3, chain_id="other"), ad(4, price=10**18), ad(5, max_windows=10)]
    )

    assert usable == good
    assert skipped == {
        "serve another chain": 1,
        "ask more than publish.max_price": 1,
        "sign fewer than 100 windows": 1,
    }


def test_the_publishers_own_node_and_refusing_hosts_are_left_out() -> None:
    mine = HostAd(PUBLISHER.public_key, "127.0.0.1", 1, 0, CHAIN, "1", 0, 1000, GIB)
    usable, skipped = select([mine, ad(1), ad(2)], exclude=[ad(2).key])

    assert usable == [ad(1)]
    assert skipped == {"is this publisher's own node": 1, "refused or did not answer": 1}


def test_a_host_listed_twice_counts_once() -> None:
    usable, skipped = select([ad(1), ad(1)])

    assert usable == [ad(1)] and skipped == {}


# -- which shards -------------------------------------------------------------------------


def test_every_shard_is_placed_once_in_stripe_shard_order_and_no_stripe_twice_on_a_host() -> None:
    hosts = [ad(i) for i in range(1, 9)]
    plan = assign(CID, 5, 6, 1024, offers(hosts))

    placed = sorted(key for shards in plan.values() for key in shards)
    assert placed == [(s, i) for s in range(5) for i in range(6)]
    for shards in plan.values():
        assert shards == sorted(shards)
        stripes = [s for s, _ in shards]
        assert len(stripes) == len(set(stripes))
    assert set(plan) <= {h.key for h in hosts}


def test_without_enough_room_the_error_counts_the_full_hosts() -> None:
    hosts = [ad(i) for i in range(1, 6)] + [ad(6, free=1024)]
    with pytest.raises(TooFewHostsError) as info:
        assign(CID, 4, 6, 1024, offers(hosts))

    assert info.value.needed == 6 and info.value.available == 5
    assert "1 have too little free space" in str(info.value)
    assert isinstance(info.value, NotEnoughHostsError)


def test_a_full_host_is_dropped_and_the_shards_placed_on_the_others() -> None:
    hosts = [ad(i) for i in range(1, 8)] + [ad(8, free=1024)]
    plan = assign(CID, 4, 6, 1024, offers(hosts))

    assert ad(8).key not in plan or len(plan[ad(8).key]) <= 1
    assert sum(len(v) for v in plan.values()) == 24


def test_too_few_hosts_says_how_many_are_needed_found_and_why_the_rest_were_left_out() -> None:
    with pytest.raises(TooFewHostsError) as info:
        assign(CID, 2, 6, 1024, offers([ad(1), ad(2)]), skipped={"serve another chain": 3})

    message = str(info.value)
    assert "needs 6 hosts" in message and "2 can take it" in message
    assert "of 5 found: 3 serve another chain" in message
    assert "--n" in message


def test_no_host_at_all_points_at_the_peers_in_the_config() -> None:
    with pytest.raises(TooFewHostsError, match="none found in the DHT"):
        assign(CID, 1, 3, 1024, [])


# -- the terms ----------------------------------------------------------------------------


def test_the_price_per_window_is_the_price_per_gib_for_the_bytes_rounded_up() -> None:
    assert price_per_window(10**18, GIB) == 10**18
    assert price_per_window(10**18, GIB // 4) == 10**18 // 4
    assert price_per_window(3, 1) == 1  # never rounded down to nothing
    assert price_per_window(GIB, GIB + 1) == GIB + 1
    assert price_per_window(0, GIB) == 0


@given(st.integers(0, 10**24), st.integers(1, 2**40))
def test_the_price_per_window_never_pays_less_than_asked(price: int, size: int) -> None:
    paid = price_per_window(price, size)

    assert paid * GIB >= price * size
    assert (paid - 1) * GIB < price * size or paid == 1


def test_the_collateral_is_the_offered_share_of_the_escrow_rounded_down() -> None:
    assert collateral_for(10_001, 5000) == 5000
    assert collateral_for(10_000, BPS) == 10_000
    assert collateral_for(12345, 0) == 0


def manifest_of(stripes: int, n: int) -> Manifest:
    entries = [
        StripeEntry(tuple(keccak256(bytes([s, i])) for i in range(n)), keccak256(bytes([s])))
        for s in range(stripes)
    ]
    return sign_manifest(
        PUBLISHER,
        cid=CID,
        name="a.wav",
        media_type="audio/wav",
        length=stripes * 3072,
        k=3,
        n=n,
        stripe_size=3072,
        stripes=entries,
        created=1,
    )


def test_terms_cover_the_hosts_shards_in_order_at_the_hosts_price_and_collateral() -> None:
    manifest = manifest_of(3, 5)
    shards = [(0, 1), (1, 4), (2, 0)]
    ids = chunk_ids_of(manifest, shards)
    host = Identity.from_seed(b"h" * 32)
    offer = HostAd(host.public_key, "h", 1, 0, CHAIN, str(int(tokens(1))), 2500, 1000, GIB)
    terms = make_terms(
        chain_id=CHAIN,
        publisher=PUBLISHER.public_key,
        ad=offer,
        chunk_ids=ids,
        chunk_size=1024,
        windows=10,
        window_blocks=4,
        height=7,
        salt=99,
    )

    assert ids == [manifest.stripes[s].chunk_ids[i] for s, i in shards]
    assert terms.root == contract_root(ids)
    assert (terms.chunk_count, terms.chunk_size) == (3, 1024)
    assert int(terms.price_per_window) == price_per_window(tokens(1), 3 * 1024)
    assert escrow_of(terms) == int(terms.price_per_window) * 10
    assert int(terms.collateral) == escrow_of(terms) * 2500 // BPS
    assert terms.accept_until == 7 + ACCEPT_MARGIN
    assert (terms.host, terms.publisher, terms.salt) == (host.public_key, PUBLISHER.public_key, 99)


def test_terms_open_a_contract_on_the_ledger() -> None:
    genesis = funded_genesis(window_blocks=4)
    publisher, host = account(0), account(1)
    ids = [keccak256(bytes([i])) for i in range(4)]
    price = str(int(tokens(1)))
    offer = HostAd(host.public_key, "h", 1, 0, genesis.chain_id, price, 5000, 1000, GIB)
    terms = make_terms(
        chain_id=genesis.chain_id,
        publisher=publisher.public_key,
        ad=offer,
        chunk_ids=ids,
        chunk_size=1024,
        windows=10,
        window_blocks=genesis.window_blocks,
        height=0,
        salt=random.Random(1).getrandbits(64),
    )
    raw = signed(publisher, OpenContract(terms, sign_terms(host, terms)), 0)
    context = BlockContext(1, genesis.time + 1, account(2).address, b"\0" * 32)

    state, _ = begin_block(genesis.state(), context)
    state, _ = apply(state, verify_tx(decode_tx(raw)), context)

    opened = contract_of(state, contract_id(terms))
    assert opened is not None
    assert opened.escrow == escrow_of(terms) and opened.collateral == terms.collateral


def test_a_listing_pays_the_whole_price_to_the_owner() -> None:
    listing = listing_for(CID, tokens(2), PUBLISHER.address)

    assert listing.fingerprint == CID and listing.price == tokens(2)
    assert [(s.address, s.bps) for s in listing.shares] == [(PUBLISHER.address, BPS)]
