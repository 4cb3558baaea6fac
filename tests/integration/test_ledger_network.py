"""Ledger nodes on 127.0.0.1 (real sockets, real LevelDB, one process): gossip,
sync, rotation of validators, refusal of invalid blocks, and the queries.

Blocks come every second (the shortest block time the chain allows), so each
test takes a few seconds of wall time; every wait is bounded.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import pytest
import trio

from contracts import RegisterWork, decode_tx, tokens, tx_id
from storenode.identity import Identity
from storenode.ledger import (
    BLOCK_DOMAIN,
    AppliedBlock,
    Block,
    Chain,
    Genesis,
    Header,
    decode_block,
    encode_block,
    sign_block,
    tx_root,
)
from storenode.ledger.block import encode_header
from storenode.ledger.messages import (
    AccountInfo,
    BlockInfo,
    Blocks,
    ChainStatus,
    ContractList,
    GetAccount,
    GetBlock,
    GetBlocks,
    GetContracts,
    GetStatus,
    GetTx,
    GetWork,
    NewBlock,
    NewTx,
    Submitted,
    SubmitTx,
    TxInfo,
    WorkReply,
    sync_reply,
)
from storenode.net.ledger import (
    BLOCK_FANOUT,
    TX_FANOUT,
    LedgerService,
    Peer,
    open_ledger_node,
)
from storenode.net.peer import PeerConnection
from storenode.net.rpc import RpcNode, open_rpc_node
from storenode.testing.ledger import (
    FEE,
    START_BALANCE,
    StoredData,
    account,
    funded_genesis,
    open_contract,
    signed,
    transfer,
    validator,
)
from storenode.wire.messages import MessageInvalidError, default_registry

pytestmark = pytest.mark.slow

WAIT = 10.0
"""Longest any condition may take to come true (seconds of wall time)."""


# -- a network of ledger nodes ------------------------------------------------------------


@dataclass
class Node:
    name: str
    identity: Identity
    path: Path
    service: LedgerService
    stop: trio.Event
    stopped: trio.Event

    @property
    def chain(self) -> Chain:
        return self.service.chain

    @property
    def address(self) -> Peer:
        assert self.service.rpc.port is not None
        return Peer(self.identity.public_key, "127.0.0.1", self.service.rpc.port)


@dataclass
class LedgerNet:
    genesis: Genesis
    root: Path
    nursery: trio.Nursery
    nodes: list[Node] = field(default_factory=list)

    async def start(
        self, name: str, identity: Identity, peers: Sequence[Node] = (), *, synced: bool = True
    ) -> Node:
        """Start node ``name`` (its chain in ``root/name``, reopened if there)."""
        path = self.root / name
        stop, stopped = trio.Event(), trio.Event()
        addresses = [p.address for p in peers]

        async def run(task_status: trio.TaskStatus[LedgerService]) -> None:
            try:
                with Chain.open(path, self.genesis) as chain:
                    async with open_ledger_node(
                        chain, identity, peers=addresses, request_timeout=2.0, status_interval=1.0
                    ) as service:
                        task_status.started(service)
                        await stop.wait()
            finally:
                stopped.set()

        service: LedgerService = await self.nursery.start(run)
        node = Node(name, identity, path, service, stop, stopped)
        self.nodes.append(node)
        if synced:
            with trio.fail_after(WAIT):
                await service.synced.wait()
        return node

    async def stop(self, node: Node) -> None:
        node.stop.set()
        await node.stopped.wait()
        self.nodes.remove(node)


@asynccontextmanager
async def ledger_net(tmp_path: Path, genesis: Genesis) -> AsyncIterator[LedgerNet]:
    async with trio.open_nursery() as nursery:
        net = LedgerNet(genesis, tmp_path, nursery)
        try:
            yield net
        finally:
            nursery.cancel_scope.cancel()


@asynccontextmanager
async def client() -> AsyncIterator[RpcNode]:
    """A wallet or CLI: an RPC node that serves nothing."""
    async with open_rpc_node(Identity.from_seed(b"c" * 32)) as rpc:
        yield rpc


async def eventually(condition: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    deadline = trio.current_time() + timeout
    while not condition():
        if trio.current_time() > deadline:
            pytest.fail(f"not within {timeout} s: {what}")
        await trio.sleep(0.02)


def agree(nodes: Sequence[Node], at_least: int = 1) -> bool:
    tips = {(n.chain.tip.height, n.chain.tip.hash, n.chain.tip.state_root) for n in nodes}
    return len(tips) == 1 and nodes[0].chain.height >= at_least


async def all_agree(nodes: Sequence[Node], at_least: int = 1) -> None:
    """Every node at the same tip (height, hash, state root), at ``at_least`` or above."""
    await eventually(lambda: agree(nodes, at_least), f"agreement at height >= {at_least}")


def one_validator() -> Genesis:
    return funded_genesis(validators=1, block_time=1)


# -- gossip --------------------------------------------------------------------------------


async def test_a_transaction_costs_the_network_messages_per_node_not_per_pair(
    tmp_path: Path,
) -> None:
    """Nine nodes, every one the peer of every other: a transfer reaches the
    validator and is put in a block, while each node relays it to at most the
    validator and TX_FANOUT others (flooding would send it over every link:
    9 × 7 = 63 times)."""
    async with ledger_net(tmp_path, one_validator()) as net:
        nodes = await _full_mesh(net, followers=8)
        v = nodes[0]
        raw = transfer(account(0), account(1).address, tokens(3), 0)
        async with client() as wallet:
            reply = await wallet.request(nodes[-1].address, SubmitTx(raw))
        assert isinstance(reply, Submitted) and reply.accepted
        tid = reply.tx_id
        assert tid is not None
        await eventually(lambda: v.chain.store.tx_location(tid) is not None, "in a block")
        await trio.sleep(0.5)  # relays still in flight land
        received = sum(n.service.stats.txs_accepted + n.service.stats.txs_known for n in nodes)
        relayed = received - 1  # the wallet's submit is not a relay
        assert relayed <= len(nodes) * (1 + TX_FANOUT)
        assert relayed < len(nodes) * (len(nodes) - 2)


async def test_a_block_costs_the_network_messages_per_node_not_per_pair(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nine nodes, every one the peer of every other: the validator sends each block
    to its eight peers and each of them relays it to BLOCK_FANOUT others, so every
    node has every block while it crosses at most 8 + 8 × 4 = 40 links, not every
    link (flooding: 8 + 8 × 7 = 64)."""
    copies: Counter[int] = Counter()
    handle_block = LedgerService.handle_block

    async def counted(self: LedgerService, conn: PeerConnection, body: msgspec.Struct) -> None:
        assert isinstance(body, NewBlock)
        copies[decode_block(body.raw).header.height] += 1
        await handle_block(self, conn, body)

    monkeypatch.setattr(LedgerService, "handle_block", counted)
    async with ledger_net(tmp_path, one_validator()) as net:
        nodes = await _full_mesh(net, followers=8)
        v = nodes[0]
        first = v.chain.height + 1  # the first block produced with every link open
        last = first + 3
        # Relays of a block land within milliseconds; two block times later all have.
        await eventually(
            lambda: all(n.chain.height >= last + 2 for n in nodes),
            "six more blocks everywhere",
            timeout=20,
        )
        followers = len(nodes) - 1
        for height in range(first, last + 1):
            assert followers <= copies[height] <= followers * (1 + BLOCK_FANOUT), height
            assert copies[height] < followers + followers * (followers - 1)
            block = v.chain.store.block_bytes(height)
            assert all(n.chain.store.block_bytes(height) == block for n in nodes)
        assert sum(n.service.stats.blocks_refused for n in nodes) == 0


