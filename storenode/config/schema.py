"""What a node home's ``config.toml`` holds: :class:`Config` and :class:`PeerSpec`.

The dataclasses and their defaults, the limits the keys are checked against,
and the text forms of the values that are not plain TOML: sizes (``"10 GiB"``,
:func:`parse_size`, :func:`format_size`) and token amounts (decimal text of
whole tokens, exact: :func:`parse_tokens`, :func:`format_tokens`).
:mod:`storenode.config.reading` reads a file into a :class:`Config`;
:mod:`storenode.config.writing` writes one back as the documented file.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

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
    scrub_rate: int = 1024 * 1024
    """Bytes of chunks per second the host re-reads and checks in the background
    (0: never): 1 MiB/s goes over ~84 GiB a day, for ~1.5 ms of CPU a second."""
    repair: bool = True
    """Whether the host rebuilds a chunk the scrub found damaged from the other
    hosts of its stripe (reading the stripe as any reader would, paying nothing)."""

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
