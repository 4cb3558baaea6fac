"""The state: immutable, read through its overlay, and its root is the Merkle
root over the sorted entries cut into 65,536 buckets (docs/specs/ledger.md)."""

from __future__ import annotations

import hashlib

from contract_harness import ALICE, BOB, CAROL, Chain
from hypothesis import given
from hypothesis import strategies as st

from contracts import State, Transfer, tokens
from contracts.encoding import Amount, encode
from contracts.entries import MARKER, Allowance, Entry, bucket_of
from contracts.state import BUCKETS, EMPTY_ROOT
from storenode.coding.merkle import leaf_hash, root_of


def oracle_root(entries: dict[bytes, Entry]) -> bytes:
    """The spec, written out: leaves sorted by key within each bucket, empty
    buckets as SHA-256(""), and root_of over all 65,536 bucket roots."""
    buckets: dict[int, list[bytes]] = {}
    for key in sorted(entries):
        leaf = leaf_hash(bytes([len(key)]) + key + encode(entries[key]))
        buckets.setdefault(bucket_of(key), []).append(leaf)
    empty = hashlib.sha256(b"").digest()
    return root_of([root_of(buckets[b]) if b in buckets else empty for b in range(BUCKETS)])


def test_empty_state_root_is_the_tree_of_empty_buckets() -> None:
    assert State.empty().root == EMPTY_ROOT == oracle_root({})


def test_root_matches_the_spec_for_a_real_chain() -> None:
    chain = Chain()
    chain.send(ALICE, Transfer(BOB.address, tokens(1)))
    chain.begin()
    assert chain.state.root == oracle_root(dict(chain.state.items()))


def test_apply_leaves_the_given_state_as_it_was() -> None:
    chain = Chain()
    before = chain.state
    root, entries = before.root, dict(before.items())
    chain.send(ALICE, Transfer(BOB.address, tokens(1)))
    assert chain.state is not before
    assert before.root == root and dict(before.items()) == entries


def test_root_does_not_depend_on_where_the_overlay_was_committed() -> None:
    a, b = Chain(), Chain()
    for _ in range(5):
        for chain in (a, b):
            chain.send(ALICE, Transfer(BOB.address, tokens(1)))
            chain.send(BOB, Transfer(CAROL.address, tokens(2)))
        b.state = b.state.commit()  # b commits after every pair, a only per block
    assert a.state.root == b.state.root


def save(store: dict[bytes, bytes], state: State) -> None:
    """What a ledger does with a block's changes: write them in its batch."""
    for key, value in state.changes():
        if value is None:
            store.pop(key, None)
        else:
            store[key] = value


def test_saved_changes_reload_to_the_same_state() -> None:
    chain = Chain()
    store = {k: encode(e) for k, e in chain.state.items()}  # genesis and block 1 begun
    for n in range(4):
        chain.send(ALICE, Transfer(BOB.address, tokens(n)))
        save(store, chain.state)
        chain.begin()  # commits, then begins the next block
        save(store, chain.state)
    reloaded = State.from_entries(store.items())
    assert reloaded.root == chain.state.root
    assert dict(reloaded.items()) == dict(chain.state.items())


def test_overlay_stays_shallow_over_a_large_block() -> None:
    state = State.empty()
    for n in range(2_000):
        key = b"\x04" + n.to_bytes(4, "big") * 13
        state = state.with_writes({key: MARKER})
    assert len(state._layers) <= 12  # a binary counter: about log2(2000) layers
    assert len(state) == 2_000


# -- random writes against a dict model ----------------------------------------------------

KEYS = st.builds(
    lambda prefix, rest: b"\x02" + prefix + rest,
    st.sampled_from([b"\x00\x00", b"\x00\x01", b"\xff\xff", b"\x12\x34"]),  # few buckets
    st.binary(min_size=38, max_size=38).map(lambda b: b[:2] + bytes(36)),  # collisions too
)
WRITES = st.lists(st.tuples(KEYS, st.none() | st.integers(1, 2**200), st.booleans()), max_size=40)


@given(WRITES)
def test_state_reads_and_root_follow_a_dict_model(
    writes: list[tuple[bytes, int | None, bool]],
) -> None:
    state = State.empty()
    model: dict[bytes, Entry] = {}
    for key, value, commit in writes:
        if value is None:
            model.pop(key, None)
            state = state.with_writes({key: None})
        else:
            model[key] = Allowance(Amount(value))
            state = state.with_writes({key: Allowance(Amount(value))})
        if commit:
            state = state.commit()
        for probe in model:
            assert state.get(probe) == model[probe]
        assert state.get(key) == model.get(key)
    assert dict(state.items()) == model
    assert [k for k, _ in state.scan(b"\x02\x00\x00")] == sorted(
        k for k in model if k.startswith(b"\x02\x00\x00")
    )
    assert state.root == State.from_entries((k, encode(e)) for k, e in model.items()).root
    assert state.root == oracle_root(model)


def test_identical_blocks_give_identical_roots_on_fresh_states() -> None:
    def run() -> bytes:
        chain = Chain()
        for n in range(3):
            chain.send(ALICE, Transfer(BOB.address, tokens(n)))
            chain.send(CAROL, Transfer(ALICE.address, tokens(1)))
            chain.begin()
        root: bytes = chain.state.root
        return root

    first = run()
    assert run() == first
    assert first != Chain().state.root
