"""Reading ``config.toml``: :func:`load_config`, :func:`parse_config` and their errors.

Read with :mod:`tomllib` and checked field by field: a bad config is bad
input, so every problem raises a :class:`ConfigError` subclass that names the
key (``wire.port``) and says what is expected. Every section and key is
optional (:class:`~storenode.config.schema.Config` has the defaults); one
this storenode does not know is an error (often a typo).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from storenode.config.schema import (
    LOG_FORMATS,
    LOG_LEVELS,
    WILDCARD_HOSTS,
    Config,
    PeerSpec,
    parse_size,
    parse_tokens,
)


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
    host = reader.section(
        "host",
        ("enabled", "capacity", "price", "collateral_bps", "max_windows", "scrub_rate", "repair"),
    )
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
        scrub_rate=host.size("scrub_rate", default.scrub_rate),
        repair=host.boolean("repair", default.repair),
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
