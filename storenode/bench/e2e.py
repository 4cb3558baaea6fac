"""``storenode bench e2e``: publish, fetch and a ranged read on a 10-host localnet, side
by side with Tahoe-LAFS on the same machine in the same run.

What runs
=========

**storenode**: ``storenode localnet up --hosts 10 --window-blocks 30`` in a
temporary folder (a validator, which also serves the gateway, and 10 hosts,
each its own process on 127.0.0.1), then for each size and each rep a fresh file of random bytes
(publishing the same bytes twice would change nothing):

* ``publish_MBps``: file size over the wall time of ``storenode --home
  DIR/publisher publish FILE --k 3 --n 10 --json``, the whole command as a
  user waits for it: its start-up, registering the work, the hosts' offers
  and acceptances, the contracts on the ledger (it waits for them to be in a
  block), the upload and the manifest in the DHT. ``publish_upload_MBps``
  is the file size over the upload's own seconds, as the command reports
  them (``upload_s``: coding and sending the shards to the hosts, until
  every host acknowledged its last chunk).
* ``fetch_MBps``: the wall time of ``storenode --home DIR/validator-1 fetch
  CID -o OUT --json``, the whole command from the home of a running node (the
  one that serves the gateway), which it reads through, as ``tahoe get``
  reads through its running client node: start-up included, output synced
  (the node read the work's manifest for the cold ranged read just before,
  as Tahoe's client knows the file it has just put).
  ``fetch_standalone_MBps``: the same command from ``DIR/publisher``, whose
  home runs no node, so the command is the whole client (it starts the
  fetcher's stack, joins the DHT, reads from the hosts itself);
  ``fetch_read_MBps``: the file size over the seconds that command reports
  (from the work opened, manifest and providers found, to the file written
  and synced). ``fetch_gateway_MBps``: a plain HTTP GET of ``/content/<cid>``
  on the gateway, first request byte to last body byte. Every output is
  checked against the input's SHA-256.

Figures are the median over the reps. Then on the last rep's work, ranged
GETs of 64 KiB at random offsets on the gateway, each on a new connection,
each checked for 206 and for the right bytes:

* ``ttfb_cold_ms``: the first ranged read, straight after the publish: the
  gateway has never seen the CID, so it looks up the manifest and the
  providers in the DHT first;
* ``ttfb_ms``: the median of 5 more, after the fetches above (so the
  gateway has the manifest cached, as Tahoe's client has its cap's
  metadata after its get).

Memory, as ``bench.sh`` reports Tahoe's (the peak resident set, VmHWM):

* ``publish_peak_MiB``, ``fetch_peak_MiB`` and ``fetch_standalone_peak_MiB``:
  the largest peak of the ``publish`` and the two ``fetch`` commands over the
  reps (each command's own ``VmHWM``, sampled every 5 ms while it runs: see
  :attr:`storenode.bench.measure.Ran.peak_mib`; the node a fetch reads
  through counts in ``gateway_hwm_MiB``);
* ``gateway_hwm_MiB``: the validator that serves the gateway, and
  ``host_hwm_MiB``: the largest of the ten hosts, each since the localnet
  started, read after the size's reps (Tahoe's client and storage nodes are
  read the same way: ``tahoe_client_hwm_MiB``, ``tahoe_storage_hwm_MiB``).

Our time to first byte is taken to the first **body** byte, which is stricter
than curl's ``time_starttransfer`` that ``bench.sh`` reports for Tahoe (any
first response byte: a server that sends its headers before it has the data
looks faster there). ``ttfb_header_ms`` is ours by curl's definition.

**Tahoe-LAFS**: :mod:`storenode.bench.tahoe` runs the peer's own scripts with
the same sizes and reps (``tahoe put`` / ``tahoe get`` through its CLI, its
ranged reads with curl), before the localnet is started, so the two never
share the machine.

Targets (issue 5): publish and fetch at least 5x Tahoe-LAFS's put and get,
time to first byte at most 20 ms and below Tahoe-LAFS's. Everything is torn
down on every way out (``localnet down``, ``grid.sh down``).
"""

from __future__ import annotations

import compileall
import hashlib
import json
import os
import random
import statistics
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

