"""Writing ``config.toml``: the documented file that ``storenode init`` creates.

:func:`render_config` fills :data:`TEMPLATE`, which describes every key in a
comment, so that ``parse_config(render_config(c)) == c``; :func:`write_config`
writes it with :func:`write_atomic`, which other files of a home use too.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

from storenode.config.reading import parse_config
from storenode.config.schema import Config, format_size, format_tokens

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
# How much chunk data the host re-reads and checks per second in the
# background, to find what its disk damaged before a challenge does
# ("1 MiB": ~84 GiB a day; 0: never).
scrub_rate = {scrub_rate}
# Rebuild a chunk the scrub found damaged from the other hosts of its stripe
# (a priced work only if this node holds a receipt for it).
repair = {repair}

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
        scrub_rate=toml_string(format_size(config.scrub_rate)),
        repair=str(config.repair).lower(),
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
