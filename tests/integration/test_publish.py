"""``storenode publish`` against a local network in one process: a validator and six
host daemons on 127.0.0.1 (real sockets, real LevelDB, 1 s blocks), a funded
publisher home. k=2 n=4, so every stripe needs four of the six hosts.

Each test takes a few seconds of wall time (blocks come every second); every
wait is bounded.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import pytest
import trio

from contracts import (
    Amount,
    ContractTerms,
    Transfer,
    contract_id,
    contract_of,
    listing_of,
    work_of,
)
from contracts.encoding import decoder
from storenode.client.ledger import open_home_client
from storenode.config import load_config, write_config
from storenode.dht import Contact
from storenode.home import Home, init_home, open_home
from storenode.host.chunks import ChunkService
from storenode.host.daemon import HostNode
from storenode.host.messages import ChunkPutMany, ContractAccepted, ContractProposal, StoredMany
from storenode.identity import Identity, address_hex, keccak256
from storenode.localnet import init_localnet
from storenode.localnet.homes import HOST_PRICE
from storenode.net.dht import open_dht_node
from storenode.net.errors import RequestRefusedError
from storenode.net.peer import PeerConnection
from storenode.node import open_host_node
from storenode.publish import (
    HostFailedError,
    HostRefusedError,
    Stage,
    WorkFile,
    WorkOwnedError,
    discover_works,
)
from storenode.publish.journal import JournalStore
from storenode.publish.manifest import decode_manifest, manifest_hash, verify_manifest
from storenode.publish.pipeline import (
    Progress,
    PublishOptions,
    WorkResult,
    open_publisher,
)
from storenode.publish.placement import shard_target
from storenode.publish.records import (
    HOST_AD_TTL,
    HostAd,
    decode_pointer,
    encode_host_ad,
    host_bucket,
    hosts_key,
    manifest_key,
)
from storenode.wire.messages import ErrorCode, default_registry

pytestmark = pytest.mark.slow

HOSTS = 6
K, N = 2, 4
WAIT = 30.0
"""Longest a publish or a start may take (seconds of wall time)."""

_terms_decoder = decoder(ContractTerms)


@dataclass
class Running:
    node: HostNode
    stop: trio.Event
    stopped: trio.Event


@dataclass
class Net:
    root: Path
    nursery: trio.Nursery
    publisher: Home
    running: dict[str, Running] = field(default_factory=dict)

    async def start(self, name: str) -> HostNode:
        """Start the node of home ``name`` (again, after a stop: same stores)."""
        stop, stopped = trio.Event(), trio.Event()

        async def run(task_status: trio.TaskStatus[HostNode]) -> None:
            try:
                async with open_host_node(self.root / name, maintenance_interval=5.0) as node:
                    task_status.started(node)
                    await stop.wait()
            finally:
                stopped.set()

        with trio.fail_after(WAIT):
            node: HostNode = await self.nursery.start(run)
        self.running[name] = Running(node, stop, stopped)
        return node

    async def stop(self, name: str) -> None:
        running = self.running.pop(name)
        running.stop.set()
        with trio.fail_after(WAIT):
            await running.stopped.wait()

    @property
    def hosts(self) -> dict[str, HostNode]:
        return {n: r.node for n, r in self.running.items() if n.startswith("node-")}

    @property
    def validator(self) -> HostNode:
        return self.running["validator-1"].node


@asynccontextmanager
async def local_net(tmp_path: Path) -> AsyncIterator[Net]:
    localnet = init_localnet(tmp_path / "net", followers=HOSTS, block_time=1)
    for home in localnet.homes:  # no HTTP: these tests speak the wire only
        path = home.home / "config.toml"
        write_config(path, dataclasses.replace(load_config(path), http_enabled=False), replace=True)
    async with trio.open_nursery() as nursery:
        net = Net(tmp_path / "net", nursery, open_home(tmp_path / "net" / "publisher"))
        try:
            await net.start("validator-1")
            with trio.fail_after(WAIT):
                async with trio.open_nursery() as starting:
                    for i in range(1, HOSTS + 1):
                        starting.start_soon(net.start, f"node-{i}")
            yield net
        finally:
            nursery.cancel_scope.cancel()


def options(**kw: object) -> PublishOptions:
    base = PublishOptions(k=K, n=N, windows=10, max_price=HOST_PRICE, retry_delay=0.05)
    return dataclasses.replace(base, **kw)  # type: ignore[arg-type]


def write_works(folder: Path, sizes: dict[str, int], seed: int = 1) -> list[WorkFile]:
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for name, size in sizes.items():
        (folder / name).write_bytes(rng.randbytes(size))
    return discover_works([folder])


async def publish(
    net: Net, works: list[WorkFile], opts: PublishOptions, progress: Progress | None = None
) -> list[WorkResult]:
    with trio.fail_after(WAIT):
        async with open_publisher(net.publisher) as publisher:
            return [await publisher.publish(w, opts, progress) for w in works]


def check_stored(net: Net, work: WorkFile, result: WorkResult) -> None:
    """Every chunk of the work is on the host its contract names, byte-exact, and
    the ledger has the registration and the opened contracts."""
    loaded = JournalStore(net.publisher.config.publish_dir).load(result.cid)
    assert loaded is not None
    journal, raw = loaded
    assert journal.stage is Stage.COMPLETE
    manifest = decode_manifest(raw)
    verify_manifest(manifest, cid=result.cid)
    by_key = {h.identity.public_key.hex(): h for h in net.hosts.values()}
    for entry in journal.hosts:
        host = by_key[entry.key]
        assert host.store is not None
        for s, i in entry.shards:
            chunk = host.store.get(manifest.stripes[s].chunk_ids[i])
            assert len(chunk) == journal.shard_size
    state = net.validator.chain.state
    registered = work_of(state, result.cid)
    assert registered is not None and registered.manifest_hash == manifest_hash(manifest)
    for cid in result.contracts:
        assert contract_of(state, cid) is not None
    assert result.length == work.path.stat().st_size


def _closest_to_the_first_shard(work: WorkFile, net: Net) -> Identity:
    """An identity whose node id is nearer than every host's to the target of
    shard 0 of stripe 0, so that placement gives it that shard (all reputations
    are 0 on a new chain): its contract is certainly proposed."""
    target = int.from_bytes(shard_target(keccak256(work.path.read_bytes()), 0, 0), "big")

    def distance(identity: Identity) -> int:
        return int.from_bytes(identity.node_id, "big") ^ target

    nearest = min(distance(r.node.identity) for r in net.running.values())
    while True:
        rogue = Identity.generate()
        if distance(rogue) < nearest:
            return rogue


async def nonce_of(net: Net) -> int:
    async with open_home_client(net.publisher) as client:
        return (await client.call_account(net.publisher.identity().address)).next_nonce


# -- tests ------------------------------------------------------------------------------------


async def test_two_files_are_published_on_four_hosts_each_and_again_changes_nothing(
    tmp_path: Path,
) -> None:
    async with local_net(tmp_path) as net:
        works = write_works(tmp_path / "album", {"a.wav": 300_000, "b.flac": 40_000})

        results = await publish(net, works, options(price=Amount(5)))

        assert [r.status for r in results] == ["published", "published"]
        for work, result in zip(works, results, strict=True):
            assert len(result.hosts) == N and len(set(result.hosts)) == N
            assert len(result.contracts) == N and result.cost > 0
            check_stored(net, work, result)
        # The manifest is in the DHT under the CID.
        records = await net.validator.dht.find_value(manifest_key(results[0].cid))
        assert records and decode_pointer(records[0].value)

        listing = listing_of(net.validator.chain.state, results[0].cid)
        assert listing is not None and listing.price == 5

        nonce = await nonce_of(net)
        again = await publish(net, works, options(price=Amount(5)))

        assert [r.status for r in again] == ["unchanged", "unchanged"]
        assert [r.contracts for r in again] == [r.contracts for r in results]
        assert await nonce_of(net) == nonce  # nothing was sent

        repriced = await publish(net, works[:1], options(price=Amount(7)))

        assert [r.status for r in repriced] == ["repriced"]
        assert repriced[0].contracts == results[0].contracts
        assert await nonce_of(net) == nonce + 1  # one SetListing, nothing else
        listing = listing_of(net.validator.chain.state, results[0].cid)
        assert listing is not None and listing.price == 7


async def test_a_host_that_refuses_or_does_not_answer_is_replaced(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="storenode.publish")
    async with local_net(tmp_path) as net:
        # node-1 cannot lock any collateral (it gave its tokens away), so it refuses;
        # node-2 is gone, though its ad is still in the DHT.
        refusing, gone = net.hosts["node-1"], net.hosts["node-2"]
        home = open_home(net.root / "node-1")
        async with open_home_client(home) as client:
            info = await client.call_account(refusing.identity.address)
            fee = int(net.validator.chain.genesis.params.min_fee)
            body = Transfer(net.publisher.identity().address, Amount(int(info.balance) - fee))
            tx = await client.send_tx(refusing.identity, body, fee=fee)
            await client.wait_for_tx(tx, timeout=WAIT)
        gone_address = gone.identity.address
        await net.stop("node-2")
        # Eight stripes: every host gets shards in the first placement.
        (work,) = write_works(tmp_path / "one", {"a.wav": 8_000_000})

        (result,) = await publish(net, [work], options())

        assert result.status == "published"
        assert refusing.identity.address not in result.hosts
        assert gone_address not in result.hosts
        check_stored(net, work, result)
        warnings = [
            r.getMessage() for r in caplog.records if r.name.startswith("storenode.publish")
        ]
        refused = address_hex(refusing.identity.address)
        assert any(refused in w and "refused the contract" in w for w in warnings)
        assert any(address_hex(gone_address) in w and "did not answer" in w for w in warnings)
        assert all("placing its shards elsewhere" in w for w in warnings)


async def test_a_host_whose_acceptance_does_not_verify_is_left_out(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="storenode.publish")

    async def accept_without_signing(
        conn: PeerConnection, body: msgspec.Struct
    ) -> ContractAccepted:
        assert isinstance(body, ContractProposal)
        return ContractAccepted(contract_id(_terms_decoder.decode(body.terms)), bytes(64))

    async with local_net(tmp_path) as net:
        (work,) = write_works(tmp_path / "one", {"a.wav": 8_000_000})
        rogue = _closest_to_the_first_shard(work, net)
        async with open_dht_node(rogue) as dht:
            dht.rpc.route("contract.propose", accept_without_signing)
            seed = net.validator
            await dht.bootstrap([Contact(seed.identity.public_key, "127.0.0.1", seed.port)])
            assert dht.rpc.port is not None
            chain = seed.chain.genesis.chain_id
            ad = HostAd(
                rogue.public_key, "127.0.0.1", dht.rpc.port, 0, chain, "1", 0, 10**6, 1 << 40
            )
            directory = hosts_key(host_bucket(rogue.public_key))
            assert await dht.publish(directory, encode_host_ad(ad), ttl=HOST_AD_TTL) > 0

            (result,) = await publish(net, [work], options())

            assert result.status == "published"
            assert rogue.address not in result.hosts
            check_stored(net, work, result)
    warnings = [r.getMessage() for r in caplog.records if r.name.startswith("storenode.publish")]
    assert any(
        address_hex(rogue.address) in w and "an acceptance that does not verify" in w
        for w in warnings
    )


class CancelAt:
    """Progress that cancels the publish once ``after`` bytes of the upload are done."""

    def __init__(self, scope: trio.CancelScope, after: int) -> None:
        self.scope = scope
        self.after = after
        self.uploading = False
        self.done = 0

    def phase(self, work: WorkFile, what: str, total: int) -> None:
        self.uploading = what == "upload"

    def advance(self, amount: int) -> None:
        if self.uploading:
            self.done += amount
            if self.done >= self.after:
                self.scope.cancel()

    def finish(self, result: WorkResult) -> None:
        pass


async def test_hosts_of_an_older_version_get_their_chunks_one_per_request(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Three of the six hosts do not know ``chunk.put_many`` (they answer
    UNKNOWN_TYPE, as a version before it does): each stripe has at least one of
    them among its four hosts, and the publish still stores every chunk."""
    caplog.set_level(logging.INFO, logger="storenode.publish")
    async with local_net(tmp_path) as net:
        older = ["node-1", "node-3", "node-5"]
        for name in older:
            net.hosts[name].rpc.registry = default_registry.without("chunk.put_many")
        (work,) = write_works(tmp_path / "one", {"a.wav": 3_000_000})

        (result,) = await publish(net, [work], options())

        assert result.status == "published"
        check_stored(net, work, result)
        older_addresses = {net.hosts[name].identity.address for name in older}
        assert older_addresses & set(result.hosts)
    told = [
        r.getMessage() for r in caplog.records if "does not know chunk.put_many" in r.getMessage()
    ]
    assert told, "the fallback was never taken"
    assert all(any(address_hex(a) in m for a in older_addresses) for m in told)


