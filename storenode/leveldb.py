"""Opening LevelDB directories and translating plyvel's errors, for every store.

The chunk store and the chain store each have their own typed errors; they
pass them in as an :class:`OpenErrors`, so the rules (what counts as a
LevelDB directory, what is refused untouched, how a lock or corruption is
reported) are written once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import plyvel


@dataclass(frozen=True)
class OpenErrors:
    """How a store names what can go wrong with its directory (each gets the path)."""

    not_found: Callable[[str], Exception]
    unrecognized: Callable[[str, str], Exception]
    corrupt: Callable[[str, str], Exception]
    locked: Callable[[str], Exception]
    io: Callable[[str, str], Exception]


def plyvel_message(e: BaseException) -> str:
    arg = e.args[0] if e.args else e
    return arg.decode(errors="replace") if isinstance(arg, bytes) else str(arg)


def open_leveldb(path: str, *, create: bool, errors: OpenErrors, **options: Any) -> Any:
    """The plyvel database at ``path`` (``options`` go to ``plyvel.DB``).

    A file, or a non-empty directory with no LevelDB ``CURRENT`` file, is refused
    and left untouched; a missing directory is created (with its parents) only
    with ``create``; a database another process holds is reported as locked.
    """
    p = Path(path)
    is_leveldb = (p / "CURRENT").is_file()
    if p.exists() and not p.is_dir():
        raise errors.unrecognized(path, "it is a file")
    if p.is_dir() and not is_leveldb and any(p.iterdir()):
        raise errors.unrecognized(path, "a non-empty directory with no LevelDB files")
    if not is_leveldb:
        if not create:
            raise errors.not_found(path)
        p.mkdir(parents=True, exist_ok=True)
    try:
        return plyvel.DB(path, create_if_missing=create, **options)
    except plyvel.CorruptionError as e:
        raise errors.corrupt(path, plyvel_message(e)) from e
    except plyvel.IOError as e:
        if "lock" in plyvel_message(e).lower():
            raise errors.locked(path) from e
        raise errors.io(path, plyvel_message(e)) from e


@contextmanager
def translated(path: str, errors: OpenErrors) -> Iterator[None]:
    """Turn plyvel's corruption and I/O errors inside the block into the store's."""
    try:
        yield
    except plyvel.CorruptionError as e:
        raise errors.corrupt(path, plyvel_message(e)) from e
    except plyvel.IOError as e:
        raise errors.io(path, plyvel_message(e)) from e


class ClosingDatabase:
    """What every LevelDB-backed store shares: ``close()`` once, under the store's
    write lock (a write in progress finishes first), and use as a context
    manager. Subclasses set ``_lock``, ``_closed`` and ``_db`` when they open."""

    _lock: threading.Lock
    _closed: bool
    _db: Any

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