import contracts
import storenode
from storenode.bench import tahoe
from storenode.bench.e2e_net import CLI, HOSTS, Localnet, Say, localnet
from storenode.bench.measure import (
    MIB,
    BenchError,
    HttpTiming,
    Ran,
    http_get,
    json_line,
    run_command,
    sha256_of,
    write_random_file,
)

K: Final = 3
N: Final = 10
TTFB_REPS: Final = tahoe.TTFB_REPS
RANGE_BYTES: Final = tahoe.RANGE_KIB * 1024
TARGET_SPEEDUP: Final = 5.0
TARGET_TTFB_MS: Final = 20.0


# -- the figures -------------------------------------------------------------------------


@dataclass(frozen=True)
class OurFigures:
    """storenode's figures for one size (medians over the reps)."""

    size_mib: int
    publish_MBps: float
    publish_upload_MBps: float
    fetch_MBps: float
    fetch_standalone_MBps: float
    fetch_read_MBps: float
    fetch_gateway_MBps: float
    ttfb_ms: float
    ttfb_cold_ms: float
    ttfb_header_ms: float
    publish_peak_MiB: float
    fetch_peak_MiB: float
    fetch_standalone_peak_MiB: float
    gateway_hwm_MiB: float
    host_hwm_MiB: float


def mbps(size_bytes: int, seconds: float) -> float:
    """MB/s as Tahoe's bench.sh counts them: 10^6 bytes per second."""
    return size_bytes / seconds / 1e6


def summarize(
    ours: dict[int, OurFigures],
    peer: dict[int, tahoe.TahoeFigures] | None,
    *,
    reps: int,
    tahoe_note: str,
) -> dict[str, Any]:
    """The JSON document: per size, our figures, Tahoe's, the ratios and the targets.

    A target that needs Tahoe's figure is only judged when Tahoe ran; the time to
    first byte is then judged against both 20 ms and Tahoe's.
    """
    sizes: dict[str, Any] = {}
    for size, figures in ours.items():
        row: dict[str, Any] = {k: v for k, v in asdict(figures).items() if k != "size_mib"}
        met: dict[str, bool] = {"ttfb_ms": figures.ttfb_ms <= TARGET_TTFB_MS}
        other = peer.get(size) if peer else None
        if other is not None:
            row |= {
                "tahoe_put_MBps": other.put_MBps,
                "tahoe_get_MBps": other.get_MBps,
                "tahoe_ttfb_ms": other.ttfb_ms,
                "tahoe_ttfb_first_ms": other.ttfb_first_ms,
                "tahoe_client_hwm_MiB": other.client_hwm_mib,
                "tahoe_storage_hwm_MiB": other.storage_hwm_mib,
                "publish_vs_tahoe": figures.publish_MBps / other.put_MBps,
                "fetch_vs_tahoe": figures.fetch_MBps / other.get_MBps,
                "ttfb_vs_tahoe": figures.ttfb_ms / other.ttfb_ms,
            }
            met["publish_MBps"] = row["publish_vs_tahoe"] >= TARGET_SPEEDUP
            met["fetch_MBps"] = row["fetch_vs_tahoe"] >= TARGET_SPEEDUP
            met["ttfb_ms"] = met["ttfb_ms"] and figures.ttfb_ms < other.ttfb_ms
        row["targets_met"] = met
        sizes[str(size)] = row
    return {
        "hosts": HOSTS,
        "k": K,
        "n": N,
        "reps": reps,
        "ttfb_reads": TTFB_REPS,
        "range_KiB": RANGE_BYTES // 1024,
        "tahoe": tahoe_note,
        "sizes": sizes,
        "all_targets_met": all(all(row["targets_met"].values()) for row in sizes.values()),
    }


def command_timeout(size: int) -> float:
    """A publish or fetch slower than 0.5 MB/s (after a minute's grace) has failed."""
    return 60.0 + size / 0.5e6


@dataclass(frozen=True)
class Rep:
    cid: str
    path: Path
    publish_s: float
    upload_s: float
    fetch_s: float
    standalone_s: float
    read_s: float
    gateway_s: float
    ttfb_cold: HttpTiming
    publish_peak_mib: float
    fetch_peak_mib: float
    standalone_peak_mib: float


