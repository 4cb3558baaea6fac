"""Clients of storenode nodes: the ledger client the wallet and chain commands
use (:mod:`storenode.client.ledger`), and the reader of works — the fetcher
(:mod:`storenode.client.fetch`; one read in :mod:`storenode.client.reading`,
its scheduler in :mod:`storenode.client.scheduler`) behind ``storenode fetch``/``stream`` and
the HTTP gateway, through the :class:`ContentSource` seam
(:mod:`storenode.client.content`)."""

from __future__ import annotations

from storenode.client.content import (
    ContentCorruptError,
    ContentError,
    ContentInfo,
    ContentNotFoundError,
    ContentSource,
    ContentUnavailableError,
    PaymentRequiredError,
)
from storenode.client.fetch import Fetcher, FetchOptions, WorkLedger, open_fetcher
from storenode.client.ledger import (
    ClientError,
    LedgerClient,
    NodeRefusedError,
    NodeTimeoutError,
    NodeUnreachableError,
    TxNotIncludedError,
    TxRefusedError,
    home_node,
    open_home_client,
    open_ledger_client,
)
from storenode.client.scheduler import FetchScheduler, FetchStats
from storenode.client.session import open_home_fetcher

__all__ = [
    "ClientError",
    "ContentCorruptError",
    "ContentError",
    "ContentInfo",
    "ContentNotFoundError",
    "ContentSource",
    "ContentUnavailableError",
    "FetchOptions",
    "FetchScheduler",
    "FetchStats",
    "Fetcher",
    "LedgerClient",
    "NodeRefusedError",
    "NodeTimeoutError",
    "NodeUnreachableError",
    "PaymentRequiredError",
    "TxNotIncludedError",
    "TxRefusedError",
    "WorkLedger",
    "home_node",
    "open_fetcher",
    "open_home_client",
    "open_home_fetcher",
    "open_ledger_client",
]