async def _full_mesh(net: LedgerNet, followers: int) -> list[Node]:
    """The validator and ``followers`` nodes, each the peer of every other."""
    nodes = [await net.start("validator", validator(0))]
    for i in range(followers):
        nodes.append(await net.start(f"follower-{i}", account(100 + i), list(nodes)))
    await eventually(
        lambda: all(len(n.service.gossip_peers()) == len(nodes) - 1 for n in nodes),
        "every node knows every other",
    )
    return nodes


async def test_a_transfer_sent_to_a_follower_reaches_the_validator_and_every_node_agrees(
    tmp_path: Path,
) -> None:
    async with ledger_net(tmp_path, one_validator()) as net:
        v = await net.start("validator", validator(0))
        f1 = await net.start("follower-1", account(100), [v])
        f2 = await net.start("follower-2", account(101), [v, f1])
        seen: list[tuple[int, int]] = []
        f2.service.on_applied(lambda a: seen.append((a.height, f2.chain.height)))
        blocks = f2.service.subscribe()
        start = f2.chain.height

        raw = transfer(account(0), account(1).address, tokens(25), 0)
        async with client() as wallet:
            reply = await wallet.request(f1.address, SubmitTx(raw))
        assert isinstance(reply, Submitted)
        assert reply.accepted and reply.reason == ""
        tid = reply.tx_id
        assert tid is not None

        # Only the validator produces blocks, so a block holding the transfer
        # proves that gossip carried it there from the follower.
        await eventually(
            lambda: v.chain.store.tx_location(tid) is not None, "the transfer is in a block"
        )
        assert v.service.stats.txs_accepted == 1
        assert f1.service.stats.txs_accepted == 1
        height, index = v.chain.store.tx_location(tid) or (0, 0)
        await all_agree([v, f1, f2], height)
        for node in (v, f1, f2):
            assert node.chain.store.tx_location(tid) == (height, index)
            assert node.chain.store.block_bytes(height) == v.chain.store.block_bytes(height)
        assert f1.service.stats.blocks_refused == f2.service.stats.blocks_refused == 0

        # Apply, then act: every block reaches the listeners in order, each after
        # its commit and before the next one. (The commit happens in a worker
        # thread, so the tip may move a moment before the listeners run.)
        await eventually(lambda: bool(seen) and seen[-1][0] >= height, "the listeners ran")
        assert all(h == committed for h, committed in seen)
        assert [h for h, _ in seen] == list(range(start + 1, start + 1 + len(seen)))
        got = []
        while True:
            try:
                applied: AppliedBlock = blocks.receive_nowait()
            except trio.WouldBlock:
                break
            got.append(applied.height)
        assert got == [h for h, _ in seen[: len(got)]] and height in got


