"""The host daemon in one process, on 127.0.0.1: a validator and host daemons with
real sockets and real LevelDB directories, and a publisher driving them over the wire.

Blocks come every second and windows last 3 blocks, so a test that waits for
windows takes a few seconds of wall time; every wait is bounded.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import signal
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import pytest
import trio
from msgspec.structs import replace

from contracts import (
    Amount,
    ContractTerms,
    OpenContract,
    balance_of,
    contract_id,
    encode_tx,
    sign_tx,
    tokens,
)
from contracts.encoding import encode
from contracts.events import WindowSettled
from contracts.tx import TERMS_DOMAIN, Tx
from storenode.coding import kernel
from storenode.coding.errors import GfBackendUnavailableError
from storenode.coding.merkle import contract_root
from storenode.config import Config, PeerSpec
from storenode.dht import Record, parse_provider
from storenode.home import init_home
from storenode.homedir import READY_FILE
from storenode.host.daemon import HostNode
from storenode.host.messages import (
    ChunkData,
    ChunkGet,
    ChunkPut,
    ContractAccepted,
    ContractProposal,
    ManifestData,
    ManifestGet,
    ManifestPut,
    ManifestStored,
    OfferRequest,
    Placement,
    ShardRef,
    Stored,
)
from storenode.identity import Identity, keccak256, verify
from storenode.ledger import Chain, Genesis, save_genesis
from storenode.ledger.messages import Submitted, SubmitTx
from storenode.net.ledger import LedgerService, open_ledger_node
from storenode.net.rpc import RpcNode, open_rpc_node
from storenode.node import AdvertiseMissingError, open_host_node, run_host
from storenode.publish.manifest import Manifest, build_manifest, encode_manifest
from storenode.publish.records import (
    decode_host_ad,
    decode_pointer,
    host_bucket,
    hosts_key,
    join_manifest,
    manifest_key,
    manifest_piece_key,
    providers_key,
)
from storenode.testing.ledger import FEE, account, funded_genesis, validator
from storenode.wire.errors import RemoteError
from storenode.wire.messages import ErrorCode

pytestmark = pytest.mark.slow

WAIT = 20.0
"""Longest any condition may take to come true (seconds of wall time)."""
WINDOW_BLOCKS = 3
K, N = 2, 4
STRIPE = 4096
"""Two stripes of 4 KiB: shards of 2 KiB, two segments each."""
PRICE = tokens("0.001")
"""Per window: far above what the hosts ask (0.01 token per GiB per window)."""
CAPACITY = 64 * 1024


@dataclass(frozen=True)
class Addr:
    key: bytes
    host: str
    port: int


def genesis() -> Genesis:
    return funded_genesis(block_time=1, window_blocks=WINDOW_BLOCKS, min_window_blocks=2)


@dataclass
class Work:
    manifest: Manifest
    shards: list[list[bytes]]  # per stripe, its n shards

    @property
    def cid(self) -> bytes:
        return self.manifest.cid

    @property
    def raw(self) -> bytes:
        return encode_manifest(self.manifest)

    def refs(self, slots: Sequence[tuple[int, int]]) -> tuple[ShardRef, ...]:
        return tuple(ShardRef(s, i, self.manifest.stripes[s].chunk_ids[i]) for s, i in slots)

    def put(self, ref: ShardRef) -> ChunkPut:
        return ChunkPut(
            ref.chunk_id,
            Placement(self.cid, ref.stripe, ref.shard, K, N),
            self.shards[ref.stripe][ref.shard],
        )


def make_work(seed: int = 1) -> Work:
    data = random.Random(seed).randbytes(2 * STRIPE)
    manifest, shards = build_manifest(
        account(0), "track", "audio/wav", data, k=K, n=N, stripe_size=STRIPE, created=1
    )
    return Work(manifest, [[bytes(s) for s in stripe] for stripe in shards])


@dataclass
class Net:
    root: Path
    genesis: Genesis
    validator: LedgerService
    nursery: trio.Nursery
    client: RpcNode
    publisher: Identity = field(default_factory=lambda: account(0))
    nonce: int = 0
    hosts: dict[str, HostNode] = field(default_factory=dict)
    stops: dict[str, trio.Event] = field(default_factory=dict)
    stopped: dict[str, trio.Event] = field(default_factory=dict)
    settled: list[WindowSettled] = field(default_factory=list)

    @property
    def validator_addr(self) -> PeerSpec:
        port = self.validator.rpc.port
        assert port is not None
        return PeerSpec(self.validator.identity.public_key, "127.0.0.1", port)

    def home(self, name: str, identity: Identity, peers: Sequence[str] = (), **config: Any) -> Path:
        """Create the home of host ``name`` (peers: the validator and ``peers``)."""
        specs = [self.validator_addr, *(addr(self.hosts[p]) for p in peers)]
        config.setdefault("capacity", CAPACITY)
        config.setdefault("price", tokens("0.01"))
        config.setdefault("max_windows", 50)
        config.setdefault("http_enabled", False)
        base = Config(
            listen_port=_free_port(),
            peers=tuple(specs),
            genesis_file=self.root / "genesis.json",
            **config,
        )
        home, _ = init_home(self.root / name, base, identity=identity)
        return home.root

    async def start(self, name: str) -> HostNode:
        """Run the host daemon of home ``name`` until :meth:`stop`."""
        stop, stopped = trio.Event(), trio.Event()

        async def run(task_status: trio.TaskStatus[HostNode]) -> None:
            try:
                async with open_host_node(self.root / name) as node:
                    task_status.started(node)
                    await stop.wait()
            finally:
                stopped.set()

        node: HostNode = await self.nursery.start(run)
        self.hosts[name], self.stops[name], self.stopped[name] = node, stop, stopped
        return node

    async def stop(self, name: str) -> None:
        self.stops[name].set()
        await self.stopped[name].wait()
        del self.hosts[name]

    @property
    def height(self) -> int:
        return self.validator.chain.height

    def terms(self, host: HostNode, refs: Sequence[ShardRef], **kw: Any) -> ContractTerms:
        fields: dict[str, Any] = {
            "chain_id": self.genesis.chain_id,
            "publisher": self.publisher.public_key,
            "host": host.identity.public_key,
            "root": contract_root([r.chunk_id for r in refs]),
            "chunk_count": len(refs),
            "chunk_size": STRIPE // K,
            "price_per_window": PRICE,
            "windows": 3,
            "window_blocks": WINDOW_BLOCKS,
            "collateral": PRICE,
            "accept_until": self.height + 100,
            "salt": 0,
        }
        fields.update(kw)
        return ContractTerms(**fields)

    async def submit(self, body: Any) -> bytes:
        """Send a transaction of the publisher to the validator; its id."""
        tx = Tx(self.genesis.chain_id, self.publisher.public_key, self.nonce, Amount(FEE), body)
        reply = await self.client.request(
            self.validator_addr, SubmitTx(encode_tx(sign_tx(self.publisher, tx)))
        )
        assert isinstance(reply, Submitted) and reply.accepted, reply
        self.nonce += 1
        assert reply.tx_id is not None
        return reply.tx_id

    async def host_contract(
        self, host: HostNode, work: Work, slots: Sequence[tuple[int, int]]
    ) -> bytes:
        """Propose, upload every chunk and open the contract: its id."""
        refs = work.refs(slots)
        terms = self.terms(host, refs)
        accepted = await self.client.request(addr(host), proposal(work, terms, refs))
        assert isinstance(accepted, ContractAccepted)
        for ref in refs:
            assert await self.client.request(addr(host), work.put(ref)) == Stored(ref.chunk_id)
        await self.submit(OpenContract(terms, accepted.signature))
        return accepted.contract_id


def addr(node: HostNode) -> PeerSpec:
    return PeerSpec(node.identity.public_key, "127.0.0.1", node.port)


def proposal(work: Work, terms: ContractTerms, refs: Sequence[ShardRef]) -> ContractProposal:
    return ContractProposal(encode(terms), work.cid, K, N, tuple(refs))


def _free_port() -> int:
    from storenode.localnet import free_ports

    return free_ports(1)[0]


@asynccontextmanager
async def network(tmp_path: Path) -> AsyncIterator[Net]:
    g = genesis()
    save_genesis(g, tmp_path / "genesis.json")
    async with trio.open_nursery() as nursery:
        with Chain.open(tmp_path / "validator", g) as chain:
            async with (
                open_ledger_node(chain, validator(0), status_interval=1.0) as service,
                open_rpc_node(Identity.from_seed(b"p" * 32)) as client,
            ):
                net = Net(tmp_path, g, service, nursery, client)
                service.on_applied(
                    lambda a: net.settled.extend(
                        e for e in a.events if isinstance(e, WindowSettled)
                    )
                )
                try:
                    yield net
                finally:
                    for name in list(net.hosts):
                        await net.stop(name)
        nursery.cancel_scope.cancel()


async def eventually(condition: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    deadline = trio.current_time() + timeout
    while not condition():
        if trio.current_time() > deadline:
            pytest.fail(f"not within {timeout} s: {what}")
        await trio.sleep(0.05)


async def refusal(client: RpcNode, to: PeerSpec, body: msgspec.Struct) -> tuple[int, str]:
    with pytest.raises(RemoteError) as info:
        await client.request(to, body)
    return int(info.value.code), info.value.message


# -- contracts ------------------------------------------------------------------------------


def fake_refs(count: int) -> tuple[ShardRef, ...]:
    return tuple(
        ShardRef(i, 0, hashlib.sha256(i.to_bytes(4, "big")).digest()) for i in range(count)
    )


async def test_a_host_signs_good_terms_again_and_again_and_refuses_bad_ones_recording_nothing(
    tmp_path: Path,
) -> None:
    with trio.fail_after(WAIT):
        async with network(tmp_path) as net:
            net.home("host-a", account(1))
            a = await net.start("host-a")
            work = make_work()
            refs = work.refs([(0, 0), (1, 1)])
            terms = net.terms(a, refs)
            to = addr(a)

            first = await net.client.request(to, proposal(work, terms, refs))
            assert isinstance(first, ContractAccepted)
            assert first.contract_id == contract_id(terms)
            verify(a.identity.public_key, TERMS_DOMAIN, encode(terms), first.signature)
            assert await net.client.request(to, proposal(work, terms, refs)) == first

            other = Identity.from_seed(b"o" * 32)
            too_many = fake_refs(40)  # 80 KiB of chunks; the host has 64 KiB
            bad = {
                "the terms' root is not the contract root": (
                    replace(terms, root=bytes(32), salt=1),
                    refs,
                ),
                "price too low": (replace(terms, price_per_window=Amount(1), salt=2), refs),
                "51 windows: this host signs at most 50": (replace(terms, windows=51), refs),
                "the terms name another host": (replace(terms, host=other.public_key), refs),
                "has passed": (replace(terms, accept_until=0), refs),
                "not enough space": (
                    net.terms(a, too_many),
                    too_many,
                ),
            }
            for reason, (bad_terms, bad_refs) in bad.items():
                code, message = await refusal(net.client, to, proposal(work, bad_terms, bad_refs))
                assert code == ErrorCode.REFUSED and reason in message, (reason, message)
            garbage = ContractProposal(b"\x93\x01\x02\x03", work.cid, K, N, refs)
            assert (await refusal(net.client, to, garbage))[0] == ErrorCode.BAD_REQUEST

            status = a.status()
            assert status["contracts"] == {"pending": 1, "active": 0, "closed": 0}
            assert status["works"] == [work.cid.hex()]
            assert status["free"] == CAPACITY - 2 * (STRIPE // K)
            offer = await net.client.request(to, OfferRequest())
            assert offer == a.ad() and a.ad().free == status["free"]


async def test_a_host_takes_only_the_chunks_its_contracts_list(tmp_path: Path) -> None:
    with trio.fail_after(WAIT):
        async with network(tmp_path) as net:
            net.home("host-a", account(1))
            a = await net.start("host-a")
            work = make_work()
            refs = work.refs([(0, 0), (1, 1)])
            accepted = await net.client.request(addr(a), proposal(work, net.terms(a, refs), refs))
            assert isinstance(accepted, ContractAccepted)

            listed = work.put(refs[0])
            assert await net.client.request(addr(a), listed) == Stored(listed.chunk_id)
            got = await net.client.request(addr(a), ChunkGet(listed.chunk_id))
            assert got == ChunkData(memoryview(listed.data))

            unlisted = work.put(work.refs([(0, 2)])[0])
            code, message = await refusal(net.client, addr(a), unlisted)
            assert code == ErrorCode.REFUSED and "no contract of this host lists" in message
            elsewhere = ChunkPut(
                refs[1].chunk_id, Placement(work.cid, 0, 3, K, N), work.put(refs[1]).data
            )
            code, message = await refusal(net.client, addr(a), elsewhere)
            assert code == ErrorCode.REFUSED and "elsewhere than shard 3 of stripe 0" in message
            assert a.status()["chunks"] == 1


async def test_a_manifest_is_kept_and_served_only_for_a_work_under_contract(
    tmp_path: Path,
) -> None:
    with trio.fail_after(WAIT):
        async with network(tmp_path) as net:
            net.home("host-a", account(1))
            a = await net.start("host-a")
            work, stranger = make_work(1), make_work(2)
            refs = work.refs([(0, 0), (1, 1)])
            await net.client.request(addr(a), proposal(work, net.terms(a, refs), refs))

            stored = await net.client.request(addr(a), ManifestPut(work.raw))
            assert stored == ManifestStored(keccak256(work.raw))
            assert await net.client.request(addr(a), ManifestGet(work.cid)) == ManifestData(
                work.raw
            )
            code, message = await refusal(net.client, addr(a), ManifestPut(stranger.raw))
            assert code == ErrorCode.REFUSED and "no contract for that work" in message
            code, _ = await refusal(net.client, addr(a), ManifestGet(stranger.cid))
            assert code == ErrorCode.NOT_FOUND
            forged = bytearray(work.raw)
            forged[-1] ^= 1  # the signature's last byte
            code, message = await refusal(net.client, addr(a), ManifestPut(bytes(forged)))
            assert code == ErrorCode.REFUSED and "does not verify" in message


async def find(node: HostNode, key: bytes, owner: bytes) -> Record:
    """The record ``owner`` keeps under ``key``, as ``node`` finds it in the DHT."""
    while True:
        for record in await node.dht.find_value(key):
            if record.owner == owner:
                return record
        await trio.sleep(0.1)


async def test_another_host_finds_the_hosts_ad_provider_record_and_manifest_in_the_dht(
    tmp_path: Path,
) -> None:
    with trio.fail_after(WAIT):
        async with network(tmp_path) as net:
            net.home("host-a", account(1))
            a = await net.start("host-a")
            net.home("host-b", account(2), peers=["host-a"])
            b = await net.start("host-b")
            me = a.identity.public_key

            ad = decode_host_ad((await find(b, hosts_key(host_bucket(me)), me)).value, owner=me)
            assert (ad.port, ad.free, ad.price) == (a.port, CAPACITY, str(int(tokens("0.01"))))

            work = make_work()
            refs = work.refs([(0, 0)])
            await net.client.request(addr(a), proposal(work, net.terms(a, refs), refs))
            await net.client.request(addr(a), work.put(refs[0]))
            await net.client.request(addr(a), ManifestPut(work.raw))

            provider = parse_provider(await find(b, providers_key(work.cid), me))
            assert (provider.key, provider.port) == (me, a.port)
            pointer = decode_pointer((await find(b, manifest_key(work.cid), me)).value)
            pieces = [
                (await find(b, manifest_piece_key(pointer.manifest_hash, i), me)).value
                for i in range(pointer.pieces)
            ]
            assert join_manifest(pointer, pieces) == work.raw


# -- windows ----------------------------------------------------------------------------------


async def test_a_host_proves_its_windows_gets_paid_and_keeps_proving_after_a_restart(
    tmp_path: Path,
) -> None:
    with trio.fail_after(45):
        async with network(tmp_path) as net:
            net.home("host-a", account(1))
            a = await net.start("host-a")
            work = make_work()
            slots = [(0, 0), (0, 3), (1, 1)]
            start_balance = balance_of(net.validator.chain.state, a.identity.address)
            cid = await net.host_contract(a, work, slots)
            await eventually(lambda: a.status()["contracts"]["active"] == 1, "contract open")
            await eventually(lambda: a.status()["windows"]["proven"] >= 1, "window 0 proven")

            status = a.status()
            burn = PRICE * 200 // 10_000
            assert status["windows"] == {"proven": 1, "missed": 0}
            assert status["earned"] == str(PRICE - burn) and status["burned"] == str(burn)
            assert int(status["reputation"]) == burn
            paid = [e for e in net.settled if e.contract_id == cid]
            assert paid and paid[0].proven and paid[0].paid == PRICE - burn
            # The collateral is locked and a proof's fee paid, but the window paid more.
            balance = balance_of(net.validator.chain.state, a.identity.address)
            assert balance > start_balance - PRICE

            await net.stop("host-a")
            a = await net.start("host-a")
            ref = work.refs(slots)[2]
            got = await net.client.request(addr(a), ChunkGet(ref.chunk_id))
            assert got == ChunkData(memoryview(work.put(ref).data))  # at once, before any block
            await eventually(lambda: a.status()["windows"]["proven"] >= 2, "a proof after restart")
            await eventually(
                lambda: a.status()["contracts"]["closed"] == 1, "the contract runs its course"
            )
            await eventually(lambda: a.status()["chunks"] == 0, "its chunks let go")
            assert a.status()["works"] == []


async def test_a_host_that_lost_a_chunk_misses_its_window_and_the_publisher_is_refunded(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with trio.fail_after(WAIT):
        async with network(tmp_path) as net:
            net.home("host-b", account(2))
            b = await net.start("host-b")
            work = make_work()
            slots = [(1, 2)]  # one chunk: every challenge asks for it
            ref = work.refs(slots)[0]
            cid = await net.host_contract(b, work, slots)
            assert b.store is not None and b.store.delete(ref.chunk_id)  # the disk lost it

            await eventually(lambda: b.status()["windows"]["missed"] >= 1, "window 0 missed")
            missed = [e for e in net.settled if e.contract_id == cid]
            assert missed and not missed[0].proven and missed[0].refunded == PRICE
            assert b.status()["windows"]["proven"] == 0 and b.status()["earned"] == "0"
            code, _ = await refusal(net.client, addr(b), ChunkGet(ref.chunk_id))
            assert code == ErrorCode.NOT_FOUND
            said = f"missed window 0 of contract {cid.hex()[:8]}…: chunk 0 is missing here"
            await eventually(lambda: said in caplog.text, "the operator told why")


async def test_a_contract_never_opened_is_dropped_after_accept_until_with_its_chunks(
    tmp_path: Path,
) -> None:
    with trio.fail_after(WAIT):
        async with network(tmp_path) as net:
            net.home("host-a", account(1))
            a = await net.start("host-a")
            work = make_work()
            refs = work.refs([(0, 0), (1, 1)])
            until = net.height + 2
            terms = net.terms(a, refs, accept_until=until)
            await net.client.request(addr(a), proposal(work, terms, refs))
            for ref in refs:
                await net.client.request(addr(a), work.put(ref))
            assert a.status()["chunks"] == 2 and a.status()["free"] < CAPACITY

            await eventually(lambda: a.status()["contracts"]["pending"] == 0, "dropped")
            assert a.height > until
            await eventually(lambda: a.status()["chunks"] == 0, "its chunks deleted")
            status = a.status()
            assert status["chunks"] == 0 and status["used"] == 0 and status["free"] == CAPACITY
            code, _ = await refusal(net.client, addr(a), ChunkGet(refs[0].chunk_id))
            assert code == ErrorCode.NOT_FOUND


# -- the process -------------------------------------------------------------------------------


async def test_run_host_writes_its_ready_file_and_stops_cleanly_on_sigterm(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with trio.fail_after(WAIT):
        async with network(tmp_path) as net:
            http = _free_port()
            home = net.home("host-c", account(3), http_enabled=True, http_port=http)
            ready = home / READY_FILE
            async with trio.open_nursery() as nursery:
                port = await nursery.start(run_host, home)
                doc = json.loads(ready.read_text())
                assert doc["pid"] == os.getpid() and doc["name"] == "host-c"
                assert doc["wire"] == f"127.0.0.1:{port}" and doc["http"] == f"127.0.0.1:{http}"
                assert doc["public_key"] == account(3).public_key.hex()
                stream = await trio.open_tcp_stream("127.0.0.1", http)  # the API listens
                await stream.aclose()
                os.kill(os.getpid(), signal.SIGTERM)
            assert not ready.exists()
            assert "received SIGTERM: stopping" in caplog.text
            assert caplog.records[-1].getMessage().startswith("stopped at height")


async def test_a_node_that_does_not_host_follows_the_ledger_and_serves_no_chunks(
    tmp_path: Path,
) -> None:
    with trio.fail_after(WAIT):
        async with network(tmp_path) as net:
            home = net.home("router", account(4), host_enabled=False)
            node = await net.start("router")
            assert node.store is None and node.book is None
            await eventually(lambda: node.status()["height"] >= 2, "following the chain")
            status = node.status()
            assert status["host_enabled"] is False and status["capacity"] == 0
            code, _ = await refusal(net.client, addr(node), ChunkGet(bytes(32)))
            assert code == ErrorCode.UNAVAILABLE
            assert not (home / "data" / "chunks").exists()


async def test_a_host_on_every_interface_without_an_advertised_address_refuses_to_start(
    tmp_path: Path,
) -> None:
    with trio.fail_after(WAIT):
        async with network(tmp_path) as net:
            home = net.home("wildcard", account(4), listen_host="0.0.0.0")
            with pytest.raises(AdvertiseMissingError, match=r"wire\.advertise"):
                async with open_host_node(home):
                    pass  # pragma: no cover - it must not start
            assert not (home / "data" / "chunks").exists()


async def test_a_host_names_its_gf_kernel_as_it_starts_not_at_its_first_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(kernel, "_backend", None)  # as in a fresh process
    caplog.set_level(logging.INFO, logger="storenode.coding.kernel")
    with trio.fail_after(WAIT):
        async with network(tmp_path) as net:
            net.home("fresh", account(4))
            await net.start("fresh")
            said = [r.getMessage() for r in caplog.records if r.name == "storenode.coding.kernel"]
            assert said == [f"GF(2^8) kernel: {kernel.backend_name()}"]


async def test_a_host_told_to_use_an_unknown_gf_kernel_refuses_to_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kernel, "_backend", None)
    with trio.fail_after(WAIT):
        async with network(tmp_path) as net:
            home = net.home("misled", account(4))
            monkeypatch.setenv(kernel.ENV_VAR, "gpu")
            with pytest.raises(GfBackendUnavailableError, match="STORENODE_GF_BACKEND='gpu'"):
                async with open_host_node(home):
                    pass  # pragma: no cover - it must not start
            assert not (home / "data" / "chunks").exists()


async def test_a_host_announces_its_advertised_address_in_its_ad_and_contact(
    tmp_path: Path,
) -> None:
    with trio.fail_after(WAIT):
        async with network(tmp_path) as net:
            net.home("announced", account(4), listen_host="127.0.0.1", advertise_host="127.0.0.2")
            node = await net.start("announced")
            assert node.ad().host == "127.0.0.2"
            assert node.dht.contact.host == "127.0.0.2"


async def test_a_chunk_the_disk_damaged_is_found_by_the_background_scrub(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="storenode.host.daemon")
    with trio.fail_after(WAIT):
        async with network(tmp_path) as net:
            net.home("host-a", account(1), scrub_rate=1 << 20)
            a = await net.start("host-a")
            work = make_work()
            refs = work.refs([(0, 0), (1, 1)])
            terms = net.terms(a, refs)
            await net.client.request(addr(a), proposal(work, terms, refs))
            for ref in refs:
                await net.client.request(addr(a), work.put(ref))
            assert a.status()["damaged"] == 0
            name = refs[1].chunk_id.hex()
            path = a.config.chunks_dir / "chunks" / name[:2] / name  # docs/specs/chunk-store.md
            path.write_bytes(bytes(b ^ 0x5A for b in path.read_bytes()))

            await eventually(lambda: a.status()["damaged"] == 1, "the scrub found it")
            said = f"chunk {name[:16]}… is damaged on disk (found by the background scrub)"
            assert said in caplog.text and work.cid.hex()[:8] in caplog.text


async def test_a_damaged_chunk_is_rebuilt_from_the_other_hosts_once_enough_of_them_answer(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.INFO, logger="storenode.host.daemon")
    monkeypatch.setattr("storenode.host.repair.RETRY_AFTER", 0.5)  # not 5 minutes
    with trio.fail_after(3 * WAIT):
        async with network(tmp_path) as net:
            net.home("host-a", account(1), scrub_rate=1 << 20)
            a = await net.start("host-a")
            work = make_work()
            others: list[HostNode] = []
            for shard in range(3):  # k=2: a's shard 0 and two more of stripe 0
                host = a
                if shard > 0:
                    name = f"host-{'abc'[shard]}"
                    net.home(name, account(1 + shard), peers=["host-a"], scrub_rate=0)
                    host = await net.start(name)
                    others.append(host)
                refs = work.refs([(0, shard)])
                await net.client.request(addr(host), proposal(work, net.terms(host, refs), refs))
                assert await net.client.request(addr(host), work.put(refs[0])) == Stored(
                    refs[0].chunk_id
                )
                await net.client.request(addr(host), ManifestPut(work.raw))
            for host in others:  # a finds the others as providers of the work
                await find(a, providers_key(work.cid), host.identity.public_key)
            await net.stop("host-c")  # one other shard left: fewer than k

            name = work.manifest.stripes[0].chunk_ids[0].hex()
            path = a.config.chunks_dir / "chunks" / name[:2] / name  # docs/specs/chunk-store.md
            intact = path.read_bytes()
            path.write_bytes(bytes(b ^ 0x5A for b in intact))
            await eventually(lambda: a.repairer is not None and a.repairer.failed > 0, "a try")
            assert a.status()["damaged"] == 1
            assert f"could not repair chunk {name[:16]}…" in caplog.text

            await net.start("host-c")  # two intact shards again: the next pass rebuilds it
            await eventually(lambda: a.status()["repaired"] == 1, "the repair", 2 * WAIT)
            assert a.status()["damaged"] == 0
            assert path.read_bytes() == intact
            assert f"repaired chunk {name[:16]}… (shard 0 of stripe 0" in caplog.text
