"""How the end-to-end bench measures: one command, one HTTP GET, one process's memory.

* :func:`run_command` runs a storenode command as its own process, times it
  from start to exit and samples its peak resident set (``VmHWM``) while it
  runs;
* :func:`http_get` sends one GET on a new connection and times the first
  byte of the response and of its body (curl's ``time_starttransfer`` is the
  former);
* :func:`vm_hwm_mib` reads a running process's peak resident set (VmHWM);
* random input files and their SHA-256.

Every failure is a :class:`BenchError` whose message names the step.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

MIB: Final = 1 << 20
SAMPLE_S: Final = 0.005
"""How often :func:`run_command` reads its command's ``VmHWM``."""
HTTP_TIMEOUT_S: Final = 120.0


class BenchError(Exception):
    """A step of the bench failed; the message says which and ends with its output."""


# -- commands -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Ran:
    """A storenode command that succeeded."""

    stdout: str
    seconds: float
    """Wall time, start to exit."""
    peak_mib: float
    """Its peak resident set: the last ``VmHWM`` read while it ran (every
    :data:`SAMPLE_S`), else its ``ru_maxrss``.

    ``ru_maxrss`` alone is no measure of a small command: Linux counts in it the
    memory the process had before it exec'd the command, and a child started
    with ``vfork`` (as :mod:`subprocess` and ``posix_spawn`` start them) has the
    bench's own memory until then, so every command looked at least as large
    as the bench. ``VmHWM`` is the command's image's own, since exec."""


