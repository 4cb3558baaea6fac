"""A reader's connections, from a home: what ``storenode fetch`` and ``stream`` run.

:func:`open_home_fetcher` builds, for the life of one command:

* an RPC node with the **home's identity**, for the hosts (they check
  receipts of priced works against it) and the ledger node the home talks to
  (``client.node``, else its own node: it checks the chain and pays);
* a **lookup-only DHT node** with a throw-away identity on 127.0.0.1, joined
  through the home's peers and that node. It has its own key so that a home
  that also runs a host never shows the network two addresses for one node;
* a :class:`~storenode.client.fetch.Fetcher` over them, with the home's
  spending cap and the chain's minimum fee.

Errors raised in the block come out as themselves, not inside an exception
group.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from contracts import Params
from storenode.client.content import ContentUnavailableError
from storenode.client.fetch import Fetcher, FetchOptions, open_fetcher
from storenode.client.ledger import DEFAULT_TIMEOUT, LedgerClient, home_node
from storenode.dht import Contact
from storenode.groups import single
from storenode.home import Home
from storenode.identity import Identity
from storenode.ledger import GenesisInvalidError, load_genesis
from storenode.net.dht import open_dht_node
from storenode.net.rpc import open_rpc_node


def min_fee(home: Home) -> int:
    """The fee a transaction of this home's chain needs at least."""
    try:
        return int(load_genesis(home.config.genesis_file).params.min_fee)
    except GenesisInvalidError:
        return int(Params(chain_id="x").min_fee)


@asynccontextmanager
async def open_home_fetcher(
    home: Home, *, options: FetchOptions | None = None, timeout: float = DEFAULT_TIMEOUT
) -> AsyncIterator[Fetcher]:
    """A fetcher reading as ``home`` (see the module docstring)."""
    config = home.config
    identity = home.identity()
    node, hint = home_node(home)
    seeds = {p.key: Contact(p.key, p.host, p.port) for p in (*config.peers, node)}
    try:
        async with (
            open_rpc_node(identity) as rpc,
            open_dht_node(Identity.generate(), maintenance_interval=None) as dht,
        ):
            ledger = LedgerClient(rpc, node, timeout=timeout, hint=hint)
            await ledger.connect()
            joined = await dht.bootstrap(seeds.values())
            if not joined.closest:
                raise ContentUnavailableError(
                    f"no node of the network answered (tried {len(seeds)}: the home's peers "
                    f"and {ledger.where}): {hint}"
                )
            async with open_fetcher(
                rpc,
                dht,
                identity,
                ledger=ledger,
                spending_cap=config.spending_cap,
                fee=min_fee(home),
                options=options,
            ) as fetcher:
                yield fetcher
    except BaseExceptionGroup as group:
        raise single(group) from None


__all__ = ["min_fee", "open_home_fetcher"]
