"""Clients of storenode nodes. So far: the ledger client the wallet and chain
commands use (:mod:`storenode.client.ledger`)."""

from __future__ import annotations

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

__all__ = [
    "ClientError",
    "LedgerClient",
    "NodeRefusedError",
    "NodeTimeoutError",
    "NodeUnreachableError",
    "TxNotIncludedError",
    "TxRefusedError",
    "home_node",
    "open_home_client",
    "open_ledger_client",
]