def publish(net: Localnet, path: Path, size: int) -> tuple[str, Ran, float]:
    """Publish one file; its CID (hex, no 0x), the command's run and the upload's
    own seconds (as the command reports them)."""
    args = [*CLI, "--home", str(net.publisher_home), "publish", str(path)]
    args += ["--k", str(K), "--n", str(N), "--json"]
    ran = run_command(args, "storenode publish", command_timeout(size))
    doc = json_line(ran.stdout, "storenode publish")
    try:
        (work,) = doc["works"]
        cid = str(work["cid"]).removeprefix("0x")
    except (KeyError, TypeError, ValueError) as exc:
        raise BenchError(f"storenode publish --json did not name one work's cid: {doc}") from exc
    if "upload_s" not in work:
        raise BenchError(f"storenode publish uploaded nothing for fresh bytes: {work}")
    return cid, ran, float(work["upload_s"])


def ranged_read(net: Localnet, cid: str, source: Path, size: int, rng: random.Random) -> HttpTiming:
    """A 64 KiB ranged GET at a random offset, checked for 206 and against the file."""
    start = rng.randrange(0, max(1, size - RANGE_BYTES))
    end = min(size, start + RANGE_BYTES)
    url = f"{net.gateway}/content/{cid}"
    got = http_get(url, byte_range=(start, end))
    if got.status != 206:
        raise BenchError(f"ranged GET {url} answered HTTP {got.status} (expected 206)")
    with source.open("rb") as f:
        f.seek(start)
        want = f.read(end - start)
    if got.body != want:
        raise BenchError(f"ranged GET {url} at {start} returned wrong bytes")
    return got


def fetch(
    net: Localnet, home: Path, cid: str, out: Path, want: str, size: int
) -> tuple[Ran, float]:
    """``storenode --home HOME fetch CID -o OUT --json``, its output checked and removed:
    the command's run and the seconds it reports for its read."""
    out.unlink(missing_ok=True)
    args = [*CLI, "--home", str(home), "fetch", cid, "-o", str(out), "--json"]
    ran = run_command(args, "storenode fetch", command_timeout(size))
    read_s = float(json_line(ran.stdout, "storenode fetch")["seconds"])
    if sha256_of(out) != want:
        raise BenchError(f"storenode fetch {cid} wrote bytes that differ from the published file")
    out.unlink()
    return ran, read_s


def one_rep(net: Localnet, work: Path, size: int, rng: random.Random) -> Rep:
    source = work / "in.bin"
    want = write_random_file(source, size)
    cid, published, upload_s = publish(net, source, size)
    cold = ranged_read(net, cid, source, size, rng)

    fetched, _ = fetch(net, net.node_home("validator-1"), cid, work / "out.bin", want, size)
    standalone, read_s = fetch(net, net.publisher_home, cid, work / "out.bin", want, size)

    digest = hashlib.sha256()
    whole = http_get(f"{net.gateway}/content/{cid}", sink=digest.update)
    if whole.status != 200 or digest.hexdigest() != want:
        raise BenchError(f"GET /content/{cid} answered {whole.status} or the wrong bytes")
    return Rep(
        cid,
        source,
        published.seconds,
        upload_s,
        fetched.seconds,
        standalone.seconds,
        read_s,
        whole.total_s,
        cold,
        published.peak_mib,
        fetched.peak_mib,
        standalone.peak_mib,
    )


