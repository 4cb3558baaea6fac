"""A node home's configuration: ``config.toml``.

Read with :mod:`tomllib` and checked field by field: a bad config is bad
input, so every problem raises a :class:`ConfigError` subclass that names the
key (``wire.port``) and says what is expected. Relative paths are relative to
the home (the directory holding the file); :meth:`Config.resolve` makes them
absolute. :func:`render_config` writes the documented file that
``storenode init`` creates; ``parse_config(render_config(c)) == c``.

Sections and keys (every key optional; :class:`Config` has the defaults)::

    [node]    identity_file, data_dir, log_level, log_format
    [wire]    host, port, advertise, peers = ["<public key hex>@<host>:<port>", ...]
    [ledger]  genesis_file
    [host]    enabled, capacity, price, collateral_bps, max_windows
    [http]    enabled, host, port
    [client]  node = "<public key hex>@<host>:<port>", spending_cap
    [publish] k, n, windows, max_price

Sizes are bytes or text with a unit (``"10 GiB"``); token amounts are
decimal text of whole tokens (``"0.5"``), exact.

The operator's guide (docs/operator.md) documents each key.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

DEFAULT_PORT: Final = 7400
DEFAULT_HTTP_PORT: Final = 7480
WILDCARD_HOSTS: Final = frozenset({"0.0.0.0", "::", ""})
"""Listen addresses meaning "every interface": no peer can dial them."""
TOKEN: Final = 10**18
GIB: Final = 1 << 30
SIZE_UNITS: Final[dict[str, int]] = {
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 1 << 10,
    "mib": 1 << 20,
    "gib": 1 << 30,
    "tib": 1 << 40,
}
MAX_AMOUNT: Final = 2**256 - 1
LOG_LEVELS: Final = ("debug", "info", "warning", "error")
LOG_FORMATS: Final = ("text", "json")
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
    log_format: str = "text"
    """``"text"`` (sentences) or ``"json"`` (one object per line): storenode.logs."""
    listen_host: str = "127.0.0.1"
    listen_port: int = DEFAULT_PORT
    advertise_host: str | None = None
    """The address other nodes should dial (None: ``listen_host``, which must then
    not be a wildcard such as 0.0.0.0)."""
    peers: tuple[PeerSpec, ...] = ()
    """Nodes to sync from and gossip to."""
    genesis_file: Path = Path("genesis.json")
    client_node: PeerSpec | None = None
    """The node the wallet and chain commands talk to; None: this home's own node."""
    spending_cap: int = TOKEN
    """Most base units a fetch pays on its own for one priced work."""

    host_enabled: bool = True
    """Whether ``storenode host`` offers its disk (False: a node that only routes,
    follows the ledger and serves the gateway)."""
    capacity: int = 10 * GIB
    """Bytes of chunks the host keeps at most."""
    price: int = TOKEN // 100
    """Base units the host asks per GiB per window."""
    collateral_bps: int = 5_000
    """The collateral the host locks, in basis points of the contract's escrow."""
    max_windows: int = 100_000
    """The longest contract (in windows) the host signs."""

    http_enabled: bool = True
    http_host: str = "127.0.0.1"
    http_port: int = DEFAULT_HTTP_PORT

    publish_k: int = 4
    publish_n: int = 12
    publish_windows: int = 100
    """How many windows the storage contracts of a publish last."""
    publish_max_price: int = TOKEN
    """The highest price per GiB per window the publisher accepts from a host."""

    @property
    def chain_dir(self) -> Path:
        return self.data_dir / "chain"

    @property
    def public_host(self) -> str | None:
        """The address this node announces in the DHT and its host ad: ``wire.advertise``,
        else ``wire.host`` unless that is a wildcard (then None: nothing to announce)."""
        if self.advertise_host is not None:
            return self.advertise_host
        return None if self.listen_host in WILDCARD_HOSTS else self.listen_host

    @property
    def chunks_dir(self) -> Path:
        """The host's chunk store (chunk files indexed in LevelDB)."""
        return self.data_dir / "chunks"

    @property
    def host_dir(self) -> Path:
        """The host's contract book and shard index (LevelDB)."""
        return self.data_dir / "host"

    @property
    def publish_dir(self) -> Path:
        """The publisher's journals of interrupted publishes."""
        return self.data_dir / "publish"

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
    node = reader.section("node", ("identity_file", "data_dir", "log_level", "log_format"))
    wire = reader.section("wire", ("host", "port", "advertise", "peers"))
    ledger = reader.section("ledger", ("genesis_file",))
    host = reader.section("host", ("enabled", "capacity", "price", "collateral_bps", "max_windows"))
    http = reader.section("http", ("enabled", "host", "port"))
    client = reader.section("client", ("node", "spending_cap"))
    publish = reader.section("publish", ("k", "n", "windows", "max_price"))
    reader.no_other_sections()
    node_text = client.get("node", str, "a string <public key hex>@<host>:<port>", None)
    advertise = None if "advertise" not in wire.table else wire.host("advertise", "")
    if advertise is not None and advertise in WILDCARD_HOSTS:
        expected = "an address other nodes can dial"
        raise ConfigValueError(source, "wire.advertise", expected, advertise)
    k = publish.integer("k", 1, 255, default.publish_k)
    n = publish.integer("n", 1, 255, default.publish_n)
    if n < k:
        raise ConfigValueError(source, "publish.n", f"at least publish.k ({k})", n)
    return Config(
        identity_file=node.path("identity_file", default.identity_file),
        data_dir=node.path("data_dir", default.data_dir),
        log_level=node.choice("log_level", LOG_LEVELS, default.log_level),
        log_format=node.choice("log_format", LOG_FORMATS, default.log_format),
        listen_host=wire.host("host", default.listen_host),
        listen_port=wire.integer("port", 1, 65535, default.listen_port),
        advertise_host=advertise,
        peers=wire.peers("peers"),
        genesis_file=ledger.path("genesis_file", default.genesis_file),
        client_node=None if node_text is None else client.peer("node", node_text),
        spending_cap=client.amount("spending_cap", default.spending_cap),
        host_enabled=host.boolean("enabled", default.host_enabled),
        capacity=host.size("capacity", default.capacity),
        price=host.amount("price", default.price),
        collateral_bps=host.integer("collateral_bps", 0, 10_000, default.collateral_bps),
        max_windows=host.integer("max_windows", 1, 2**32 - 1, default.max_windows),
        http_enabled=http.boolean("enabled", default.http_enabled),
        http_host=http.host("host", default.http_host),
        http_port=http.integer("port", 1, 65535, default.http_port),
        publish_k=k,
        publish_n=n,
        publish_windows=publish.integer("windows", 1, 2**32 - 1, default.publish_windows),
        publish_max_price=publish.amount("max_price", default.publish_max_price),
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

    def boolean(self, key: str, default: bool) -> bool:
        return bool(self.get(key, bool, "true or false", default))

    def size(self, key: str, default: int) -> int:
        expected = 'a number of bytes, or text such as "10 GiB" (B, kB, MB, GB, TB, KiB .. TiB)'
        if key not in self.table:
            return default
        value = self.table[key]
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        if isinstance(value, str):
            parsed = parse_size(value)
            if parsed is not None:
                return parsed
        raise self._fail(key, expected, value)

    def amount(self, key: str, default: int) -> int:
        expected = 'an amount of tokens as text, such as "0.5"'
        value = self.get(key, str, expected, None)
        if value is None:
            return default
        parsed = parse_tokens(value)
        if parsed is None:
            raise self._fail(key, expected, value)
        return parsed

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


def parse_size(text: str) -> int | None:
    """Bytes in ``"10 GiB"``, ``"512MB"`` or ``"1024"``; None if it is not a size."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*", text)
    if m is None:
        return None
    unit: int | None = SIZE_UNITS.get(str(m.group(2)).lower() or "b")
    if unit is None:
        return None
    whole, _, frac = str(m.group(1)).partition(".")
    scale: int = 10 ** len(frac)
    return int(whole) * unit + (int(frac or "0") * unit) // scale


def format_size(size: int) -> str:
    """``size`` bytes as the shortest exact text with a binary unit (``"10 GiB"``)."""
    for name, unit in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size and size % unit == 0:
            return f"{size // unit} {name}"
    return f"{size} B"


def parse_tokens(text: str) -> int | None:
    """Base units of a decimal amount of whole tokens, exact; None if it is not one."""
    m = re.fullmatch(r"\s*([0-9]*)(?:\.([0-9]{1,18}))?\s*", text)
    if m is None or not (m.group(1) or m.group(2)):
        return None
    units = int(m.group(1) or "0") * TOKEN + int((m.group(2) or "").ljust(18, "0"))
    return units if units <= MAX_AMOUNT else None


def format_tokens(units: int) -> str:
    whole, frac = divmod(units, TOKEN)
    return f"{whole}.{frac:018d}".rstrip("0").rstrip(".") if frac else str(whole)


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
# How: "text" (a sentence per line) or "json" (one object per line).
log_format = {log_format}

[wire]
# Where the node listens for peers and clients (TCP). 127.0.0.1 accepts
# only this machine; 0.0.0.0 every interface.
host = {host}
# The TCP port; clients and peers dial it. Each node on a machine needs its own.
port = {port}
{advertise}
# Nodes to sync blocks from and gossip to: "<public key hex>@<host>:<port>".
peers = {peers}

[ledger]
# The chain's genesis file: the same file on every node of the chain.
genesis_file = {genesis_file}

[host]
# Whether `storenode host` rents out disk. false: the node routes, follows
# the ledger and serves the gateway, but signs no storage contract.
enabled = {host_enabled}
# How much chunk data the host keeps at most ("500 GiB", "2 TB" or bytes).
capacity = {capacity}
# What the host asks, in tokens per GiB per challenge window.
price = {price}
# The collateral the host locks per contract, in basis points of its escrow
# (5000: half). Lost in part if the host misses more than half its windows.
collateral_bps = {collateral_bps}
# The longest contract, in windows, the host signs.
max_windows = {max_windows}

[http]
# The HTTP API and gateway: GET /content/<cid> (with Range) streams a work.
enabled = {http_enabled}
host = {http_host}
port = {http_port}

[publish]
# Reed-Solomon parameters of `storenode publish`: any k of n shards rebuild a
# stripe.
k = {publish_k}
# Shards per stripe: n hosts are needed, one shard of each stripe per host.
n = {publish_n}
# How many challenge windows the storage contracts last.
windows = {publish_windows}
# The most the publisher pays a host, in tokens per GiB per window.
max_price = {publish_max_price}
{client}"""

CLIENT_TEMPLATE: Final = """
[client]
# The node the wallet and chain commands of this home talk to.
node = {node}
# The most a fetch pays on its own for one priced work, in tokens.
spending_cap = {spending_cap}
"""

CLIENT_DEFAULT: Final = """
[client]
# The node the wallet and chain commands of this home talk to,
# "<public key hex>@<host>:<port>". Unset: this home's own node.
# node = "…@127.0.0.1:7400"
# The most a fetch pays on its own for one priced work, in tokens.
spending_cap = {spending_cap}
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
    if config.advertise_host is None:
        advertise = (
            "# The address other nodes dial, announced in the DHT; needed when host is\n"
            '# 0.0.0.0 (for example "203.0.113.7" or "node.example.org").\n'
            '# advertise = "203.0.113.7"'
        )
    else:
        advertise = (
            "# The address other nodes dial, announced in the DHT.\n"
            f"advertise = {toml_string(config.advertise_host)}"
        )
    node = config.client_node
    cap = toml_string(format_tokens(config.spending_cap))
    if node is None:
        client = CLIENT_DEFAULT.format(spending_cap=cap)
    else:
        client = CLIENT_TEMPLATE.format(node=toml_string(str(node)), spending_cap=cap)
    return TEMPLATE.format(
        identity_file=toml_string(str(config.identity_file)),
        data_dir=toml_string(str(config.data_dir)),
        log_level=toml_string(config.log_level),
        log_format=toml_string(config.log_format),
        host=toml_string(config.listen_host),
        port=config.listen_port,
        advertise=advertise,
        peers=peers,
        genesis_file=toml_string(str(config.genesis_file)),
        host_enabled=str(config.host_enabled).lower(),
        capacity=toml_string(format_size(config.capacity)),
        price=toml_string(format_tokens(config.price)),
        collateral_bps=config.collateral_bps,
        max_windows=config.max_windows,
        http_enabled=str(config.http_enabled).lower(),
        http_host=toml_string(config.http_host),
        http_port=config.http_port,
        publish_k=config.publish_k,
        publish_n=config.publish_n,
        publish_windows=config.publish_windows,
        publish_max_price=toml_string(format_tokens(config.publish_max_price)),
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