# -- sync ----------------------------------------------------------------------------------


async def test_a_follower_started_late_syncs_every_block_it_lacks(tmp_path: Path) -> None:
    async with ledger_net(tmp_path, one_validator()) as net:
        v = await net.start("validator", validator(0))
        await eventually(lambda: v.chain.height >= 3, "three blocks")
        f = await net.start("late", account(100), [v])
        # The start-up sync ran before ``synced`` was set.
        assert f.chain.height >= 3
        assert f.service.stats.syncs >= 1
        await all_agree([v, f], 4)
        for h in range(1, 5):
            assert f.chain.store.block_bytes(h) == v.chain.store.block_bytes(h)


async def test_a_restarted_follower_reopens_its_chain_and_catches_up(tmp_path: Path) -> None:
    async with ledger_net(tmp_path, one_validator()) as net:
        v = await net.start("validator", validator(0))
        f = await net.start("follower", account(100), [v])
        await all_agree([v, f], 2)
        await net.stop(f)
        left_at = Chain.open(f.path, net.genesis)
        stopped_height = left_at.height
        left_at.close()
        assert stopped_height >= 2

        await eventually(lambda: v.chain.height >= stopped_height + 3, "three more blocks")
        f = await net.start("follower", account(100), [v])
        assert f.chain.height >= stopped_height + 3
        await all_agree([v, f], stopped_height + 4)


# -- validators ----------------------------------------------------------------------------


async def test_three_validators_take_turns_and_every_node_agrees(tmp_path: Path) -> None:
    genesis = funded_genesis(validators=3, block_time=1)
    async with ledger_net(tmp_path, genesis) as net:
        v0 = await net.start("v0", validator(0))
        v1 = await net.start("v1", validator(1), [v0])
        v2 = await net.start("v2", validator(2), [v0, v1])
        f = await net.start("follower", account(100), [v2])
        nodes = [v0, v1, v2, f]
        await all_agree(nodes, 4)
        for h in range(1, 5):
            block = f.chain.store.block(h)
            assert block is not None
            assert block.header.producer == genesis.validators[h % 3]
        for i, node in enumerate([v0, v1, v2]):
            assert node.service.stats.blocks_produced >= 1, f"v{i} produced nothing"
        assert f.service.stats.blocks_produced == 0


