"""A node home's configuration: ``config.toml``.

Read with :mod:`tomllib` and checked field by field: a bad config is bad
input, so every problem raises a :class:`ConfigError` subclass that names the
key (``wire.port``) and says what is expected. Relative paths are relative to
the home (the directory holding the file); :meth:`Config.resolve` makes them
absolute. :func:`render_config` writes the documented file that
``storenode init`` creates; ``parse_config(render_config(c)) == c``.

Sections and keys (every key optional; :class:`Config` has the defaults)::

    [node]    identity_file, data_dir, log_level
    [wire]    host, port, peers = ["<public key hex>@<host>:<port>", ...]
    [ledger]  genesis_file
    [client]  node = "<public key hex>@<host>:<port>"

The operator's guide (docs/operator.md) documents each key.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

DEFAULT_PORT: Final = 7400
LOG_LEVELS: Final = ("debug", "info", "warning", "error")
PUBLIC_KEY_HEX: Final = 64


class ConfigError(ValueError):
    """Base of the configuration errors; the message says what to fix."""


class ConfigNotFoundError(ConfigError):
    def __init__(self, path: Path) -> None:
        super().__init__(
            f"no config file at {path}: create a home with `storenode --home DIR init`"
        )
        self.path = path


class ConfigSyntaxError(ConfigError):
    """The file is not TOML."""

    def __init__(self, source: str, why: str) -> None:
        super().__init__(f"{source} is not valid TOML: {why}")
        self.source = source


class ConfigKeyUnknownError(ConfigError):
    """A section or key this storenode does not know (often a typo)."""

    def __init__(self, source: str, key: str, known: list[str]) -> None:
        super().__init__(f"{source}: unknown key {key!r}; known keys here: {', '.join(known)}")
        self.source = source
        self.key = key


class ConfigValueError(ConfigError):
    """A key whose value has the wrong type or is out of range."""

    def __init__(self, source: str, key: str, expected: str, got: object) -> None:
        super().__init__(f"{source}: {key} must be {expected}, not {got!r}")
        self.source = source
        self.key = key
        self.expected = expected


@dataclass(frozen=True, slots=True)
class PeerSpec:
    """A node's wire address and public key (a :class:`~storenode.net.rpc.PeerAddress`),
    written ``<public key hex>@<host>:<port>`` (an IPv6 host in brackets)."""

    key: bytes
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.key.hex()}@{host}:{self.port}"

    @classmethod
    def parse(cls, text: str) -> PeerSpec:
        """Raises ``ValueError`` saying what is wrong with ``text``."""
        key_hex, at, address = text.partition("@")
        if not at:
            raise ValueError("no '@' between the public key and the address")
        if len(key_hex) != PUBLIC_KEY_HEX:
            raise ValueError(f"the public key is {PUBLIC_KEY_HEX} hex digits, not {len(key_hex)}")
        try:
            key = bytes.fromhex(key_hex)
        except ValueError:
            raise ValueError("the public key is not hex") from None
        host, colon, port_text = address.rpartition(":")
        if not colon or not host:
            raise ValueError("the address is not <host>:<port>")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        if not port_text.isascii() or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise ValueError(f"the port {port_text!r} is not a number from 1 to 65535")
        return cls(key, host, int(port_text))


@dataclass(frozen=True, slots=True)
class Config:
    """What a node home says. Paths may be relative to the home until :meth:`resolve`."""

    identity_file: Path = Path("identity.key")
    """The node's (and wallet's) Ed25519 key: a 32-byte seed in hex, mode 0600."""
    data_dir: Path = Path("data")
    """Where the node keeps its databases (the chain in ``data/chain``)."""
    log_level: str = "info"
    listen_host: str = "127.0.0.1"
    listen_port: int = DEFAULT_PORT
    peers: tuple[PeerSpec, ...] = ()
    """Nodes to sync from and gossip to."""
    genesis_file: Path = Path("genesis.json")
    client_node: PeerSpec | None = None
    """The node the wallet and chain commands talk to; None: this home's own node."""

    @property
    def chain_dir(self) -> Path:
        return self.data_dir / "chain"

    def resolve(self, home: Path) -> Config:
        """This config with its relative paths made relative to ``home`` (absolute)."""
        root = home.absolute()
        return dataclasses.replace(
            self,
            identity_file=root / self.identity_file,
            data_dir=root / self.data_dir,
            genesis_file=root / self.genesis_file,
        )