def run_ours(net: Localnet, size_mib: int, reps: int, work: Path, say: Say) -> OurFigures:
    size = size_mib * MIB
    rng = random.Random(size_mib)
    done: list[Rep] = []
    for i in range(reps):
        rep = one_rep(net, work, size, rng)
        say(
            f"storenode {size_mib} MiB rep {i + 1}: publish {rep.publish_s:.2f} s "
            f"({mbps(size, rep.publish_s):.1f} MB/s; upload {rep.upload_s:.2f} s), "
            f"fetch {rep.fetch_s:.2f} s ({mbps(size, rep.fetch_s):.1f} MB/s; standalone "
            f"{rep.standalone_s:.2f} s, its read {rep.read_s:.2f} s), "
            f"gateway GET {rep.gateway_s:.2f} s"
        )
        done.append(rep)
    last = done[-1]
    warm = [ranged_read(net, last.cid, last.path, size, rng) for _ in range(TTFB_REPS)]
    last.path.unlink()
    return OurFigures(
        size_mib=size_mib,
        publish_MBps=statistics.median(mbps(size, r.publish_s) for r in done),
        publish_upload_MBps=statistics.median(mbps(size, r.upload_s) for r in done),
        fetch_MBps=statistics.median(mbps(size, r.fetch_s) for r in done),
        fetch_standalone_MBps=statistics.median(mbps(size, r.standalone_s) for r in done),
        fetch_read_MBps=statistics.median(mbps(size, r.read_s) for r in done),
        fetch_gateway_MBps=statistics.median(mbps(size, r.gateway_s) for r in done),
        ttfb_ms=statistics.median(t.first_body_s for t in warm) * 1000,
        ttfb_cold_ms=last.ttfb_cold.first_body_s * 1000,
        ttfb_header_ms=statistics.median(t.header_s for t in warm) * 1000,
        publish_peak_MiB=max(r.publish_peak_mib for r in done),
        fetch_peak_MiB=max(r.fetch_peak_mib for r in done),
        fetch_standalone_peak_MiB=max(r.standalone_peak_mib for r in done),
        gateway_hwm_MiB=net.hwm_mib("validator-1"),
        host_hwm_MiB=max(net.hwm_mib(name) for name in net.pids if name.startswith("node-")),
    )


# -- the whole run --------------------------------------------------------------------------


def run(
    sizes: Sequence[int],
    reps: int,
    tahoe_dir: Path | None,
    say: Say | None = None,
    *,
    no_tahoe_reason: str = "no Tahoe-LAFS peer folder (../shared/peers/tahoe or --tahoe DIR)",
) -> dict[str, Any]:
    """Tahoe first (if given), then storenode on a fresh localnet; the summary."""
    say = say or _stderr
    load_start = os.getloadavg()[0]
    peer: dict[int, tahoe.TahoeFigures] | None = None
    if tahoe_dir is None:
        note = f"skipped: {no_tahoe_reason}"
        say(f"Tahoe-LAFS {note}")
    else:
        try:
            peer = tahoe.run(tahoe_dir, sizes, reps, say)
            note = f"ran from {tahoe_dir}"
        except tahoe.TahoeError as exc:
            note = f"failed: {exc}"
            say(f"Tahoe-LAFS {note}; measuring storenode alone")
    ours: dict[int, OurFigures] = {}
    compile_sources()
    with tempfile.TemporaryDirectory(prefix="storenode-bench-e2e-") as tmp:
        work = Path(tmp) / "work"
        work.mkdir()
        with localnet(Path(tmp) / "localnet", say) as net:
            for size in sizes:
                ours[size] = run_ours(net, size, reps, work, say)
    result = summarize(ours, peer, reps=reps, tahoe_note=note)
    # Both sides share two cores with whatever else runs: a busy machine shows here.
    result["machine"] = {
        "cpus": os.cpu_count(),
        "load_1m_start": load_start,
        "load_1m_end": os.getloadavg()[0],
    }
    return result


def compile_sources() -> None:
    """Compile storenode's modules to bytecode before timing its commands, as an
    installed package is (Tahoe-LAFS's is, by pip). An editable install run
    with PYTHONDONTWRITEBYTECODE set would otherwise compile every module again
    in every command: ~0.13 s each on the reference machine."""
    for package in (storenode, contracts):
        for directory in package.__path__:
            compileall.compile_dir(directory, quiet=1)


def _stderr(message: str) -> None:
    print(f"bench e2e: {message}", file=sys.stderr, flush=True)


def _verdict(met: dict[str, bool], key: str) -> str:
    if key not in met:
        return ""
    return "[green]met[/]" if met[key] else "[red]MISSED[/]"


