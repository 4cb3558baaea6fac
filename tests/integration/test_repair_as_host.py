"""A host rebuilding a chunk of a priced work reads its stripe from the other hosts
as the chunk's host (``chunk.repair``), over real sockets on 127.0.0.1: hosts that
serve the work to nobody without a receipt answer it once their check passes,
and refuse it, with their reason, when it does not."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable

import pytest
import trio

from storenode.client.content import ContentUnavailableError
from storenode.dht import Contact
from storenode.host import AllowAll, ChunkService, RepairRequest
from storenode.host.repair import Slot, stripe_as_host
from storenode.identity import Identity
from storenode.store import MemoryChunkStore
from storenode.testing.swarm import Swarm, open_swarm

K, N = 3, 5
STRIPE = 3 * 4096
DATA = random.Random(11).randbytes(4 * STRIPE + 100)
LIMIT = 20.0
REPAIRER = Identity.generate()
CONTRACT = b"\x0c" * 32


class NobodyReads:
    """A priced work: no reader holds a receipt."""

    def may_read(self, client_key: bytes, cid: bytes) -> bool:
        return False


def _check(client_key: bytes, req: RepairRequest) -> str | None:
    """Stands in for :func:`storenode.host.policy.check_repair` (tested on its own):
    only the repairing host, only with its contract."""
    if client_key != REPAIRER.public_key:
        return "that contract is another host's"
    return None if req.contract == CONTRACT else "no live contract on the chain"


def priced_host(store: MemoryChunkStore, rng: random.Random) -> ChunkService:
    return ChunkService(store, AllowAll(), read_policy=NobodyReads(), repair_check=_check, rng=rng)


def _providers(swarm: Swarm) -> Callable[[bytes], Awaitable[dict[bytes, Contact]]]:
    async def providers(cid: bytes) -> dict[bytes, Contact]:
        return {h.key: h.dht.contact for h in swarm.seeds}

    return providers


@pytest.mark.parametrize("stripe", [0, 4])  # the last stripe is padded
async def test_a_priced_stripe_is_read_as_the_host_of_one_of_its_chunks(stripe: int) -> None:
    with trio.fail_after(LIMIT):
        async with open_swarm(N, services=dict.fromkeys(range(N), priced_host)) as swarm:
            m = await swarm.publish(DATA, k=K, n=N, stripe_size=STRIPE)
            async with swarm.reader(REPAIRER) as reader:
                read = stripe_as_host(reader.rpc, _providers(swarm), REPAIRER.public_key)
                got = await read(m, Slot(m.cid, stripe, 1, CONTRACT, 0, ()))
                want = DATA[stripe * STRIPE : (stripe + 1) * STRIPE].ljust(STRIPE, b"\0")
                assert bytes(got) == want
            swarm.nursery.cancel_scope.cancel()


async def test_hosts_refuse_a_repair_they_cannot_check_and_say_why() -> None:
    with trio.fail_after(LIMIT):
        async with open_swarm(N, services=dict.fromkeys(range(N), priced_host)) as swarm:
            m = await swarm.publish(DATA, k=K, n=N, stripe_size=STRIPE)
            async with swarm.reader(REPAIRER) as reader:
                read = stripe_as_host(reader.rpc, _providers(swarm), REPAIRER.public_key)
                with pytest.raises(ContentUnavailableError, match="no live contract"):
                    await read(m, Slot(m.cid, 0, 1, b"\x0d" * 32, 0, ()))
                # fewer than k hosts left to ask
                for host in swarm.hosts[: N - K + 1]:
                    await swarm.kill(host)
                with pytest.raises(ContentUnavailableError, match=f"of the k={K} packets"):
                    await read(m, Slot(m.cid, 0, 1, CONTRACT, 0, ()))
            async with swarm.reader() as stranger:  # another node: not the contract's host
                read = stripe_as_host(stranger.rpc, _providers(swarm), b"")
                with pytest.raises(ContentUnavailableError, match="another host's"):
                    await read(m, Slot(m.cid, 0, 1, CONTRACT, 0, ()))
            swarm.nursery.cancel_scope.cancel()
