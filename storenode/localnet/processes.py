"""``storenode localnet up|status|down``: the nodes of a localnet as real processes.

``up`` writes the homes (:func:`~storenode.localnet.homes.init_localnet`: one
validator and N hosts), starts each node as ``python -m storenode.cli --home
HOME host`` in a session of its own (so a Ctrl-C in the terminal that ran
``up`` does not reach it), its output appended to ``HOME/node.log``, and
records ``DIR/localnet.json``::

    {"version": 1, "started": 1700000000.5, "gateway": "http://127.0.0.1:PORT",
     "publisher_home": "DIR/publisher",
     "nodes": [{"name", "role", "home", "pid", "wire", "http"}, ...]}

The record is written as soon as the processes exist, so ``down`` can stop
them even when ``up`` failed half way. A node is up once its ``HOME/node.json``
(written by the daemon when it listens) names the pid that was started and its
``GET /api/status`` answers; ``wire`` and ``http`` are then what the daemon
reports.

Processes are found only by the recorded pids, never by name, and a pid
counts as the node's only while ``/proc/<pid>/cmdline`` names the node's home:
a pid the kernel has given to another program since is left alone.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

from storenode.config import write_atomic
from storenode.homedir import READY_FILE
from storenode.localnet.homes import LocalnetError, LocalnetParamsError, init_localnet

log = logging.getLogger(__name__)

RECORD_NAME: Final = "localnet.json"
RECORD_VERSION: Final = 1
LOG_NAME: Final = "node.log"
NODE_COMMAND: Final = (sys.executable, "-m", "storenode.cli")
START_TIMEOUT: Final = 60.0
STOP_GRACE: Final = 10.0
STATUS_TIMEOUT: Final = 2.0
POLL: Final = 0.1
LOG_TAIL_LINES: Final = 30
UP_BLOCK_TIME: Final = 1
UP_WINDOW_BLOCKS: Final = 5
"""Windows of 5 one-second blocks: a demo sees several settle within a minute."""


class LocalnetNotFoundError(LocalnetError):
    def __init__(self, directory: Path) -> None:
        super().__init__(
            f"no localnet in {directory} (no {RECORD_NAME}): "
            f"start one with `storenode localnet up --dir {directory}`"
        )
        self.directory = directory


class LocalnetRecordError(LocalnetError):
    """``localnet.json`` is not one this storenode wrote."""

    def __init__(self, path: Path, why: str) -> None:
        super().__init__(f"{path} is not a localnet record ({why}): stop its nodes by hand")
        self.path = path


class NodeStartError(LocalnetError):
    """A node exited, or did not come up in time; the message ends with its log."""

    def __init__(self, name: str, why: str, log_path: Path) -> None:
        tail = log_tail(log_path)
        super().__init__(f"{name} {why}; the end of {log_path}:\n{tail}")
        self.name = name
        self.log_path = log_path


# -- the record (pure) -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NodeRecord:
    name: str
    role: str
    """``validator`` or ``host``."""
    home: Path
    pid: int
    wire: str | None
    """``host:port`` of the wire, as the daemon reported it (None until it did)."""
    http: str | None
    """``host:port`` of the HTTP API and gateway, as the daemon reported it."""

    @property
    def log_path(self) -> Path:
        return self.home / LOG_NAME

    def summary(self) -> dict[str, Any]:
        """What ``localnet up --json`` prints of the node."""
        return {"name": self.name, "pid": self.pid, "wire": self.wire, "http": self.http}

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role,
            "home": str(self.home),
            "pid": self.pid,
            "wire": self.wire,
            "http": self.http,
        }


@dataclass(frozen=True, slots=True)
class LocalnetRecord:
    directory: Path
    nodes: tuple[NodeRecord, ...]
    publisher_home: Path
    started: float

    @property
    def gateway(self) -> str | None:
        """The first validator's HTTP address as a URL (None until it reported one)."""
        http = next((n.http for n in self.nodes if n.role == "validator"), None)
        return None if http is None else f"http://{http}"

    @property
    def hosts(self) -> tuple[NodeRecord, ...]:
        return tuple(n for n in self.nodes if n.role == "host")

    def node(self, name: str) -> NodeRecord:
        for n in self.nodes:
            if n.name == name:
                return n
        known = ", ".join(n.name for n in self.nodes)
        raise LocalnetParamsError(f"no node {name!r} in {self.directory}; its nodes: {known}")

    def with_node(self, node: NodeRecord) -> LocalnetRecord:
        return replace(self, nodes=tuple(node if n.name == node.name else n for n in self.nodes))

    def to_json(self) -> dict[str, Any]:
        return {
            "version": RECORD_VERSION,
            "started": self.started,
            "gateway": self.gateway,
            "publisher_home": str(self.publisher_home),
            "nodes": [n.to_json() for n in self.nodes],
        }

    def summary(self) -> dict[str, Any]:
        """What ``localnet up --json`` prints."""
        return {
            "gateway": self.gateway,
            "publisher_home": str(self.publisher_home),
            "nodes": [n.summary() for n in self.nodes],
        }