async def test_a_publish_interrupted_after_the_contracts_resumes_and_completes(
    tmp_path: Path,
) -> None:
    async with local_net(tmp_path) as net:
        (work,) = write_works(tmp_path / "one", {"long.wav": 3_000_000})

        with trio.CancelScope() as scope:
            await publish(net, [work], options(), CancelAt(scope, 1))
        assert scope.cancelled_caught
        store = JournalStore(net.publisher.config.publish_dir)
        loaded = store.load(bytes.fromhex(_cid_of(store)))
        assert loaded is not None
        interrupted = loaded[0]
        assert interrupted.contracts_sent and interrupted.stage is not Stage.COMPLETE
        sent = {h.key: h.terms for h in interrupted.hosts}

        (result,) = await publish(net, [work], options())

        assert result.status == "published"
        check_stored(net, work, result)
        loaded = store.load(result.cid)
        assert loaded is not None
        assert {h.key: h.terms for h in loaded[0].hosts} == sent  # nothing proposed again
        async with open_home_client(net.publisher) as client:
            opened = await client.all_contracts(net.publisher.identity().address, "publisher")
        assert sorted(c.contract_id for c in opened) == sorted(result.contracts)


def _cid_of(store: JournalStore) -> str:
    (path,) = store.directory.glob("*.json")
    return path.stem