# -- reading -------------------------------------------------------------------------------


def load_config(path: Path) -> Config:
    """The config in ``path`` (paths still relative to its directory)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigNotFoundError(path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the config file {path}: {exc}") from None
    return parse_config(text, source=str(path))


def parse_config(text: str, *, source: str = "config.toml") -> Config:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigSyntaxError(source, str(exc)) from None
    reader = _Reader(source, doc)
    default = Config()
    node = reader.section("node", ("identity_file", "data_dir", "log_level"))
    wire = reader.section("wire", ("host", "port", "peers"))
    ledger = reader.section("ledger", ("genesis_file",))
    client = reader.section("client", ("node",))
    reader.no_other_sections()
    node_text = client.get("node", str, "a string <public key hex>@<host>:<port>", None)
    return Config(
        identity_file=node.path("identity_file", default.identity_file),
        data_dir=node.path("data_dir", default.data_dir),
        log_level=node.choice("log_level", LOG_LEVELS, default.log_level),
        listen_host=wire.host("host", default.listen_host),
        listen_port=wire.integer("port", 1, 65535, default.listen_port),
        peers=wire.peers("peers"),
        genesis_file=ledger.path("genesis_file", default.genesis_file),
        client_node=None if node_text is None else client.peer("node", node_text),
    )


class _Reader:
    """Reads one document, naming each key in its errors."""

    def __init__(self, source: str, doc: Mapping[str, Any]) -> None:
        self.source = source
        self.doc = doc
        self.known: list[str] = []

    def section(self, name: str, keys: tuple[str, ...]) -> _Section:
        self.known.append(name)
        table = self.doc.get(name, {})
        if not isinstance(table, dict):
            raise ConfigValueError(self.source, name, "a table ([" + name + "])", table)
        for key in table:
            if key not in keys:
                raise ConfigKeyUnknownError(self.source, f"{name}.{key}", list(keys))
        return _Section(self.source, name, table)

    def no_other_sections(self) -> None:
        for key in self.doc:
            if key not in self.known:
                raise ConfigKeyUnknownError(self.source, key, [f"[{k}]" for k in self.known])


class _Section:
    def __init__(self, source: str, name: str, table: Mapping[str, Any]) -> None:
        self.source = source
        self.name = name
        self.table = table

    def _fail(self, key: str, expected: str, got: object) -> ConfigValueError:
        return ConfigValueError(self.source, f"{self.name}.{key}", expected, got)

    def get(self, key: str, type_: type, expected: str, default: Any) -> Any:
        if key not in self.table:
            return default
        value = self.table[key]
        if not isinstance(value, type_) or (isinstance(value, bool) and type_ is not bool):
            raise self._fail(key, expected, value)
        return value

    def path(self, key: str, default: Path) -> Path:
        value = self.get(key, str, "a path (a string)", None)
        if value is None:
            return default
        if not value.strip() or "\x00" in value:
            raise self._fail(key, "a non-empty path", value)
        return Path(value)

    def choice(self, key: str, choices: tuple[str, ...], default: str) -> str:
        expected = "one of " + ", ".join(f'"{c}"' for c in choices)
        value = self.get(key, str, expected, default)
        if value not in choices:
            raise self._fail(key, expected, value)
        return str(value)

    def integer(self, key: str, low: int, high: int, default: int) -> int:
        expected = f"an integer from {low} to {high}"
        value = self.get(key, int, expected, default)
        if not low <= value <= high:
            raise self._fail(key, expected, value)
        return int(value)

    def host(self, key: str, default: str) -> str:
        expected = 'a host name or IP address, such as "127.0.0.1"'
        value = self.get(key, str, expected, default)
        if not value or any(c.isspace() or c in "[]@/" for c in value):
            raise self._fail(key, expected, value)
        return str(value)

    def peer(self, key: str, text: str) -> PeerSpec:
        try:
            return PeerSpec.parse(text)
        except ValueError as exc:
            raise self._fail(key, f"<public key hex>@<host>:<port> ({exc})", text) from None

    def peers(self, key: str) -> tuple[PeerSpec, ...]:
        expected = 'a list of "<public key hex>@<host>:<port>" strings'
        items = self.get(key, list, expected, [])
        out = []
        for i, item in enumerate(items):
            if not isinstance(item, str):
                raise self._fail(f"{key}[{i}]", "a string <public key hex>@<host>:<port>", item)
            out.append(self.peer(f"{key}[{i}]", item))
        return tuple(out)


# -- writing -------------------------------------------------------------------------------

TEMPLATE: Final = """\
# storenode configuration; every key is described in docs/operator.md.
# Relative paths are relative to the directory of this file (the node's home).

