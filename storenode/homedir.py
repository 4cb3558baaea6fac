"""Where a home is, and the file a running node leaves in it, without opening the
home: what a command needs before it knows whether it will read the config and
the key (opening a home imports the config schema and the crypto bindings,
~50 ms; this module imports nothing beyond the standard library)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

HOME_ENV: Final = "STORENODE_HOME"

READY_FILE: Final = "node.json"
"""Written in the home by ``storenode host`` once it serves, removed when it stops:
its pid, name, address, public key, wire and HTTP addresses and start time."""


def default_home() -> Path:
    """``$STORENODE_HOME``, else ``~/.storenode``."""
    env = os.environ.get(HOME_ENV)
    return Path(env) if env else Path.home() / ".storenode"


__all__ = ["HOME_ENV", "READY_FILE", "default_home"]
