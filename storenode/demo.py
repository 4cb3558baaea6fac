"""``storenode demo`` (``make demo``): the whole product on a local network, in about a minute.

Every step is a real command against real processes on 127.0.0.1, narrated
in one line with its figures:

1. ``localnet up``: a validator (blocks every second, the gateway) and 10
   hosts, each its own process (:mod:`storenode.localnet.processes`);
2. a catalogue of three synthesized tracks
   (:func:`storenode.testing.catalogue.write_catalogue`);
3. ``storenode publish`` (a subprocess, the localnet's publisher home): each
   track cut into stripes, 3-of-10 coded, one shard of each stripe per host,
   storage contracts opened on the ledger;
4. one track streamed back through the gateway (``GET /content/<cid>``) and
   compared byte for byte; a ranged read (``Range``, 206) at a random offset
   compared with the same bytes of the file;
5. three hosts killed with SIGKILL, then ``storenode fetch`` of the track from
   the seven left, compared byte for byte;
6. a few challenge windows waited through (the validator's height);
7. a table per host from the ledger: chunks, windows proven and missed,
   earned, burned, reputation. The check: every host still running proved
   windows and missed none since the kill; every killed host missed windows.

``localnet down`` runs at the end whatever happened (an error, a failed
check, Ctrl-C). The exit status is 0 only if every check passed.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from rich.console import Console
from rich.table import Table

from contracts.encoding import DECIMALS
from storenode.client.ledger import ClientError
from storenode.home import open_home
from storenode.ledger import load_genesis
from storenode.ledger.messages import AccountInfo, ContractSummary
from storenode.localnet import GENESIS_NAME, LocalnetError
from storenode.localnet.processes import (
    UP_BLOCK_TIME,
    UP_WINDOW_BLOCKS,
    LocalnetRecord,
    down,
    fetch_status,
    up,
)
from storenode.testing.catalogue import write_catalogue

HOSTS: Final = 10
KILLED: Final = 3
TRACKS: Final = 3
TRACK_SECONDS: Final = 20.0
"""The tracks last 16 to 24 s: 2.8 to 4.2 MB of CD-quality WAV each."""
WINDOWS: Final = 3
"""Challenge windows to wait through after the kill."""
RANGE_BYTES: Final = 64 << 10
CLI: Final = (sys.executable, "-m", "storenode.cli")
CLI_TIMEOUT: Final = 120.0
HTTP_TIMEOUT: Final = 30.0
READ_SIZE: Final = 1 << 16
MB: Final = 1e6

_OPENER: Final = urllib.request.build_opener(urllib.request.ProxyHandler({}))
"""Talks to the gateway on 127.0.0.1 directly, whatever proxy the environment names."""


class DemoError(Exception):
    """A step of the demo failed or a check did not hold; the message says which."""


# -- figures and checks (pure) ----------------------------------------------------------


def rate(size: int, seconds: float) -> str:
    return f"{size / MB / max(seconds, 1e-9):.1f} MB/s"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


@dataclass(frozen=True, slots=True)
class HostFigures:
    """One host's standing on the ledger."""

    name: str
    killed: bool
    chunks: int
    """Chunks its storage contracts cover."""
    proven: int
    missed: int
    earned: int
    """Base units paid to it for proven windows (after the burn)."""
    burned: int
    reputation: int


def host_figures(
    name: str, *, killed: bool, account: AccountInfo, contracts: Sequence[ContractSummary]
) -> HostFigures:
    """A host's figures from its account and its contracts as host.

    Each proven window pays the contract's installment minus the burn, and the
    burn is what the account counts as burned (a host burns nothing else here),
    so what it earned is the installments of its proven windows minus its burns.
    """
    burned = int(account.burned)
    gross = sum(int(c.price_per_window) * c.windows_proven for c in contracts)
    return HostFigures(
        name=name,
        killed=killed,
        chunks=sum(c.chunk_count for c in contracts if c.status != "closed"),
        proven=account.windows_proven,
        missed=account.windows_missed,
        earned=gross - burned,
        burned=burned,
        reputation=int(account.reputation),
    )


