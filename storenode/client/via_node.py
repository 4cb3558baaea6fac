"""Reading a work through the home's running node, as ``storenode fetch`` and
``stream`` do when the home's daemon is up.

A node that runs (``storenode host``) has joined the network, keeps its
connections to the hosts open, caches manifests and providers, and buys a
priced work with the home's key under the home's spending cap. A command that
reads a work from that home would only do all of it again in a new process:
~0.3 s of start-up (the interpreter importing trio, numpy and the crypto
bindings, then joining the DHT) before its first request. So it asks the
node's gateway instead, as ``tahoe get`` asks its client node and ``ipfs get``
its daemon: this module is that thin client, over the standard library only.

:func:`running_node` says whether the home's node runs (``<home>/node.json``
names an HTTP address and a live process of this user that started no later
than the node said it was up, so not one that took a dead node's pid);
:func:`open_work` starts the read.
A node that cannot be reached, or whose answer is not a storenode gateway's,
is :class:`NodeNotReachedError`: the caller reads from the hosts itself. A
node that answers with an error gives the :class:`ContentError` it stands for
(not found, payment required, unavailable, corrupt), with the node's words.
"""

from __future__ import annotations

import json
import os
import socket
import struct
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Final, NamedTuple

from storenode.client.content import (
    ContentCorruptError,
    ContentError,
    ContentInfo,
    ContentNotFoundError,
    ContentUnavailableError,
    PaymentRequiredError,
)
from storenode.client.local_protocol import (
    MAX_MESSAGE,
    DoneReply,
    ErrorReply,
    InfoReply,
    LocalMessageError,
    WrittenReply,
    error_of,
    fetch_request,
    parse_reply,
)
from storenode.homedir import READY_FILE

if TYPE_CHECKING:
    # imported where a read through the gateway starts: ~15 ms of a command's
    # start-up that a fetch over the local socket does not need
    import http.client

CONNECT_TIMEOUT: Final = 2.0
"""Seconds to wait for the node to accept the connection (it is on this machine)."""
READ_TIMEOUT: Final = 120.0
"""Seconds to wait for the next bytes: the node gives up on unreachable hosts
sooner and then answers 503 itself."""

CLOCK_SLACK: Final = 2.0
"""Seconds of rounding allowed between a process's start time and the node's."""

_LOOPBACK: Final = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}
"""A node listening on every address is asked on loopback."""


class OutputWriteError(Exception):
    """The node could not write the work into the command's file (the disk full, say)."""

    def __init__(self, message: str, *, errno: int) -> None:
        super().__init__(message)
        self.errno = errno


class NodeNotReachedError(Exception):
    """The home's node did not answer as a storenode gateway (stopped, restarting,
    or its port now belongs to something else): read from the hosts instead."""


class StartPastEndError(ContentError):
    """A read asked to start past the end of the work (HTTP 416)."""

    def __init__(self, message: str, *, length: int) -> None:
        super().__init__(message)
        self.length = length


class RunningNode(NamedTuple):
    """The home's node as its ``node.json`` describes it."""

    pid: int
    host: str
    port: int
    socket: str | None = None
    """The node's local socket (docs/specs/local-socket.md), if it serves one."""

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def running_node(home: Path) -> RunningNode | None:
    """The node running from ``home``: None unless ``<home>/node.json`` names an
    HTTP address (a node with its API off has none) and a live process of this
    user that started no later than the node's ``started`` time. A wall clock
    set forward since then makes the node look newer than that: the command
    then reads from the hosts itself, which is slower but right."""
    try:
        doc = json.loads((home / READY_FILE).read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict):
        return None
    pid, http_at, started = doc.get("pid"), doc.get("http"), doc.get("started")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return None
    if not isinstance(http_at, str):
        return None
    host, sep, port_text = http_at.rpartition(":")
    port = _number(port_text)
    if not sep or port is None or not 0 < port < 65536:
        return None
    host = host.removeprefix("[").removesuffix("]")
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return None  # a node.json left by a node that crashed (its pid gone, or another's)
    if not isinstance(started, int | float) or not _started_by(pid, started):
        return None  # the pid was reused: a process that started after the node did
    local = doc.get("socket")
    local = local if isinstance(local, str) and os.path.isabs(local) else None
    return RunningNode(pid, _LOOPBACK.get(host, host), port, local)