def parse_record(directory: Path, text: str, *, source: Path) -> LocalnetRecord:
    """The record in ``text``; :class:`LocalnetRecordError` saying what is wrong."""
    try:
        doc = json.loads(text)
        if not isinstance(doc, dict) or doc.get("version") != RECORD_VERSION:
            raise LocalnetRecordError(source, f"not version {RECORD_VERSION}")
        nodes = tuple(
            NodeRecord(
                name=_typed(n["name"], str),
                role=_typed(n["role"], str),
                home=Path(_typed(n["home"], str)),
                pid=_typed(n["pid"], int),
                wire=_optional(n["wire"], str),
                http=_optional(n["http"], str),
            )
            for n in doc["nodes"]
        )
        return LocalnetRecord(
            directory=directory,
            nodes=nodes,
            publisher_home=Path(_typed(doc["publisher_home"], str)),
            started=float(_typed(doc["started"], (int, float))),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise LocalnetRecordError(source, f"{type(exc).__name__}: {exc}") from None


def _typed(value: Any, kind: type | tuple[type, ...]) -> Any:
    if not isinstance(value, kind) or isinstance(value, bool):
        raise TypeError(f"unexpected value {value!r}")
    return value


def _optional(value: Any, kind: type) -> Any:
    return None if value is None else _typed(value, kind)


def names_home(cmdline: bytes, home: Path) -> bool:
    """Whether a ``/proc/<pid>/cmdline`` (NUL-separated arguments) names ``home``
    as one of its arguments: then the process is that home's node."""
    return os.fsencode(str(home)) in cmdline.split(b"\0")


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


# -- files and processes -----------------------------------------------------------------


def record_path(directory: Path) -> Path:
    return directory / RECORD_NAME


def load_record(directory: Path) -> LocalnetRecord:
    directory = directory.expanduser().absolute()
    path = record_path(directory)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LocalnetNotFoundError(directory) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise LocalnetRecordError(path, str(exc)) from None
    return parse_record(directory, text, source=path)


def save_record(record: LocalnetRecord) -> None:
    data = json.dumps(record.to_json(), indent=2).encode() + b"\n"
    write_atomic(record_path(record.directory), data, replace=True)


def is_running(pid: int, home: Path) -> bool:
    """Whether ``pid`` is alive and is ``home``'s node (not a reused pid).

    A node this process started and that has died is reaped here, so it does
    not linger as a zombie (whose command line is empty: not running)."""
    with contextlib.suppress(ChildProcessError):  # not ours: its parent or init reaps it
        os.waitpid(pid, os.WNOHANG)
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return names_home(cmdline, home)


def spawn_node(home: Path) -> int:
    """Start ``home``'s node (``storenode --home HOME host``) in a session of its
    own; stdin from /dev/null, stdout and stderr appended to ``HOME/node.log``."""
    argv = [*NODE_COMMAND, "--home", str(home), "host"]
    append = os.O_WRONLY | os.O_CREAT | os.O_APPEND
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, str(home / LOG_NAME), append, 0o644),
        (os.POSIX_SPAWN_DUP2, 1, 2),
    ]
    return os.posix_spawn(argv[0], argv, dict(os.environ), file_actions=actions, setsid=True)