def run_command(args: Sequence[str], what: str, timeout: float) -> Ran:
    """Run a storenode command; its output, wall time and peak memory, or a
    :class:`BenchError`. A thread reaps it with ``wait4`` and notes the time it
    ended; another samples its ``VmHWM`` until then."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        # Popen returns once the child has exec'd the command (or failed to)
        proc = subprocess.Popen(list(args), stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        ended: list[tuple[float, int, float]] = []
        sampled: list[float] = []

        def reap() -> None:
            _, status, usage = os.wait4(proc.pid, 0)
            ended.append((time.perf_counter(), status, usage.ru_maxrss / 1024))

        def sample() -> None:
            while not ended:
                hwm = _hwm_or_none(proc.pid)
                if hwm is not None and not ended:  # not another process with its pid
                    sampled.append(hwm)
                time.sleep(SAMPLE_S)

        reaper = threading.Thread(target=reap, name=f"reap {what}", daemon=True)
        sampler = threading.Thread(target=sample, name=f"sample {what}", daemon=True)
        reaper.start()
        sampler.start()
        killed = False
        try:
            reaper.join(timeout)
        finally:  # a timeout, or Ctrl-C: the command does not outlive the bench
            if not ended:
                killed = True
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)  # not proc.kill(): only reap() reaps
                reaper.join()
            if ended:  # tell Popen its child is gone
                proc.returncode = os.waitstatus_to_exitcode(ended[0][1])
        if killed:
            raise BenchError(f"{what} took more than {timeout:g} s")
        sampler.join()
        end, _, peak_mib = ended[0]
        if sampled:
            peak_mib = max(sampled)
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        stderr = err.read().decode(errors="replace")
    if proc.returncode != 0:
        tail = "\n".join((stderr + stdout).strip().splitlines()[-15:])
        raise BenchError(f"{what} exited with {proc.returncode}:\n{tail}")
    return Ran(stdout, end - start, peak_mib)


def json_line(out: str, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(out.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError) as exc:
        raise BenchError(f"{what} --json printed no JSON object: {out[-300:]!r}") from exc
    if not isinstance(doc, dict):
        raise BenchError(f"{what} --json printed {type(doc).__name__}, not an object")
    return doc


# -- HTTP, by hand, to see the first byte --------------------------------------------------


@dataclass(frozen=True)
class HttpTiming:
    status: int
    body: bytes
    """Empty when a ``sink`` took the body."""
    header_s: float
    """Connect to the first response byte (curl's ``time_starttransfer``)."""
    first_body_s: float
    """Connect to the first body byte."""
    total_s: float


def http_get(
    url: str,
    *,
    byte_range: tuple[int, int] | None = None,
    sink: Callable[[bytes], None] | None = None,
    timeout: float = HTTP_TIMEOUT_S,
) -> HttpTiming:
    """One GET on a new connection, timed to the first byte of the response and of
    its body. ``byte_range`` is ``(start, end)``, end exclusive. The body goes to
    ``sink`` if given (a 256 MiB work need not sit in memory), else is returned."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise BenchError(f"the gateway URL {url!r} is not a plain http:// URL")
    port = parts.port or 80
    target = parts.path or "/"
    lines = [f"GET {target} HTTP/1.1", f"Host: {parts.hostname}:{port}", "Connection: close"]
    if byte_range is not None:
        lines.append(f"Range: bytes={byte_range[0]}-{byte_range[1] - 1}")
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()
    chunks: list[bytes] = []
    take = sink or chunks.append
    start = time.perf_counter()
    with socket.create_connection((parts.hostname, port), timeout=timeout) as sock:
        sock.sendall(request)
        head = b""
        header_s = 0.0
        while b"\r\n\r\n" not in head:
            data = sock.recv(65536)
            if not data:
                raise BenchError(f"GET {url}: the connection closed before the headers ended")
            if not head:
                header_s = time.perf_counter() - start
            head += data
        raw_head, _, rest = head.partition(b"\r\n\r\n")
        status, length = _parse_head(url, raw_head)
        first_body_s = time.perf_counter() - start if rest else None
        got = len(rest)
        if rest:
            take(rest)
        while got < length:
            data = sock.recv(1 << 20)
            if not data:
                raise BenchError(f"GET {url}: the body ended after {got} of {length} bytes")
            if first_body_s is None:
                first_body_s = time.perf_counter() - start
            got += len(data)
            take(data)
        total_s = time.perf_counter() - start
    if got > length:
        raise BenchError(f"GET {url}: {got} body bytes for a Content-Length of {length}")
    if first_body_s is None:  # an empty body: its "first byte" is the end of the headers
        first_body_s = header_s
    return HttpTiming(status, b"".join(chunks), header_s, first_body_s, total_s)


def _parse_head(url: str, raw: bytes) -> tuple[int, int]:
    """Status and Content-Length of a response head (the gateway always sends one)."""
    lines = raw.decode("latin-1").split("\r\n")
    try:
        status = int(lines[0].split()[1])
    except (IndexError, ValueError) as exc:
        raise BenchError(f"GET {url}: not an HTTP status line: {lines[0]!r}") from exc
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            return status, int(value.strip())
    raise BenchError(f"GET {url}: HTTP {status} without a Content-Length")


# -- processes and files ------------------------------------------------------------------


def vm_hwm_mib(pid: int) -> float:
    """The peak resident set (``VmHWM``) of a running process, in MiB."""
    try:
        hwm = _hwm_or_none(pid, strict=True)
    except OSError as exc:
        raise BenchError(f"cannot read the memory of process {pid}: {exc}") from exc
    if hwm is None:
        raise BenchError(f"process {pid} reports no VmHWM")
    return hwm


def _hwm_or_none(pid: int, *, strict: bool = False) -> float | None:
    """``VmHWM`` in MiB; None if the process has none (it exited and awaits its
    reaping) or, unless ``strict``, is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        if strict:
            raise
    return None


def write_random_file(path: Path, size: int) -> str:
    """``size`` fresh random bytes at ``path``; their SHA-256 (hex)."""
    digest = hashlib.sha256()
    with path.open("wb") as f:
        left = size
        while left:
            block = os.urandom(min(left, 4 * MIB))
            digest.update(block)
            f.write(block)
            left -= len(block)
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(4 * MIB):
            digest.update(block)
    return digest.hexdigest()
