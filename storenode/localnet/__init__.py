"""A local network on 127.0.0.1: its homes (:mod:`.homes`, ``storenode localnet
init``) and its processes (``storenode localnet up|status|down``)."""

from __future__ import annotations

from storenode.localnet.homes import (
    BURN_BPS,
    CHAIN_ID,
    DEFAULT_WINDOW_BLOCKS,
    GENESIS_NAME,
    HOST_CAPACITY,
    HOST_PRICE,
    MAX_NODES,
    NODE_FUNDS,
    PENALTY_BPS,
    PUBLISH_K,
    PUBLISH_N,
    PUBLISH_WINDOWS,
    PUBLISHER_FUNDS,
    LocalHome,
    Localnet,
    LocalnetError,
    LocalnetExistsError,
    LocalnetParamsError,
    free_ports,
    init_localnet,
)

__all__ = [
    "BURN_BPS",
    "CHAIN_ID",
    "DEFAULT_WINDOW_BLOCKS",
    "GENESIS_NAME",
    "HOST_CAPACITY",
    "HOST_PRICE",
    "MAX_NODES",
    "NODE_FUNDS",
    "PENALTY_BPS",
    "PUBLISHER_FUNDS",
    "PUBLISH_K",
    "PUBLISH_N",
    "PUBLISH_WINDOWS",
    "LocalHome",
    "Localnet",
    "LocalnetError",
    "LocalnetExistsError",
    "LocalnetParamsError",
    "free_ports",
    "init_localnet",
]
