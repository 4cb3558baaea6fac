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

* :mod:`~storenode.config.schema`: :class:`Config`, :class:`PeerSpec`, their
  defaults and limits, and the text forms of sizes and token amounts;
* :mod:`~storenode.config.reading`: :func:`load_config`, :func:`parse_config`
  and the :class:`ConfigError` family;
* :mod:`~storenode.config.writing`: the documented template,
  :func:`render_config`, :func:`write_config` and :func:`write_atomic`.

The operator's guide (docs/operator.md) documents each key.
"""

from storenode.config.reading import (
    ConfigError,
    ConfigKeyUnknownError,
    ConfigNotFoundError,
    ConfigSyntaxError,
    ConfigValueError,
    load_config,
    parse_config,
)
from storenode.config.schema import (
    DEFAULT_HTTP_PORT,
    DEFAULT_PORT,
    GIB,
    LOG_FORMATS,
    LOG_LEVELS,
    MAX_AMOUNT,
    PUBLIC_KEY_HEX,
    SIZE_UNITS,
    TOKEN,
    WILDCARD_HOSTS,
    Config,
    PeerSpec,
    format_size,
    format_tokens,
    parse_size,
    parse_tokens,
)
from storenode.config.writing import (
    CLIENT_DEFAULT,
    CLIENT_TEMPLATE,
    TEMPLATE,
    render_config,
    toml_string,
    write_atomic,
    write_config,
)

__all__ = [
    "CLIENT_DEFAULT",
    "CLIENT_TEMPLATE",
    "DEFAULT_HTTP_PORT",
    "DEFAULT_PORT",
    "GIB",
    "LOG_FORMATS",
    "LOG_LEVELS",
    "MAX_AMOUNT",
    "PUBLIC_KEY_HEX",
    "SIZE_UNITS",
    "TEMPLATE",
    "TOKEN",
    "WILDCARD_HOSTS",
    "Config",
    "ConfigError",
    "ConfigKeyUnknownError",
    "ConfigNotFoundError",
    "ConfigSyntaxError",
    "ConfigValueError",
    "PeerSpec",
    "format_size",
    "format_tokens",
    "load_config",
    "parse_config",
    "parse_size",
    "parse_tokens",
    "render_config",
    "toml_string",
    "write_atomic",
    "write_config",
]
