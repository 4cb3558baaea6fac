"""Publishing, fetching and streaming on a localnet of real processes.

One localnet for the module (``storenode localnet up``: a validator that
serves the gateway and seven hosts, blocks every second, challenge windows of
five blocks), always brought down at the end. The publisher's home publishes
with ``storenode publish`` (k=3 of n=7); reads go through ``storenode fetch``
and the validator's gateway. Hosts are killed with SIGKILL, restarted, and
one has its chunks damaged on disk. Every test leaves the network with all
its hosts running (the damaged one last), and every wait is bounded.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from storenode.config import Config, parse_tokens
from storenode.home import init_home, open_home
from storenode.identity import address_hex
from storenode.localnet.processes import (
    LocalnetRecord,
    fetch_status,
    is_running,
    load_record,
    start_nodes,
)
from storenode.store.disk_layout import CHUNKS_DIR
from storenode.testing.catalogue import random_bytes, write_catalogue

pytestmark = pytest.mark.slow

STORENODE = [sys.executable, "-m", "storenode.cli"]
HOSTS = 7
CLI_TIMEOUT = 90.0
WAIT = 45.0
"""Longest any condition may take to come true (seconds)."""
WINDOW_BLOCKS = 5
"""``localnet up``'s challenge windows."""
SETTLED = WINDOW_BLOCKS + 2
"""Blocks after which a proof sent before now has settled."""
BIG_MIB = 40
"""The work streamed while hosts die: many stripes, so most of it is still to
fetch when they do."""


