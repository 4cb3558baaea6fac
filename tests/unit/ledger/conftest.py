"""Shared pieces of the ledger tests: a funded test chain in a fresh LevelDB directory."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import plyvel
import pytest

from storenode.ledger import Chain, Genesis
from storenode.testing.ledger import funded_genesis

ChainFactory = Callable[..., Chain]


@pytest.fixture
def genesis() -> Genesis:
    return funded_genesis(8)


@pytest.fixture
def open_chain(tmp_path: Path, genesis: Genesis) -> Iterator[ChainFactory]:
    """``open_chain(name="a", genesis=None, **kw)``: a Chain in ``tmp_path / name``,
    closed after the test."""
    opened: list[Chain] = []

    def factory(name: str = "a", genesis_: Genesis | None = None, **kw: object) -> Chain:
        chain = Chain.open(tmp_path / name, genesis_ or genesis, **kw)  # type: ignore[arg-type]
        opened.append(chain)
        return chain

    yield factory
    for chain in opened:
        chain.close()


def _dump(path: Path) -> dict[bytes, bytes]:
    db = plyvel.DB(str(path))
    try:
        return dict(db.iterator())
    finally:
        db.close()


@pytest.fixture
def dump() -> Callable[[Path], dict[bytes, bytes]]:
    """``dump(path)``: every key and value in a (closed) LevelDB directory."""
    return _dump
