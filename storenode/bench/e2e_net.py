"""The localnet a ``storenode bench e2e`` run measures: ``storenode localnet up``
with :data:`HOSTS` hosts and :data:`WINDOW_BLOCKS`-block challenge windows in a
folder of the run's, its nodes' pids, homes and memory, and ``localnet down``
on every way out."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from storenode.bench.measure import BenchError, json_line, run_command, vm_hwm_mib

HOSTS: Final = 10
CLI: Final = (sys.executable, "-m", "storenode.cli")
UP_TIMEOUT_S: Final = 180.0
DOWN_TIMEOUT_S: Final = 60.0

Say = Callable[[str], None]
"""Where a run says what it is doing (stderr)."""


@dataclass(frozen=True)
class Localnet:
    directory: Path
    gateway: str
    publisher_home: Path
    pids: dict[str, int]
    """Each node's process, by name (``validator-1``, ``node-1`` …)."""

    def node_home(self, name: str) -> Path:
        """Node ``name``'s home (``localnet up`` makes it ``DIR/<name>``)."""
        return self.directory / name

    def hwm_mib(self, name: str) -> float:
        """Node ``name``'s peak resident set since it started (VmHWM)."""
        return vm_hwm_mib(self.pids[name])


WINDOW_BLOCKS: Final = 30
"""Challenge windows of 30 one-second blocks. The demo's 5-block windows make
every host prove every contract each 5 s, and every proof is gossiped to and
checked by all 11 nodes: with the contracts a bench run opens, that load
alone took a quarter to half a core. A real network's windows are far longer."""


@contextlib.contextmanager
def localnet(directory: Path, say: Say) -> Iterator[Localnet]:
    """A running localnet of :data:`HOSTS` hosts in ``directory``, always brought down."""
    say(f"starting a localnet of {HOSTS} hosts in {directory}")
    up = [
        *CLI,
        *("localnet", "up", "--hosts", str(HOSTS), "--dir", str(directory), "--json"),
        *("--window-blocks", str(WINDOW_BLOCKS)),
    ]
    down = [*CLI, "localnet", "down", "--dir", str(directory)]
    try:
        ran = run_command(up, "storenode localnet up", UP_TIMEOUT_S)
        doc = json_line(ran.stdout, "storenode localnet up")
        say(f"localnet up in {ran.seconds:.1f} s, gateway {doc['gateway']}")
        pids = {str(node["name"]): int(node["pid"]) for node in doc["nodes"]}
        yield Localnet(
            directory, str(doc["gateway"]).rstrip("/"), Path(doc["publisher_home"]), pids
        )
    except BaseException:
        with contextlib.suppress(BenchError):  # the first error is the one to report
            run_command(down, "storenode localnet down", DOWN_TIMEOUT_S)
        raise
    run_command(down, "storenode localnet down", DOWN_TIMEOUT_S)


__all__ = ["CLI", "HOSTS", "WINDOW_BLOCKS", "Localnet", "Say", "localnet"]