def print_table(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(
        title=(
            f"storenode bench e2e — {result['hosts']} hosts on 127.0.0.1, k={result['k']} "
            f"n={result['n']}, median of {result['reps']} rep(s); Tahoe-LAFS {result['tahoe']}"
        ),
        caption=(
            f"{result['machine']['cpus']} CPUs, load {result['machine']['load_1m_start']:.1f} "
            f"at the start, {result['machine']['load_1m_end']:.1f} at the end; first byte: "
            "median of warm reads (cold: the gateway's first read of the work)"
        ),
    )
    t.add_column("size", justify="right", no_wrap=True)
    t.add_column("what", no_wrap=True)
    t.add_column("storenode", justify="right", min_width=9)
    t.add_column("Tahoe", justify="right")
    t.add_column("ratio", justify="right")
    t.add_column("target", no_wrap=True)
    t.add_column("")
    for size, row in result["sizes"].items():
        met = row["targets_met"]
        peer = "tahoe_put_MBps" in row

        def vs(key: str, ratio: str, row: dict[str, Any] = row) -> tuple[str, str]:
            if "tahoe_put_MBps" not in row:
                return "—", ""
            return f"{row[key]:.1f}", f"{row[ratio]:.2f}×"

        t.add_row(
            f"{size} MiB",
            "publish MB/s",
            f"{row['publish_MBps']:.1f}",
            *vs("tahoe_put_MBps", "publish_vs_tahoe"),
            f"≥ {TARGET_SPEEDUP:g}×",
            _verdict(met, "publish_MBps"),
        )
        t.add_row("", "  its upload", f"{row['publish_upload_MBps']:.1f}")
        t.add_row(
            "",
            "fetch MB/s",
            f"{row['fetch_MBps']:.1f}",
            *vs("tahoe_get_MBps", "fetch_vs_tahoe"),
            f"≥ {TARGET_SPEEDUP:g}×",
            _verdict(met, "fetch_MBps"),
        )
        t.add_row("", "  standalone", f"{row['fetch_standalone_MBps']:.1f}")
        t.add_row("", "  its read", f"{row['fetch_read_MBps']:.1f}")
        t.add_row("", "  gateway GET", f"{row['fetch_gateway_MBps']:.1f}")
        t.add_row(
            "",
            "first byte ms",
            f"{row['ttfb_ms']:.1f}",
            *vs("tahoe_ttfb_ms", "ttfb_vs_tahoe"),
            f"≤ {TARGET_TTFB_MS:g}" + (", < Tahoe" if peer else ""),
            _verdict(met, "ttfb_ms"),
        )
        t.add_row("", "  cold", f"{row['ttfb_cold_ms']:.1f}")
        t.add_row("", "publish peak MiB", f"{row['publish_peak_MiB']:.0f}")
        t.add_row("", "fetch peak MiB", f"{row['fetch_peak_MiB']:.0f}")
        t.add_row("", "  standalone", f"{row['fetch_standalone_peak_MiB']:.0f}")
        t.add_row(
            "",
            "gateway node MiB",
            f"{row['gateway_hwm_MiB']:.0f}",
            f"{row['tahoe_client_hwm_MiB']:.0f}" if peer else "—",
        )
        t.add_row(
            "",
            "largest host MiB",
            f"{row['host_hwm_MiB']:.0f}",
            f"{row['tahoe_storage_hwm_MiB']:.0f}" if peer else "—",
        )
    Console().print(t)


def main(
    json_out: bool = False,
    quick: bool = False,
    sizes: Sequence[int] | None = None,
    reps: int | None = None,
    tahoe_dir: Path | None = None,
    no_tahoe: bool = False,
) -> int:
    """``--quick``: one rep of 8 MiB (a smoke run); otherwise 64 and 256 MiB, 3 reps.

    Exit 1 when a step fails (the message names it); the targets do not set the code.
    """
    chosen_sizes = list(sizes) if sizes else ([8] if quick else [64, 256])
    chosen_reps = reps if reps is not None else (1 if quick else 3)
    peer_dir = None if no_tahoe else (tahoe_dir or tahoe.default_dir())
    why = "--no-tahoe" if no_tahoe else "no ../shared/peers/tahoe beside the repository"
    try:
        result = run(chosen_sizes, chosen_reps, peer_dir, no_tahoe_reason=why)
    except BenchError as exc:
        print(f"storenode: error: bench e2e: {exc}", file=sys.stderr)
        return 1
    if json_out:
        print(json.dumps(result, sort_keys=True))
    else:
        print_table(result)
    return 0