def read_ready(home: Path) -> dict[str, Any] | None:
    """The daemon's ``node.json``, or None while there is none (or it is half written)."""
    try:
        doc = json.loads((home / READY_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


_OPENER: Final = urllib.request.build_opener(urllib.request.ProxyHandler({}))
"""Talks to 127.0.0.1 directly, whatever proxy the environment names."""


def fetch_status(http: str, *, timeout: float = STATUS_TIMEOUT) -> dict[str, Any] | None:
    """``GET http://<http>/api/status`` as JSON; None if the node does not answer."""
    try:
        with _OPENER.open(f"http://{http}/api/status", timeout=timeout) as reply:
            doc = json.loads(reply.read())
    except (OSError, ValueError):  # URLError and timeouts are OSErrors
        return None
    return doc if isinstance(doc, dict) else None


def wait_ready(
    nodes: Iterable[NodeRecord], *, timeout: float = START_TIMEOUT
) -> dict[str, NodeRecord]:
    """Wait until each node's ``node.json`` names its pid and its ``/api/status``
    answers; the nodes with the addresses they reported, by name.
    :class:`NodeStartError` if one exits or is not up within ``timeout``."""
    waiting = {n.name: n for n in nodes}
    ready: dict[str, NodeRecord] = {}
    deadline = time.monotonic() + timeout
    while waiting:
        for name, node in list(waiting.items()):
            doc = read_ready(node.home)
            if doc is not None and doc.get("pid") == node.pid:
                http = doc.get("http")
                if http is None or fetch_status(http) is not None:
                    ready[name] = replace(node, wire=doc.get("wire"), http=http)
                    del waiting[name]
                    continue
            if not is_running(node.pid, node.home):
                raise NodeStartError(name, f"(pid {node.pid}) exited while starting", node.log_path)
        if waiting and time.monotonic() > deadline:
            node = next(iter(waiting.values()))
            late = ", ".join(waiting)
            raise NodeStartError(
                node.name, f"is not up after {timeout:g} s (waiting for {late})", node.log_path
            )
        if waiting:
            time.sleep(POLL)
    return ready


# -- the commands --------------------------------------------------------------------------


def up(
    directory: Path,
    *,
    hosts: int,
    block_time: int = UP_BLOCK_TIME,
    window_blocks: int = UP_WINDOW_BLOCKS,
    timeout: float = START_TIMEOUT,
) -> LocalnetRecord:
    """Write a localnet of one validator and ``hosts`` hosts in ``directory``
    (new or empty), start every node and wait until all are up. If one does
    not come up, every node started is stopped again and the error raised."""
    if hosts < 1:
        raise LocalnetParamsError("a localnet that stores anything has at least one host")
    net = init_localnet(
        directory, validators=1, followers=hosts, block_time=block_time, window_blocks=window_blocks
    )
    directory = net.genesis_file.parent
    publisher = next(h.home for h in net.homes if h.role == "publisher")
    nodes = []
    record = LocalnetRecord(directory, (), publisher, time.time())
    try:
        for h in net.homes:
            if h.role != "publisher":
                nodes.append(NodeRecord(h.name, h.role, h.home, spawn_node(h.home), None, None))
                record = replace(record, nodes=tuple(nodes))
                save_record(record)
        log.info("started %d nodes in %s; waiting for them to listen", len(nodes), directory)
        ready = wait_ready(record.nodes, timeout=timeout)
    except BaseException:
        if nodes:
            down(directory)
        raise
    record = replace(record, nodes=tuple(ready[n.name] for n in record.nodes))
    save_record(record)
    return record


def start_nodes(
    directory: Path, names: Iterable[str], *, timeout: float = START_TIMEOUT
) -> LocalnetRecord:
    """Start the recorded nodes ``names`` again (after they stopped or were
    killed), all at once, and wait until they are up; the record with their
    new pids."""
    record = load_record(directory)
    nodes = [record.node(name) for name in names]
    for node in nodes:
        if is_running(node.pid, node.home):
            raise LocalnetError(f"{node.name} is already running (pid {node.pid})")
    started = []
    for node in nodes:
        started.append(replace(node, pid=spawn_node(node.home)))
        record = record.with_node(started[-1])
        save_record(record)
    for node in wait_ready(started, timeout=timeout).values():
        record = record.with_node(node)
    save_record(record)
    return record


@dataclass(frozen=True, slots=True)
class NodeStatus:
    node: NodeRecord
    running: bool
    status: dict[str, Any] | None
    """What its ``/api/status`` said (None if it is not running or did not answer)."""

    def get(self, key: str) -> Any:
        return None if self.status is None else self.status.get(key)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.node.name,
            "role": self.node.role,
            "pid": self.node.pid,
            "running": self.running,
            "height": self.get("height"),
            "chunks": self.get("chunks"),
            "contracts": self.get("contracts"),
            "status": self.status,
        }


def status(directory: Path) -> tuple[LocalnetRecord, list[NodeStatus]]:
    record = load_record(directory)
    out = []
    for node in record.nodes:
        running = is_running(node.pid, node.home)
        doc = fetch_status(node.http) if running and node.http else None
        out.append(NodeStatus(node, running, doc))
    return record, out


@dataclass(frozen=True, slots=True)
class DownReport:
    stopped: tuple[str, ...]
    """Nodes that stopped on SIGTERM."""
    killed: tuple[str, ...]
    """Nodes that did not stop within the grace period and were sent SIGKILL."""
    not_running: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "stopped": list(self.stopped),
            "killed": list(self.killed),
            "not_running": list(self.not_running),
        }