async def test_a_validator_that_is_down_stalls_the_chain_at_its_turn_until_it_returns(
    tmp_path: Path,
) -> None:
    genesis = funded_genesis(validators=2, block_time=1)
    async with ledger_net(tmp_path, genesis) as net:
        v1 = await net.start("v1", validator(1))  # block 1 is v1's, block 2 v0's
        await eventually(lambda: v1.chain.height >= 1, "block 1")
        await trio.sleep(2.5)  # more than two block times
        assert v1.chain.height == 1

        v0 = await net.start("v0", validator(0), [v1])
        await all_agree([v0, v1], 4)


# -- invalid blocks ------------------------------------------------------------------------


def header_for(genesis: Genesis, producer: bytes) -> Header:
    return Header(
        version=1,
        height=1,
        previous_hash=genesis.hash,
        time=int(time.time()),
        producer=producer,
        tx_root=tx_root([]),
        state_root=genesis.state().root,
    )


async def test_a_peer_sending_an_invalid_block_is_refused_disconnected_and_changes_nothing(
    tmp_path: Path,
) -> None:
    genesis = one_validator()
    # The validator is offline: the follower's tip moves only if it accepts a block.
    async with ledger_net(tmp_path, genesis) as net:
        f = await net.start("follower", account(100))
        before = f.chain.tip
        attacker = Identity.from_seed(b"x" * 32)
        by_outsider = sign_block(attacker, header_for(genesis, attacker.public_key), [])
        forged_header = header_for(genesis, genesis.validators[0])
        forged = Block(forged_header, (), attacker.sign(BLOCK_DOMAIN, encode_header(forged_header)))

        async with open_rpc_node(attacker) as rpc:
            conn = await rpc.connect(f.address)
            await rpc.notify(f.address, NewBlock(encode_block(by_outsider)))
            await eventually(lambda: f.service.stats.blocks_refused == 1, "the first refusal")
            await eventually(lambda: conn.closed, "the attacker disconnected")
            await rpc.notify(f.address, NewBlock(encode_block(forged)))
            await eventually(lambda: f.service.stats.blocks_refused == 2, "the second refusal")

        assert f.chain.tip == before
        assert f.chain.state.root == before.state_root
        assert f.service.stats.peers_penalized == 2
        assert f.service.rpc.scores.violations(attacker.public_key) == 2

        # A valid block 1 from another peer is still accepted.
        scratch = Chain.open(tmp_path / "scratch", genesis)
        try:
            good = scratch.produce_block(validator(0), time.time())
        finally:
            scratch.close()
        async with open_rpc_node(Identity.from_seed(b"h" * 32)) as honest:
            await honest.notify(f.address, NewBlock(encode_block(good.block)))
            await eventually(lambda: f.chain.height == 1, "the valid block applied")
        assert f.chain.tip.hash == good.hash
        assert f.service.stats.peers_penalized == 2


# -- queries -------------------------------------------------------------------------------