def run(
    home: Path | None, *args: str, timeout: float = CLI_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """``storenode [--home HOME] ARGS --json``, whatever its exit code."""
    argv = [*STORENODE, *(["--home", str(home)] if home else []), *args, "--json"]
    return subprocess.run(
        argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout
    )


def cli(home: Path | None, *args: str, timeout: float = CLI_TIMEOUT) -> dict[str, Any]:
    """The JSON object of a command that must succeed."""
    done = run(home, *args, timeout=timeout)
    assert done.returncode == 0, (
        f"storenode {' '.join(args)} exited {done.returncode}: {done.stderr}"
    )
    doc: dict[str, Any] = json.loads(done.stdout)
    return doc


def eventually(condition: Any, what: str, timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout:g} s: {what}")
        time.sleep(0.25)


@dataclass
class Net:
    directory: Path
    gateway: str
    publisher: Path
    works: dict[str, Path]
    """CID hex -> the file published."""
    cids: dict[str, str]
    """File name -> CID, as publish printed it."""

    @property
    def record(self) -> LocalnetRecord:
        return load_record(self.directory)

    def host_home(self, name: str) -> Path:
        return self.record.node(name).home

    def kill(self, *names: str) -> None:
        for name in names:
            node = self.record.node(name)
            os.kill(node.pid, signal.SIGKILL)
            eventually(lambda n=node: not is_running(n.pid, n.home), f"{name} dead", 10)

    def stop(self, name: str) -> None:
        node = self.record.node(name)
        os.kill(node.pid, signal.SIGTERM)
        eventually(lambda: not is_running(node.pid, node.home), f"{name} stopped", 20)

    def start(self, *names: str) -> None:
        start_nodes(self.directory, names)

    def height(self) -> int:
        validator = self.record.node("validator-1")
        assert validator.http is not None
        doc = fetch_status(validator.http)
        assert doc is not None, "the validator answers /api/status"
        return int(doc["height"])

    def wait_blocks(self, blocks: int) -> None:
        self.wait_height(self.height() + blocks)

    def wait_height(self, target: int) -> None:
        eventually(lambda: self.height() >= target, f"height {target}", WAIT)

    def windows(self, name: str) -> tuple[int, int]:
        """(proven, missed) of a host, from the ledger."""
        address = address_hex(open_home(self.host_home(name)).identity().address)
        doc = cli(self.publisher, "wallet", "balance", address)
        return int(doc["windows_proven"]), int(doc["windows_missed"])

    def fetch(self, home: Path, cid: str, out: Path) -> subprocess.CompletedProcess[str]:
        return run(home, "fetch", cid, "-o", str(out))


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    root = tmp_path_factory.mktemp("e2e")
    directory = root / "localnet"
    try:
        up = cli(None, "localnet", "up", "--hosts", str(HOSTS), "--dir", str(directory))
        catalogue = root / "catalogue"
        write_catalogue(catalogue, seconds=4.0, tracks=2, random_mib=0)
        big = root / f"big-{BIG_MIB}MiB.bin"
        big.write_bytes(random_bytes(BIG_MIB << 20, seed=11))
        publisher = Path(up["publisher_home"])
        doc = cli(publisher, "publish", str(catalogue), str(big), timeout=180)
        files = {p.name: p for p in [*catalogue.iterdir(), big]}
        cids = {Path(w["path"]).name: w["cid"] for w in doc["works"]}
        assert sorted(cids) == sorted(files)
        yield Net(
            directory,
            up["gateway"],
            publisher,
            {cid: files[name] for name, cid in cids.items()},
            cids,
        )
    finally:
        if (directory / "localnet.json").exists():
            subprocess.run(
                [*STORENODE, "localnet", "down", "--dir", str(directory)],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=60,
            )


def _listener(net: Net, name: str, *, spending_cap: str, funds: str) -> Path:
    """A home with a fresh funded key that reads through the localnet."""
    publisher = open_home(net.publisher).config
    cap = parse_tokens(spending_cap)
    assert publisher.client_node is not None and cap is not None
    config = Config(
        genesis_file=net.directory / "genesis.json",
        client_node=publisher.client_node,
        peers=publisher.peers,
        http_enabled=False,
        spending_cap=cap,
    )
    home, _ = init_home(net.directory.parent / name, config)
    address = address_hex(home.identity().address)
    cli(net.publisher, "wallet", "transfer", address, funds, "--wait", "--timeout", "30")
    return home.root


# -- the tests --------------------------------------------------------------------------------


def test_a_published_catalogue_fetches_back_byte_exact(net: Net, tmp_path: Path) -> None:
    for cid, path in net.works.items():
        out = tmp_path / path.name
        done = net.fetch(net.publisher, cid, out)
        assert done.returncode == 0, done.stderr
        assert out.read_bytes() == path.read_bytes(), path.name
        assert json.loads(done.stdout)["bytes"] == path.stat().st_size


def test_a_home_whose_node_runs_fetches_through_it(net: Net, tmp_path: Path) -> None:
    home = net.host_home("validator-1")  # its node serves the localnet's gateway
    cid, path = next((c, p) for c, p in net.works.items() if p.suffix == ".bin")
    through = net.fetch(home, cid, tmp_path / "through.bin")
    alone = run(home, "fetch", "--standalone", cid, "-o", str(tmp_path / "alone.bin"))
    assert through.returncode == 0, through.stderr
    assert alone.returncode == 0, alone.stderr
    # the node wrote the file the command handed it over its local socket
    assert json.loads(through.stdout)["via"] == f"unix:{(home / 'node.sock').absolute()}"
    assert json.loads(alone.stdout)["via"] == "hosts"
    assert json.loads(alone.stdout)["hosts"] >= 3
    data = path.read_bytes()
    assert (tmp_path / "through.bin").read_bytes() == data
    assert (tmp_path / "alone.bin").read_bytes() == data
    streamed = subprocess.run(
        [*STORENODE, "--home", str(home), "stream", cid, "--start", "777"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=120,
    )
    assert streamed.returncode == 0, streamed.stderr
    assert streamed.stdout == data[777:]


def test_publishing_the_same_catalogue_again_changes_nothing(net: Net) -> None:
    track = next(p for p in net.works.values() if p.suffix == ".wav")
    before = cli(net.publisher, "contracts", "list")
    doc = cli(net.publisher, "publish", str(track))
    assert [w["cid"] for w in doc["works"]] == [net.cids[track.name]]
    assert doc["works"][0].get("status", "unchanged") == "unchanged"
    after = cli(net.publisher, "contracts", "list")
    assert len(after["contracts"]) == len(before["contracts"])


def test_range_reads_through_the_gateway_are_byte_exact(net: Net) -> None:
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    with httpx.Client(base_url=net.gateway, trust_env=False, timeout=30) as http:
        for cid, path in net.works.items():
            data = path.read_bytes()
            whole = http.get(f"/content/{cid}")
            assert whole.status_code == 200 and whole.content == data, (seed, path.name)
            for _ in range(4):
                start = rng.randrange(len(data))
                end = rng.randrange(start, min(len(data), start + (3 << 20)))
                part = http.get(f"/content/{cid}", headers={"Range": f"bytes={start}-{end}"})
                assert part.status_code == 206, (seed, start, end)
                assert part.headers["content-range"] == f"bytes {start}-{end}/{len(data)}"
                assert part.content == data[start : end + 1], (seed, path.name, start, end)
            tail = http.get(f"/content/{cid}", headers={"Range": "bytes=-1000"})
            assert tail.status_code == 206 and tail.content == data[-1000:]


def test_a_stream_survives_three_hosts_killed_in_the_middle(net: Net) -> None:
    cid = net.cids[f"big-{BIG_MIB}MiB.bin"]
    data = net.works[cid].read_bytes()
    victims = ["node-2", "node-4", "node-6"]
    received = bytearray()
    try:
        with (
            httpx.Client(trust_env=False, timeout=30) as http,
            http.stream("GET", f"{net.gateway}/content/{cid}") as reply,
        ):
            assert reply.status_code == 200
            chunks = reply.iter_bytes(1 << 16)
            while len(received) < (2 << 20):
                received += next(chunks)
            net.kill(*victims)
            for chunk in chunks:
                received += chunk
        assert len(received) == len(data)
        assert received == data
    finally:
        net.start(*victims)


def test_a_host_killed_during_a_publish_and_the_publish_run_again_completes(
    net: Net, tmp_path: Path
) -> None:
    work = tmp_path / "during-publish.bin"
    work.write_bytes(random_bytes(24 << 20, seed=23))
    victim = "node-3"
    publish = subprocess.Popen(
        [*STORENODE, "--home", str(net.publisher), "publish", str(work), "--json"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1.0)
        net.kill(victim)
        stdout, stderr = publish.communicate(timeout=CLI_TIMEOUT)
    finally:
        if publish.poll() is None:
            publish.kill()
            publish.wait()
    net.start(victim)
    if publish.returncode != 0:
        assert "again" in stderr, f"the error says how to go on: {stderr}"
        doc = cli(net.publisher, "publish", str(work))
    else:
        doc = json.loads(stdout)
    cid = doc["works"][0]["cid"]
    out = tmp_path / "fetched.bin"
    done = net.fetch(net.publisher, cid, out)
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == work.read_bytes()


def test_a_restarted_host_keeps_proving(net: Net) -> None:
    victim = "node-5"
    net.kill(victim)
    net.start(victim)
    net.wait_blocks(SETTLED)  # what it proved before the kill is counted by now
    proven, _ = net.windows(victim)
    eventually(lambda: net.windows(victim)[0] > proven, f"{victim} proves again")


def test_a_priced_work_is_refused_without_a_receipt_and_served_with_one(
    net: Net, tmp_path: Path
) -> None:
    work = tmp_path / "priced.bin"
    work.write_bytes(random_bytes(1 << 20, seed=31))
    doc = cli(net.publisher, "publish", str(work), "--price", "2")
    cid = doc["works"][0]["cid"]

    stingy = _listener(net, "stingy", spending_cap="0", funds="10")
    refused = net.fetch(stingy, cid, tmp_path / "refused.bin")
    assert refused.returncode == 1
    assert "spending cap" in refused.stderr or "pay" in refused.stderr, refused.stderr
    assert not (tmp_path / "refused.bin").exists()
    with httpx.Client(trust_env=False, timeout=30) as http:
        gateway = http.get(f"{net.gateway}/content/{cid}")
    assert gateway.status_code == 402  # the gateway's node caps its spending at 1 token

    buyer = _listener(net, "buyer", spending_cap="5", funds="10")
    out = tmp_path / "bought.bin"
    done = net.fetch(buyer, cid, out)
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == work.read_bytes()
    balance = cli(buyer, "wallet", "balance")
    assert Decimal(balance["balance"]) <= 10 - 2  # it bought the work


def _set_repair(home: Path, on: bool) -> None:
    """Turn the host's repair on or off, and scrub fast while it is on (so the
    damage is found in seconds, not in a pass at the default 1 MiB/s)."""
    config = home / "config.toml"
    text = config.read_text()
    was = f"repair = {str(not on).lower()}"
    assert was in text
    text = text.replace(was, f"repair = {str(on).lower()}")
    text = re.sub(r"(?m)^scrub_rate = .*$", f'scrub_rate = "{64 if on else 1} MiB"', text)
    config.write_text(text)


def test_a_host_with_damaged_chunks_is_caught_by_readers_and_by_its_proofs_then_repairs(
    net: Net, tmp_path: Path
) -> None:
    victim = "node-1"
    net.stop(victim)
    chunks_dir = open_home(net.host_home(victim)).config.chunks_dir
    intact: dict[Path, bytes] = {}
    for chunk in (chunks_dir / CHUNKS_DIR).glob("*/*"):  # docs/specs/chunk-store.md
        intact[chunk] = chunk.read_bytes()
        flipped = bytearray(intact[chunk])
        flipped[len(flipped) // 2] ^= 0xFF
        chunk.write_bytes(flipped)
    assert intact
    _set_repair(net.host_home(victim), False)  # first: what readers and proofs see
    net.start(victim)
    settled = net.height() + SETTLED

    for cid, path in net.works.items():
        out = tmp_path / path.name
        done = net.fetch(net.publisher, cid, out)
        assert done.returncode == 0, done.stderr
        assert out.read_bytes() == path.read_bytes(), path.name

    net.wait_height(settled)  # what it proved before the damage is counted by now
    proven, missed = net.windows(victim)
    eventually(lambda: net.windows(victim)[1] > missed, f"{victim} misses its windows")
    assert net.windows(victim)[0] == proven

    # then with repair on (the default): the scrub finds the damage, the host
    # rebuilds each chunk from the other hosts of its stripe and proves again
    net.stop(victim)
    _set_repair(net.host_home(victim), True)
    net.start(victim)
    http = net.record.node(victim).http
    assert http is not None

    def settled_repair() -> bool:
        # every damaged chunk found and rebuilt byte-exact, a priced work's too (its
        # stripes read as the chunks' host, chunk.repair, with no receipt)
        status = fetch_status(http)
        if status is None:  # the node did not answer this time: ask again
            return False
        rebuilt = sum(path.read_bytes() == data for path, data in intact.items())
        return bool(rebuilt == status["repaired"] == len(intact) and status["damaged"] == 0)

    eventually(settled_repair, f"{victim} found and rebuilt its {len(intact)} chunks", 90)
    status = fetch_status(http)
    assert status is not None and status["repair_waiting"] == 0
    proven = net.windows(victim)[0]
    eventually(lambda: net.windows(victim)[0] > proven, f"{victim} proves again")