def down(directory: Path, *, grace: float = STOP_GRACE) -> DownReport:
    """SIGTERM every recorded node that is running, SIGKILL those still running
    after ``grace`` seconds. Running it again finds nothing to stop."""
    record = load_record(directory)
    running = [n for n in record.nodes if is_running(n.pid, n.home)]
    not_running = tuple(n.name for n in record.nodes if n not in running)
    for node in _signal(running, signal.SIGTERM):
        log.info("sent SIGTERM to %s (pid %d)", node.name, node.pid)
    left = _wait_stopped(running, grace)
    for node in _signal(left, signal.SIGKILL):
        log.warning("%s (pid %d) did not stop in %g s: sent SIGKILL", node.name, node.pid, grace)
    _wait_stopped(left, grace)
    killed = tuple(n.name for n in left)
    stopped = tuple(n.name for n in running if n.name not in killed)
    return DownReport(stopped, killed, not_running)


def _signal(nodes: list[NodeRecord], signum: signal.Signals) -> list[NodeRecord]:
    """Send ``signum`` to each node whose pid is still its own; those signalled."""
    sent = []
    for node in nodes:
        if is_running(node.pid, node.home):  # checked right before: the pid is still the node's
            try:
                os.kill(node.pid, signum)
            except ProcessLookupError:
                continue
            sent.append(node)
    return sent


def _wait_stopped(nodes: list[NodeRecord], seconds: float) -> list[NodeRecord]:
    """The nodes still running after waiting up to ``seconds`` for all to stop."""
    deadline = time.monotonic() + seconds
    left = list(nodes)
    while left:
        left = [n for n in left if is_running(n.pid, n.home)]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(POLL)
    return left