[node]
# This node's Ed25519 identity key: a 32-byte seed in hex. It is also the
# wallet that signs this home's transactions. Keep it secret (mode 0600).
identity_file = {identity_file}
# Where the node keeps its databases (the chain is in <data_dir>/chain).
data_dir = {data_dir}
# How much the node logs: "debug", "info", "warning" or "error".
log_level = {log_level}

[wire]
# Where the node listens for peers and clients (TCP). 127.0.0.1 accepts
# only this machine; 0.0.0.0 every interface.
host = {host}
# The TCP port; clients and peers dial it. Each node on a machine needs its own.
port = {port}
# Nodes to sync blocks from and gossip to: "<public key hex>@<host>:<port>".
peers = {peers}

[ledger]
# The chain's genesis file: the same file on every node of the chain.
genesis_file = {genesis_file}
{client}"""

CLIENT_TEMPLATE: Final = """
[client]
# The node the wallet and chain commands of this home talk to.
node = {node}
"""

CLIENT_DEFAULT: Final = """
[client]
# The node the wallet and chain commands of this home talk to,
# "<public key hex>@<host>:<port>". Unset: this home's own node.
# node = "…@127.0.0.1:7400"
"""


def toml_string(value: str) -> str:
    """``value`` as a TOML basic string."""
    out = ['"']
    for c in value:
        if c == '"':
            out.append('\\"')
        elif c == "\\":
            out.append("\\\\")
        elif c < " " or c == "\x7f":
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(c)
    out.append('"')
    return "".join(out)


def render_config(config: Config) -> str:
    """The documented ``config.toml`` holding ``config``."""
    if config.peers:
        peers = "[\n" + "".join(f"    {toml_string(str(p))},\n" for p in config.peers) + "]"
    else:
        peers = "[]"
    node = config.client_node
    client = CLIENT_DEFAULT if node is None else CLIENT_TEMPLATE.format(node=toml_string(str(node)))
    return TEMPLATE.format(
        identity_file=toml_string(str(config.identity_file)),
        data_dir=toml_string(str(config.data_dir)),
        log_level=toml_string(config.log_level),
        host=toml_string(config.listen_host),
        port=config.listen_port,
        peers=peers,
        genesis_file=toml_string(str(config.genesis_file)),
        client=client,
    )


def write_config(path: Path, config: Config, *, replace: bool = False) -> None:
    """Write ``render_config(config)`` to ``path``. Without ``replace``, an
    existing file is left alone (:class:`FileExistsError`)."""
    text = render_config(config)
    parse_config(text, source=str(path))  # never write what could not be read back
    write_atomic(path, text.encode(), replace=replace)


def write_atomic(path: Path, data: bytes, *, replace: bool = False, private: bool = False) -> None:
    """Write ``data`` to ``path`` so that it is either absent or complete after
    a crash. Without ``replace``, an existing file is left alone
    (:class:`FileExistsError`). ``private``: mode 0600 whatever the umask."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if private else 0o644)
    try:
        with open(fd, "wb") as f:
            if private:
                os.fchmod(f.fileno(), 0o600)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if replace:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # refuses to replace, atomically
    finally:
        tmp.unlink(missing_ok=True)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
