"""Clients of storenode nodes: the ledger client the wallet and chain commands
use (:mod:`storenode.client.ledger`), and the reader of works — the fetcher
(:mod:`storenode.client.fetch`; one read in :mod:`storenode.client.reading`,
its scheduler in :mod:`storenode.client.scheduler`) behind ``storenode fetch``/``stream`` and
the HTTP gateway, through the :class:`ContentSource` seam
(:mod:`storenode.client.content`)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
    from storenode.client.read_state import FetchStats
    from storenode.client.scheduler import FetchScheduler
    from storenode.client.session import open_home_fetcher

_WHERE: dict[str, str] = {
    "ClientError": "storenode.client.ledger",
    "ContentCorruptError": "storenode.client.content",
    "ContentError": "storenode.client.content",
    "ContentInfo": "storenode.client.content",
    "ContentNotFoundError": "storenode.client.content",
    "ContentSource": "storenode.client.content",
    "ContentUnavailableError": "storenode.client.content",
    "FetchOptions": "storenode.client.fetch",
    "FetchScheduler": "storenode.client.scheduler",
    "FetchStats": "storenode.client.read_state",
    "Fetcher": "storenode.client.fetch",
    "LedgerClient": "storenode.client.ledger",
    "NodeRefusedError": "storenode.client.ledger",
    "NodeTimeoutError": "storenode.client.ledger",
    "NodeUnreachableError": "storenode.client.ledger",
    "PaymentRequiredError": "storenode.client.content",
    "TxNotIncludedError": "storenode.client.ledger",
    "TxRefusedError": "storenode.client.ledger",
    "WorkLedger": "storenode.client.fetch",
    "home_node": "storenode.client.ledger",
    "open_fetcher": "storenode.client.fetch",
    "open_home_client": "storenode.client.ledger",
    "open_home_fetcher": "storenode.client.session",
    "open_ledger_client": "storenode.client.ledger",
}

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


def __getattr__(name: str) -> Any:
    """The names above, imported on first use: ``storenode fetch`` through a running
    node imports :mod:`storenode.client.via_node` alone, without the fetcher's stack."""
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