class KillAt:
    """Progress that stops a host once ``after`` bytes of the upload are done."""

    def __init__(self, kill: Callable[[], None], after: int) -> None:
        self.kill = kill
        self.after = after
        self.uploading = False
        self.done = 0
        self.killed = False

    def phase(self, work: WorkFile, what: str, total: int) -> None:
        self.uploading = what == "upload"

    def advance(self, amount: int) -> None:
        if self.uploading and not self.killed:
            self.done += amount
            if self.done >= self.after:
                self.killed = True
                self.kill()

    def finish(self, result: WorkResult) -> None:
        pass


async def test_a_host_killed_mid_upload_stops_the_publish_which_resumes_when_it_is_back(
    tmp_path: Path,
) -> None:
    async with local_net(tmp_path) as net:
        (work,) = write_works(tmp_path / "one", {"long.wav": 6_000_000})
        victim: list[str] = []

        def kill() -> None:
            # the first host of the work's contracts: it holds shards of every stripe it is in
            store = JournalStore(net.publisher.config.publish_dir)
            (path,) = store.directory.glob("*.json")
            loaded = store.load(bytes.fromhex(path.stem))
            assert loaded is not None
            key = loaded[0].hosts[0].key
            name = next(n for n, h in net.hosts.items() if h.identity.public_key.hex() == key)
            victim.append(name)
            net.running[name].stop.set()

        with pytest.raises(HostFailedError) as info:
            await publish(net, [work], options(put_timeout=2.0), KillAt(kill, 1))

        (name,) = victim
        dead = net.running.pop(name)
        with trio.fail_after(WAIT):
            await dead.stopped.wait()
        message = str(info.value)
        assert address_hex(dead.node.identity.address) in message
        assert "run the same command again to resume" in message

        await net.start(name)
        (result,) = await publish(net, [work], options())

        assert result.status == "published"
        check_stored(net, work, result)


