"""A node's home directory: its identity key, its config and its data.

::

    DIR/config.toml     the configuration (storenode.config; documented in the file)
    DIR/identity.key    the Ed25519 identity: a 32-byte seed as 64 hex digits, mode 0600
    DIR/data/chain/     the chain (LevelDB)

Every command takes ``--home DIR`` (default ``$STORENODE_HOME``, else
``~/.storenode``). :func:`init_home` creates a home, :func:`open_home` reads
one. The config may move the key and the data elsewhere; the paths a
:class:`Home` holds are absolute.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from storenode.config import (
    Config,
    load_config,
    parse_config,
    render_config,
    write_atomic,
    write_config,
)
from storenode.identity import SEED_SIZE, Identity

CONFIG_NAME: Final = "config.toml"


class HomeError(Exception):
    """Base of the errors about a home and its key file; the message says what to do."""


class HomeExistsError(HomeError):
    def __init__(self, path: Path) -> None:
        super().__init__(
            f"{path} already holds a storenode home (config.toml): keep it or remove it"
        )
        self.path = path


class KeyFileError(HomeError):
    def __init__(self, path: Path, message: str) -> None:
        super().__init__(message)
        self.path = path


class KeyFileNotFoundError(KeyFileError):
    def __init__(self, path: Path) -> None:
        super().__init__(
            path, f"no identity key at {path}: create one with `storenode --home DIR wallet new`"
        )


class KeyFileExistsError(KeyFileError):
    def __init__(self, path: Path) -> None:
        super().__init__(path, f"{path} already exists; storenode never overwrites a key file")


class KeyFileInvalidError(KeyFileError):
    def __init__(self, path: Path, why: str) -> None:
        super().__init__(path, f"{path} is not a storenode identity key: {why}")


class KeyFilePermissionsError(KeyFileError):
    def __init__(self, path: Path, mode: int) -> None:
        super().__init__(
            path,
            f"{path} can be read by other users (mode {mode:04o}): run `chmod 600 {path}`",
        )
        self.mode = mode


# -- the key file ----------------------------------------------------------------------------


def write_key_file(path: Path, identity: Identity) -> None:
    """Write ``identity``'s seed to a new file, mode 0600 (:class:`KeyFileExistsError`
    if there is one: a key is never overwritten)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        write_atomic(path, identity.seed.hex().encode() + b"\n", private=True)
    except FileExistsError:
        raise KeyFileExistsError(path) from None


def read_key_file(path: Path) -> Identity:
    try:
        st = path.stat()
        if stat.S_IMODE(st.st_mode) & 0o077:
            raise KeyFilePermissionsError(path, stat.S_IMODE(st.st_mode))
        text = path.read_bytes()
    except FileNotFoundError:
        raise KeyFileNotFoundError(path) from None
    except OSError as exc:
        raise KeyFileError(path, f"cannot read the identity key {path}: {exc}") from None
    digits = text.strip()
    if len(digits) != 2 * SEED_SIZE:
        raise KeyFileInvalidError(path, f"expected {2 * SEED_SIZE} hex digits, found {len(digits)}")
    try:
        seed = bytes.fromhex(digits.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise KeyFileInvalidError(path, "it is not hex") from None
    return Identity.from_seed(seed)


# -- the home ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Home:
    """An opened home: its directory and its config, with absolute paths."""

    root: Path
    config: Config

    @property
    def config_path(self) -> Path:
        return self.root / CONFIG_NAME

    def identity(self) -> Identity:
        """The home's identity key (:class:`KeyFileError` subclasses)."""
        return read_key_file(self.config.identity_file)


def open_home(root: Path) -> Home:
    """The home at ``root`` (:class:`~storenode.config.ConfigNotFoundError` if it
    has no config, other :class:`~storenode.config.ConfigError` for a bad one)."""
    root = root.expanduser().absolute()
    return Home(root, load_config(root / CONFIG_NAME).resolve(root))


def init_home(
    root: Path, config: Config | None = None, *, identity: Identity | None = None
) -> tuple[Home, bool]:
    """Create a home at ``root``: its config (``config``, default :class:`Config`),
    its data directory, and its key file with ``identity`` (default a new
    key). A key file already there is kept (and must be valid); a config
    already there is :class:`HomeExistsError`. Returns the home and whether a
    key was written."""
    root = root.expanduser().absolute()
    config = config or Config()
    config_path = root / CONFIG_NAME
    if config_path.exists():
        raise HomeExistsError(root)
    parse_config(render_config(config))  # a config that cannot be read back: before any write
    resolved = config.resolve(root)
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    key_path = resolved.identity_file
    wrote_key = False
    if key_path.exists():
        existing = read_key_file(key_path)
        if identity is not None and existing.seed != identity.seed:
            raise KeyFileExistsError(key_path)
    else:
        write_key_file(key_path, identity or Identity.generate())
        wrote_key = True
    resolved.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        write_config(config_path, config)
    except FileExistsError:
        raise HomeExistsError(root) from None
    return Home(root, resolved), wrote_key