def window_problems(
    before: Mapping[str, tuple[int, int]],
    after: Mapping[str, tuple[int, int]],
    killed: set[str],
) -> list[str]:
    """What is wrong with the windows settled between two snapshots of
    ``name -> (proven, missed)``: a running host must have proved windows and
    missed none; a killed host must have missed windows."""
    problems = []
    for name, (proven, missed) in sorted(after.items()):
        was_proven, was_missed = before.get(name, (0, 0))
        if name in killed:
            if missed <= was_missed:
                problems.append(f"{name} was killed but missed no window")
        elif proven <= was_proven:
            problems.append(f"{name} runs but proved no window")
        elif missed > was_missed:
            problems.append(f"{name} runs but missed {missed - was_missed} windows")
    return problems


def short_tokens(units: int) -> str:
    """Base units as tokens rounded to four decimals (half up), for a table;
    in integers, so no amount is too large or loses a digit to a float."""
    step = 10 ** (DECIMALS - 4)
    whole, fraction = divmod((units + step // 2) // step, 10**4)
    return f"{whole}.{fraction:04d}"


def host_table(hosts: Sequence[HostFigures]) -> Table:
    table = Table("host", "state", "chunks", "proven", "missed", "earned", "burned", "reputation")
    for h in hosts:
        table.add_row(
            h.name,
            "[red]killed[/red]" if h.killed else "[green]running[/green]",
            str(h.chunks),
            str(h.proven),
            f"[red]{h.missed}[/red]" if h.missed else "0",
            short_tokens(h.earned),
            short_tokens(h.burned),
            short_tokens(h.reputation),
        )
    return table


# -- talking to the network ---------------------------------------------------------------


def storenode(home: Path, *args: str, timeout: float = CLI_TIMEOUT) -> dict[str, Any]:
    """``storenode --home HOME ARGS --json``: its JSON object, or :class:`DemoError`
    with what it wrote on stderr."""
    argv = [*CLI, "--home", str(home), *args, "--json"]
    try:
        done = subprocess.run(
            argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        raise DemoError(f"`storenode {' '.join(args)}` did not finish in {timeout:g} s") from None
    if done.returncode != 0:
        raise DemoError(
            f"`storenode {' '.join(args)}` exited {done.returncode}: {done.stderr.strip()}"
        )
    try:
        doc = json.loads(done.stdout)
    except ValueError:
        raise DemoError(f"`storenode {' '.join(args)}` printed no JSON: {done.stdout!r}") from None
    if not isinstance(doc, dict):
        raise DemoError(f"`storenode {' '.join(args)}` printed {doc!r}")
    return doc


@dataclass(frozen=True, slots=True)
class HttpRead:
    status: int
    body: bytes
    first_byte: float
    """Seconds from sending the request to the first byte of the body."""
    seconds: float


def http_get(url: str, *, headers: Mapping[str, str] | None = None) -> HttpRead:
    request = urllib.request.Request(url, headers=dict(headers or {}))
    start = time.perf_counter()
    try:
        with _OPENER.open(request, timeout=HTTP_TIMEOUT) as reply:
            first = reply.read1(READ_SIZE)
            first_byte = time.perf_counter() - start
            body = first + reply.read()
            return HttpRead(reply.status, body, first_byte, time.perf_counter() - start)
    except OSError as exc:  # HTTPError (an error status) and URLError are OSErrors
        raise DemoError(f"GET {url} failed: {exc}") from None


def ledger_figures(
    record: LocalnetRecord, names: Sequence[str], killed: set[str]
) -> list[HostFigures]:
    """Each host's figures, read from the validator through the publisher's home."""
    import trio

    from storenode.client.ledger import open_home_client

    publisher = open_home(record.publisher_home)

    async def read() -> list[HostFigures]:
        out = []
        async with open_home_client(publisher) as client:
            for name in names:
                address = open_home(record.node(name).home).identity().address
                account = await client.call_account(address)
                contracts = await client.all_contracts(address, "host")
                out.append(
                    host_figures(name, killed=name in killed, account=account, contracts=contracts)
                )
        return out

    return trio.run(read)


def height(record: LocalnetRecord) -> int:
    validator = next(n for n in record.nodes if n.role == "validator")
    doc = fetch_status(validator.http) if validator.http else None
    if doc is None or not isinstance(doc.get("height"), int):
        raise DemoError(f"the validator does not answer /api/status: see {validator.log_path}")
    return int(doc["height"])


def wait_for_height(record: LocalnetRecord, target: int, *, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while (now := height(record)) < target:
        if time.monotonic() > deadline:
            raise DemoError(f"the chain is at height {now}, not {target}, after {timeout:g} s")
        time.sleep(0.25)
    return now


# -- the demo ------------------------------------------------------------------------------


class Demo:
    """The steps, in order, sharing the localnet and what each step learnt."""

    def __init__(self, folder: Path, console: Console, *, hosts: int, seed: int) -> None:
        self.folder = folder
        self.console = console
        self.hosts = hosts
        self.rng = random.Random(seed)
        self.step_no = 0
        self.record: LocalnetRecord | None = None

    def say(self, text: str) -> None:
        self.step_no += 1
        self.console.print(f"[bold]{self.step_no}.[/bold] {text}")

    @property
    def net(self) -> LocalnetRecord:
        assert self.record is not None, "the localnet is up from the first step on"
        return self.record

    def run(self) -> None:
        self.start_network()
        tracks = self.write_tracks()
        works = self.publish(tracks)
        track, cid = tracks[0], works[tracks[0].name]
        self.stream(track, cid)
        killed = self.kill_hosts()
        before = {h.name: (h.proven, h.missed) for h in self.figures(set())}
        self.fetch(track, cid, killed)
        figures = self.wait_windows(killed)
        self.console.print(host_table(figures), soft_wrap=False)
        after = {h.name: (h.proven, h.missed) for h in figures}
        problems = window_problems(before, after, killed)
        if problems:
            raise DemoError("; ".join(problems))

    def start_network(self) -> None:
        start = time.perf_counter()
        self.record = up(self.folder / "localnet", hosts=self.hosts)
        self.say(
            f"localnet up in {time.perf_counter() - start:.1f} s: a validator and "
            f"{len(self.net.hosts)} hosts, each its own process on 127.0.0.1 (a block every "
            f"{UP_BLOCK_TIME} s, challenge windows of {UP_WINDOW_BLOCKS} blocks); "
            f"gateway {self.net.gateway}"
        )

    def write_tracks(self) -> list[Path]:
        start = time.perf_counter()
        paths = write_catalogue(
            self.folder / "catalogue", seconds=TRACK_SECONDS, tracks=TRACKS, random_mib=0
        )
        size = sum(p.stat().st_size for p in paths)
        self.say(
            f"catalogue: {len(paths)} synthesized tracks, 44.1 kHz stereo WAV, "
            f"{size / MB:.1f} MB, in {time.perf_counter() - start:.1f} s"
        )
        return paths

    def publish(self, tracks: list[Path]) -> dict[str, str]:
        start = time.perf_counter()
        doc = storenode(self.net.publisher_home, "publish", str(tracks[0].parent))
        seconds = time.perf_counter() - start
        works = {Path(w["path"]).name: str(w["cid"]) for w in doc["works"]}
        missing = sorted({t.name for t in tracks} - set(works))
        if missing:
            raise DemoError(f"publish did not publish {', '.join(missing)}")
        size = sum(int(w["bytes"]) for w in doc["works"])
        hosts = {h for w in doc["works"] for h in w["hosts"]}
        contracts = sum(len(w.get("contracts", ())) for w in doc["works"])
        upload = sum(float(w.get("upload_s", 0.0)) for w in doc["works"])
        config = open_home(self.net.publisher_home).config
        self.say(
            f"published {len(works)} works ({size / MB:.1f} MB) in {seconds:.1f} s "
            f"({rate(size, seconds)} with the process start and the ledger; the uploads "
            f"took {upload:.2f} s): {config.publish_k}-of-{config.publish_n} coded stripes "
            f"on {len(hosts)} hosts, {contracts} storage contracts open"
        )
        return works

    def stream(self, track: Path, cid: str) -> None:
        data = track.read_bytes()
        url = f"{self.net.gateway}/content/{cid}"
        full = http_get(url)
        if full.status != 200 or full.body != data:
            raise DemoError(
                f"the gateway answered {full.status} with {len(full.body)} bytes that "
                f"{'differ from' if len(full.body) == len(data) else 'are not'} {track.name}"
            )
        offset = self.rng.randrange(0, len(data) - RANGE_BYTES)
        end = offset + RANGE_BYTES - 1
        part = http_get(url, headers={"Range": f"bytes={offset}-{end}"})
        if part.status != 206 or part.body != data[offset : end + 1]:
            raise DemoError(
                f"a ranged read of bytes {offset}-{end} answered {part.status} "
                "with bytes that are not the file's"
            )
        self.say(
            f"streamed {track.name} through the gateway: {len(data) / MB:.1f} MB in "
            f"{ms(full.seconds)} ({rate(len(data), full.seconds)}), first byte after "
            f"{ms(full.first_byte)}, every byte matches; a 64 KiB range at offset "
            f"{offset:,}: 206 in {ms(part.seconds)}, bytes match"
        )

    def kill_hosts(self) -> set[str]:
        victims = self.rng.sample(list(self.net.hosts), KILLED)
        for node in victims:
            os.kill(node.pid, signal.SIGKILL)
        return {n.name for n in victims}

    def fetch(self, track: Path, cid: str, killed: set[str]) -> None:
        out = self.folder / f"fetched-{track.name}"
        start = time.perf_counter()
        doc = storenode(self.net.publisher_home, "fetch", cid, "-o", str(out))
        seconds = time.perf_counter() - start
        reading = float(doc.get("seconds", seconds))
        data = track.read_bytes()
        if out.read_bytes() != data:
            raise DemoError(f"storenode fetch wrote bytes that are not {track.name}'s")
        names = [n.name for n in self.net.hosts if n.name in killed]
        self.say(
            f"killed {len(killed)} hosts ({', '.join(names)}) with SIGKILL and fetched "
            f"{track.name} again from the {self.hosts - len(killed)} left: "
            f"{len(data) / MB:.1f} MB in {ms(reading)} ({rate(len(data), reading)}; "
            f"{seconds:.2f} s with the process start), every byte matches"
        )

    def wait_windows(self, killed: set[str]) -> list[HostFigures]:
        window = load_genesis(self.net.directory / GENESIS_NAME).window_blocks
        start, began = height(self.net), time.perf_counter()
        target = start + (WINDOWS + 1) * window
        reached = wait_for_height(self.net, target, timeout=(WINDOWS + 2) * window * 2.0)
        figures = self.figures(killed)
        self.say(
            f"waited through {WINDOWS} challenge windows (height {start} -> {reached}, "
            f"{time.perf_counter() - began:.0f} s): the running hosts proved theirs, "
            "the killed ones missed theirs"
        )
        return figures

    def figures(self, killed: set[str]) -> list[HostFigures]:
        return ledger_figures(self.net, [n.name for n in self.net.hosts], killed)


def run_demo(
    workdir: str | Path | None = None,
    *,
    keep: bool = False,
    hosts: int = HOSTS,
    seed: int | None = None,
    console: Console | None = None,
) -> int:
    """Run the demo in ``workdir`` (new or empty; default a temporary folder,
    removed afterwards unless ``keep``). 0 if every check passed, else 1."""
    if console is None:
        console = Console(highlight=False)
        if not console.is_terminal:
            console.width = 120  # piped or logged: keep each step on one line or two
    if hosts < KILLED + 3:
        console.print(f"the demo kills {KILLED} hosts and needs 3 left: give at least 6 hosts")
        return 2
    folder = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="storenode-demo-"))
    demo = Demo(
        folder, console, hosts=hosts, seed=random.randrange(1 << 32) if seed is None else seed
    )
    console.print(f"[bold]storenode demo[/bold] in {folder}")
    start = time.perf_counter()
    try:
        demo.run()
    except (DemoError, LocalnetError, ClientError) as exc:
        console.print(f"[bold red]FAILED[/bold red]: {exc}")
        return 1
    finally:
        _stop(demo, console)
        if workdir is None and not keep:
            shutil.rmtree(folder, ignore_errors=True)
    console.print(
        f"[bold green]every check passed[/bold green] in {time.perf_counter() - start:.0f} s"
    )
    return 0


def _stop(demo: Demo, console: Console) -> None:
    if not (demo.folder / "localnet" / "localnet.json").exists():
        return  # no node was started
    report = down(demo.folder / "localnet")
    stopped = len(report.stopped) + len(report.killed)
    console.print(f"localnet down: stopped {stopped} nodes")