async def test_queries_answer_accounts_transactions_blocks_works_and_contracts(
    tmp_path: Path,
) -> None:
    async with ledger_net(tmp_path, one_validator()) as net:
        v = await net.start("validator", validator(0))
        alice, bob, author, publisher, host = (account(i) for i in range(5))
        fingerprint = hashlib.sha256(b"a song").digest()
        data = StoredData.make()
        terms = data.terms(publisher, host, window_blocks=4)
        cid, open_raw = open_contract(publisher, host, terms, 0)
        sent = {
            "transfer": transfer(alice, bob.address, tokens(25), 0),
            "register": signed(
                author,
                RegisterWork(fingerprint, "Song", "1", "2024-01-01", "Author", bytes(32)),
                0,
            ),
            "open": open_raw,
        }

        async with client() as cli:

            async def ask(body: msgspec.Struct) -> msgspec.Struct:
                return await cli.request(v.address, body, timeout=5)

            for raw in sent.values():
                reply = await ask(SubmitTx(raw))
                assert isinstance(reply, Submitted) and reply.accepted, reply
            ids = {name: tx_id(decode_tx(raw).tx) for name, raw in sent.items()}
            await eventually(
                lambda: all(v.chain.store.tx_location(i) for i in ids.values()), "all included"
            )

            status = await ask(GetStatus())
            assert isinstance(status, ChainStatus)
            assert status.chain_id == "testnet" and status.genesis_hash == net.genesis.hash
            assert status.height >= 1

            info = await ask(GetAccount(bob.address))
            assert isinstance(info, AccountInfo)
            assert int(info.balance) == START_BALANCE + tokens(25)
            assert info.nonce == info.next_nonce == 0
            info = await ask(GetAccount(alice.address))
            assert isinstance(info, AccountInfo)
            assert int(info.balance) == START_BALANCE - tokens(25) - FEE
            assert info.nonce == info.next_nonce == 1

            found = await ask(GetTx(ids["transfer"]))
            assert isinstance(found, TxInfo)
            assert found.found and not found.pending and found.raw == sent["transfer"]
            block = await ask(GetBlock(found.height))
            assert isinstance(block, BlockInfo) and block.found
            assert decode_block(block.raw).transactions[found.index] == sent["transfer"]
            assert block.raw == v.chain.store.block_bytes(found.height)
            assert await ask(GetTx(bytes(32))) == TxInfo(found=False)
            assert await ask(GetBlock(10**6)) == BlockInfo(False)

            work = await ask(GetWork(fingerprint))
            assert isinstance(work, WorkReply) and work.work is not None
            assert (work.work.name, work.work.author) == ("Song", "Author")
            assert work.work.owner == author.address
            assert await ask(GetWork(bytes(32))) == WorkReply(None)

            hosted = await ask(GetContracts(host.address, "host"))
            assert isinstance(hosted, ContractList)
            assert hosted.total == 1 and hosted.contracts[0].contract_id == cid
            summary = hosted.contracts[0]
            assert (summary.publisher, summary.host) == (publisher.address, host.address)
            assert int(summary.price_per_window) == tokens(10)
            assert int(summary.collateral) == tokens(20)
            published = await ask(GetContracts(publisher.address, "publisher"))
            assert isinstance(published, ContractList) and published.contracts == hosted.contracts
            none = await ask(GetContracts(publisher.address, "host"))
            assert isinstance(none, ContractList) and (none.total, none.contracts) == (0, ())

            replay = await ask(SubmitTx(sent["transfer"]))
            assert isinstance(replay, Submitted)
            assert (replay.tx_id, replay.accepted, replay.reason) == (
                ids["transfer"],
                False,
                "nonce_replayed",
            )
            junk = await ask(SubmitTx(b"\x01\x02\x03"))
            assert isinstance(junk, Submitted)
            assert (junk.tx_id, junk.accepted, junk.reason) == (None, False, "malformed")

            synced = await ask(GetBlocks(1, 64))
            assert isinstance(synced, Blocks)
            assert list(synced.blocks) == list(v.chain.store.blocks_bytes(1, 65))


# -- message bounds (no network) -----------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        GetBlocks(1, 65),  # more than a sync batch
        GetBlocks(0, 1),  # there is no block 0
        NewTx(bytes(4097)),  # longer than any transaction
        GetContracts(bytes(20), "owner"),  # type: ignore[arg-type]  # not a role
    ],
)
def test_ledger_messages_out_of_bounds_are_refused_by_the_schema(body: msgspec.Struct) -> None:
    registry = default_registry
    data = (
        registry.encode_notify(body)
        if isinstance(body, NewTx)
        else registry.encode_request(1, body)
    )
    with pytest.raises(MessageInvalidError):
        registry.decode(data)


def test_a_sync_reply_stops_before_7_mib_but_always_carries_one_block() -> None:
    mib = 1 << 20
    assert len(sync_reply([bytes(3 * mib)] * 3).blocks) == 2
    assert len(sync_reply([bytes(7 * mib)] * 2).blocks) == 1
    assert len(sync_reply([bytes(100)] * 64).blocks) == 64
    assert sync_reply([]).blocks == ()
