"""The publish journal: what a resumed publish finds, and what it refuses to guess."""

from __future__ import annotations

import contextlib
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from mutations import mutations

from contracts import ContractTerms, tokens
from contracts.encoding import encode
from storenode.publish.errors import JournalError
from storenode.publish.journal import HostEntry, Journal, JournalStore, Stage, encode_journal

CID = bytes(range(32))


def journal(**kw: object) -> Journal:
    fields: dict[str, object] = {
        "cid": CID.hex(),
        "genesis": "ab" * 32,
        "path": "/music/a.wav",
        "name": "a.wav",
        "media_type": "audio/wav",
        "length": 5000,
        "k": 2,
        "n": 4,
        "stripe_size": 6144,
        "stripes": 1,
        "manifest_hash": "cd" * 32,
        "windows": 10,
    }
    fields.update(kw)
    return Journal(**fields)  # type: ignore[arg-type]


def terms() -> ContractTerms:
    return ContractTerms(
        chain_id="testnet",
        publisher=b"p" * 32,
        host=b"h" * 32,
        root=b"r" * 32,
        chunk_count=2,
        chunk_size=3072,
        price_per_window=tokens("0.5"),
        windows=10,
        window_blocks=4,
        collateral=tokens(1),
        accept_until=60,
        salt=7,
    )


def test_a_saved_journal_and_its_manifest_come_back_as_they_were(tmp_path: Path) -> None:
    store = JournalStore(tmp_path / "publish")
    j = journal(stage=Stage.SENT, register_tx="aa" * 32, price="5")
    entry = HostEntry(key=("11" * 32), host="127.0.0.1", port=7401, shards=[(0, 1), (0, 3)])
    entry.accept(encode(terms()), b"s" * 64)
    entry.acked = [1, 0]
    j.hosts.append(entry)
    store.save_manifest(CID, b"the manifest")
    store.save(j)

    loaded = store.load(CID)

    assert loaded is not None
    back, manifest = loaded
    assert manifest == b"the manifest"
    assert back == j
    assert back.hosts[0].acked == [0, 1]  # saved sorted
    assert back.hosts[0].shards == [(0, 1), (0, 3)]
    assert back.hosts[0].contract_terms() == terms()
    assert back.hosts[0].accepted and back.hosts[0].public_key == b"\x11" * 32
    assert back.stage is Stage.SENT and back.shard_size == 3072 and not back.complete


def test_no_journal_is_none_and_saving_makes_the_directory(tmp_path: Path) -> None:
    store = JournalStore(tmp_path / "data" / "publish")
    assert store.load(CID) is None

    store.save_manifest(CID, b"m")
    store.save(journal())

    assert store.journal_path(CID).name == f"{CID.hex()}.json"
    assert store.load(CID) is not None


def test_a_new_acceptance_forgets_the_previous_open_transaction() -> None:
    entry = HostEntry(key="11" * 32, host="h", port=1, shards=[(0, 0)])
    entry.accept(b"old", b"s" * 64)
    entry.open_tx, entry.opened = "ee" * 32, True

    entry.accept(encode(terms()), b"t" * 64)

    assert (entry.open_tx, entry.opened) == ("", False)
    assert entry.signature == (b"t" * 64).hex()


def test_contracts_count_as_sent_once_an_open_transaction_is_recorded() -> None:
    j = journal(hosts=[HostEntry(key="11" * 32, host="h", port=1, shards=[(0, 0)])])
    assert not j.contracts_sent

    j.hosts[0].open_tx = "ff" * 32

    assert j.contracts_sent
    assert j.host(b"\x11" * 32) is j.hosts[0] and j.host(b"\x22" * 32) is None


def test_a_damaged_journal_says_to_remove_it(tmp_path: Path) -> None:
    store = JournalStore(tmp_path)
    store.save_manifest(CID, b"m")
    store.journal_path(CID).write_bytes(b"{not json")

    with pytest.raises(JournalError, match="remove it to start this work's publish over"):
        store.load(CID)


def test_a_journal_of_another_work_or_version_is_refused(tmp_path: Path) -> None:
    store = JournalStore(tmp_path)
    store.save_manifest(CID, b"m")
    store.journal_path(CID).write_bytes(encode_journal(journal(cid="00" * 32)))
    with pytest.raises(JournalError, match="is not a version-1 journal of work"):
        store.load(CID)

    store.journal_path(CID).write_bytes(encode_journal(journal(version=2)))
    with pytest.raises(JournalError, match="is not a version-1 journal"):
        store.load(CID)


def test_a_journal_without_its_manifest_is_refused(tmp_path: Path) -> None:
    store = JournalStore(tmp_path)
    store.save(journal())

    with pytest.raises(JournalError, match=r"manifest .* cannot be read"):
        store.load(CID)


def test_damaged_terms_are_reported_not_guessed() -> None:
    entry = HostEntry(key="11" * 32, host="h", port=1, shards=[(0, 0)], terms="zz", signature="00")

    with pytest.raises(JournalError, match="terms for host"):
        entry.contract_terms()


@given(st.sets(st.integers(0, 10_000), max_size=50), st.sampled_from(list(Stage)))
def test_acknowledged_positions_and_stage_survive_a_round_trip(
    acked: set[int], stage: Stage
) -> None:
    entry = HostEntry(key="11" * 32, host="h", port=1, shards=[(0, 0)], acked=list(acked))
    raw = encode_journal(journal(hosts=[entry], stage=stage))

    back = msgspec.json.decode(raw, type=Journal)

    assert back.hosts[0].acked == sorted(acked) and back.stage is stage


def _saved() -> bytes:
    entry = HostEntry(key=("11" * 32), host="127.0.0.1", port=7401, shards=[(0, 1), (0, 3)])
    entry.accept(encode(terms()), b"s" * 64)
    entry.acked = [0]
    return encode_journal(journal(stage=Stage.SENT, register_tx="aa" * 32, hosts=[entry]))


SAVED = _saved()


# One folder for every example: each writes the journal anew before it loads it.
@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(raw=mutations(SAVED, "json") | st.binary(max_size=100))
@example(raw=SAVED.replace(b'"a.wav"', b'"a.wa\xff"'))  # a name that is not UTF-8
@example(raw=SAVED[:-1] + b',"x":' + b"[" * 5000 + b"]" * 5000 + b"}")  # deep nesting
def test_any_journal_file_loads_or_says_it_is_damaged(tmp_path: Path, raw: bytes) -> None:
    store = JournalStore(tmp_path)
    store.save_manifest(CID, b"m")
    store.journal_path(CID).write_bytes(raw)
    try:
        loaded = store.load(CID)
    except JournalError:
        return
    assert loaded is not None
    back, manifest = loaded
    assert back.cid == CID.hex() and manifest == b"m"
    for entry in back.hosts:
        with contextlib.suppress(JournalError):
            entry.contract_terms()