def _started_by(pid: int, started: float) -> bool:
    """Whether process ``pid`` started no later than ``started`` (the node's
    ``node.json`` time, taken once it was up): the node itself, not a process
    that took its pid after it stopped. True where /proc does not say."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rpartition(b")")[2].split()
        with open("/proc/stat", "rb") as f:
            boot = next(int(line.split()[1]) for line in f if line.startswith(b"btime "))
        ticks = int(fields[19])  # field 22 of stat(5): start time in clock ticks since boot
    except (OSError, ValueError, IndexError, StopIteration):
        return True
    return boot + ticks / os.sysconf("SC_CLK_TCK") <= started + CLOCK_SLACK


def _number(text: str) -> int | None:
    """A non-negative integer written in ASCII digits; None for anything else."""
    return int(text) if text.isascii() and text.isdigit() else None


class WorkReader:
    """One read of a work's bytes from the node, from ``start`` to its end."""

    def __init__(
        self,
        info: ContentInfo,
        start: int,
        connection: http.client.HTTPConnection,
        response: http.client.HTTPResponse,
    ) -> None:
        self.info = info
        self.start = start
        self.position = start
        self._connection = connection
        self._response = response

    def readinto(self, buffer: memoryview) -> int:
        """Fill the start of ``buffer`` with the next bytes; 0 at the end of the work.

        Raises :class:`ContentUnavailableError` if the node stops before the end
        (it could not go on reading the work; its log says why)."""
        import http.client

        try:
            got = self._response.readinto(buffer)
        except http.client.IncompleteRead:
            got = 0
        except (OSError, http.client.HTTPException) as exc:
            raise self._cut_short(f"{type(exc).__name__}: {exc}") from None
        if got == 0 and self.position < self.info.length:
            raise self._cut_short("the node closed the response")
        self.position += got
        return got

    def _cut_short(self, why: str) -> ContentUnavailableError:
        return ContentUnavailableError(
            f"the node at {self._connection.host}:{self._connection.port} stopped sending "
            f"work {self.info.cid.hex()} at byte {self.position} of {self.info.length} ({why}); "
            "its log says why"
        )

    def close(self) -> None:
        self._response.close()
        self._connection.close()

    def __enter__(self) -> WorkReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_UCRED: Final = struct.Struct("3i")  # pid, uid, gid


def fetch_into(
    node: RunningNode,
    cid: bytes,
    fd: int,
    progress: Callable[[ContentInfo, int], None] | None = None,
) -> ContentInfo:
    """Have ``node`` write work ``cid`` into the regular file open at ``fd``, from
    its offset 0, over the node's local socket; the work's info once it is all
    there. ``progress`` is called with the info and the bytes written so far
    as the node reports them.

    :class:`NodeNotReachedError` if the node has no socket, or does not answer
    on it as the node of ``node.json`` (nothing was written then). A failure
    after the node opened the work is the :class:`ContentError` it stands for,
    with the node's reason and where it stopped, or :class:`OutputWriteError`.
    The file's bytes are not synced: that is the caller's."""
    if node.socket is None:
        raise NodeNotReachedError("the node serves no local socket")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        sock.settimeout(CONNECT_TIMEOUT)
        sock.connect(node.socket)
        peer, _, _ = _UCRED.unpack(
            sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
        )
        if peer != node.pid:
            raise NodeNotReachedError(
                f"{node.socket} is served by process {peer}, not the node's {node.pid}"
            )
        socket.send_fds(sock, [fetch_request(cid)], [fd])
        sock.settimeout(READ_TIMEOUT)
        return _take_replies(sock, node, cid, progress)
    except (OSError, LocalMessageError) as exc:  # before the node opened the work
        raise NodeNotReachedError(f"the node's socket {node.socket}: {exc}") from None
    finally:
        sock.close()


def _take_replies(
    sock: socket.socket,
    node: RunningNode,
    cid: bytes,
    progress: Callable[[ContentInfo, int], None] | None,
) -> ContentInfo:
    first = _reply(sock)
    if isinstance(first, ErrorReply):
        if first.kind in ("bad_request", "write_failed"):
            raise NodeNotReachedError(f"the node refused the request: {first.message}")
        raise error_of(first)
    if not isinstance(first, InfoReply) or first.info.cid != cid:
        raise NodeNotReachedError(f"the node's first answer on {node.socket} is not the work's")
    info = first.info
    written = 0
    while True:
        try:
            reply = _reply(sock)
        except (OSError, LocalMessageError) as exc:
            why = "it closed the socket" if isinstance(exc, EOFError) else str(exc)
            raise ContentUnavailableError(
                f"the node stopped writing work {cid.hex()} at byte {written} of "
                f"{info.length} ({why})"
            ) from None
        if isinstance(reply, WrittenReply):
            written = reply.length
            if progress is not None:
                progress(info, written)
        elif isinstance(reply, DoneReply) and reply.length == info.length:
            return info
        elif isinstance(reply, ErrorReply) and reply.kind == "write_failed":
            raise OutputWriteError(reply.message, errno=reply.errno)
        elif isinstance(reply, ErrorReply):
            where = f"the node stopped writing at byte {reply.at} of {info.length}"
            raise error_of(reply._replace(message=f"{reply.message} ({where})"))
        else:
            raise ContentUnavailableError(
                f"the node's answer after byte {written} of work {cid.hex()} makes no sense: "
                f"{reply}"
            )


