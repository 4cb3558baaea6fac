"""Fixtures of the DHT tests: identities (deterministic seeds) and contacts."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import pytest

from storenode.dht import Contact
from storenode.identity import Identity

NOW = 1_700_000_000.0
"""The unix time at which the tests' clocks start."""


@cache
def identity(n: int) -> Identity:
    """The ``n``-th test identity (same keys in every run)."""
    return Identity.from_seed(n.to_bytes(4, "big") * 8)


def contact_of(ident: Identity, port: int = 4000) -> Contact:
    return Contact(ident.public_key, "127.0.0.1", port)


@pytest.fixture
def make_identity() -> Callable[[int], Identity]:
    return identity