async def test_a_host_refusing_its_shards_mid_upload_stops_the_publish_with_its_words(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with local_net(tmp_path) as net:
        (work,) = write_works(tmp_path / "one", {"long.wav": 6_000_000})
        first: list[bytes] = []  # the first host asked to store shards refuses them

        def refusing(service: ChunkService, key: bytes) -> Callable[..., StoredMany]:
            original = service.put_many

            def put_many(uploader_key: bytes, req: ChunkPutMany) -> StoredMany:
                first.append(key)
                if first[0] != key:
                    return original(uploader_key, req)
                time.sleep(0.5)  # slow to say so: the publisher's queue for it fills up
                raise RequestRefusedError(ErrorCode.REFUSED, "its disk is failing")

            return put_many

        for host in net.hosts.values():
            assert host.chunks is not None
            monkeypatch.setattr(
                host.chunks, "put_many", refusing(host.chunks, host.identity.public_key)
            )

        with pytest.raises(HostRefusedError) as info:
            await publish(net, [work], options(per_host=1))
        message = str(info.value)
        assert "its disk is failing" in message
        assert "run the same command again to resume" in message


async def test_a_work_registered_to_someone_else_is_refused_naming_the_owner(
    tmp_path: Path,
) -> None:
    async with local_net(tmp_path) as net:
        (work,) = write_works(tmp_path / "one", {"a.wav": 10_000})
        (result,) = await publish(net, [work], options())
        config = load_config(net.root / "publisher" / "config.toml")
        config = dataclasses.replace(config, genesis_file=net.root / "genesis.json")
        other, _ = init_home(tmp_path / "other", config)

        with trio.fail_after(WAIT), pytest.raises(WorkOwnedError) as info:
            async with open_publisher(other) as publisher:
                await publisher.publish(work, options())

        assert address_hex(net.publisher.identity().address) in str(info.value)
        assert result.cid.hex() in str(info.value)