class _EndOfReplies(EOFError, OSError):
    """The node closed the socket."""


def _reply(sock: socket.socket) -> InfoReply | WrittenReply | DoneReply | ErrorReply:
    data = sock.recv(MAX_MESSAGE + 1)
    if not data:
        raise _EndOfReplies("the node closed the socket")
    return parse_reply(data)


def open_work(node: RunningNode, cid: bytes, start: int = 0) -> WorkReader:
    """Start reading work ``cid`` from byte ``start`` through ``node``'s gateway."""
    import http.client

    connection = http.client.HTTPConnection(node.host, node.port, timeout=CONNECT_TIMEOUT)
    headers = {"Accept": "*/*"}
    if start > 0:
        headers["Range"] = f"bytes={start}-"
    try:
        connection.request("GET", f"/content/{cid.hex()}", headers=headers)
        assert connection.sock is not None
        connection.sock.settimeout(READ_TIMEOUT)
        response = connection.getresponse()
    except (OSError, http.client.HTTPException) as exc:
        connection.close()
        raise NodeNotReachedError(f"the node at {node.url} did not answer: {exc}") from None
    try:
        info = _answer(node, cid, start, response)
    except BaseException:
        response.close()
        connection.close()
        raise
    return WorkReader(info, start, connection, response)


def _answer(
    node: RunningNode, cid: bytes, start: int, response: http.client.HTTPResponse
) -> ContentInfo:
    """The work's info from a 200 or 206, or the error an error status stands for."""
    status = response.status
    ours = response.getheader("ETag") == f'"{cid.hex()}"'
    if ours and status == 200 and start > 0 and response.getheader("Content-Length") == "0":
        # an empty work: the gateway serves it whole whatever the range asked
        raise StartPastEndError(f"work {cid.hex()} is empty (0 bytes)", length=0)
    if ours and status in (200, 206):
        length = _length(response, status, start)
        if length is not None:
            return ContentInfo(
                cid,
                _file_name(response.getheader("Content-Disposition")) or cid.hex(),
                response.getheader("Content-Type") or "application/octet-stream",
                length,
                response.getheader("Storenode-Manifest") == "registered",
            )
    body = _error_body(response)
    message = body.get("error")
    if not isinstance(message, str):  # not one of our answers: someone else has the port now
        raise NodeNotReachedError(
            f"the answer of {node.url} (HTTP {status}) is not a storenode gateway's"
        )
    if status == 404:
        raise ContentNotFoundError(message)
    if status == 402:
        price, cap = body.get("price"), body.get("cap")
        raise PaymentRequiredError(
            message,
            price=price if isinstance(price, int) else 0,
            cap=cap if isinstance(cap, int) else 0,
        )
    if status == 416:
        total = _number((response.getheader("Content-Range") or "").rpartition("/")[2])
        raise StartPastEndError(message, length=total or 0)
    if status == 502:
        raise ContentCorruptError(message)
    raise ContentUnavailableError(f"{message} (the node answered HTTP {status})")


def _length(response: http.client.HTTPResponse, status: int, start: int) -> int | None:
    """The work's whole length from the headers, if they agree with the read asked."""
    body_length = _number(response.getheader("Content-Length", ""))
    if body_length is None:
        return None
    if status == 200:
        return body_length if start == 0 else None
    content_range = (response.getheader("Content-Range") or "").removeprefix("bytes ")
    first, _, total_text = content_range.partition("/")
    total = _number(total_text)
    if total is None or _number(first.partition("-")[0]) != start:
        return None
    return total


def _error_body(response: http.client.HTTPResponse) -> dict[str, object]:
    import http.client

    try:
        doc = json.loads(response.read(64 * 1024))
    except (OSError, ValueError, http.client.HTTPException):
        return {}
    return doc if isinstance(doc, dict) else {}


def _file_name(disposition: str | None) -> str | None:
    """The plain ``filename`` of a ``Content-Disposition`` (for a progress bar)."""
    if disposition is None:
        return None
    _, found, rest = disposition.partition('filename="')
    name = rest.partition('"')[0] if found else ""
    return name or None


__all__ = [
    "CLOCK_SLACK",
    "CONNECT_TIMEOUT",
    "READ_TIMEOUT",
    "NodeNotReachedError",
    "OutputWriteError",
    "RunningNode",
    "StartPastEndError",
    "WorkReader",
    "fetch_into",
    "open_work",
    "running_node",
]
