"""Ledger nodes as real ``storenode`` processes on 127.0.0.1, driven with the CLI.

``storenode localnet init`` writes a validator, a follower and a funded
publisher (blocks every second); each node runs as ``storenode --home H
ledger``. Tokens move with ``wallet transfer``; the nodes are killed with
SIGKILL at random moments and restarted, and must keep every transaction
that was seen in a block and agree again; SIGTERM stops a node cleanly.
Every wait is bounded and every process started here is killed at the end.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

STORENODE = [sys.executable, "-m", "storenode.cli"]
CLI_TIMEOUT = 20.0
WAIT = 15.0
"""Longest any condition may take to come true (seconds)."""
DESTINATION = "0x" + "5e" * 20


@dataclass
class Node:
    name: str
    home: Path
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [*STORENODE, "--home", str(self.home), "ledger"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        self.starts += 1
        eventually(
            lambda: self.log_text().count("listening on") >= self.starts,
            f"{self.name} listening",
            self,
        )

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def wait(self, timeout: float = WAIT) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(WAIT)


@dataclass
class Net:
    root: Path
    homes: dict[str, Path]
    nodes: dict[str, Node] = field(default_factory=dict)

    @property
    def validator(self) -> Node:
        return self.nodes["validator-1"]

    @property
    def follower(self) -> Node:
        return self.nodes["node-1"]

    @property
    def publisher(self) -> Path:
        return self.homes["publisher"]


def eventually(condition: Callable[[], bool], what: str, *nodes: Node) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        for node in nodes:
            if node.proc is not None and node.proc.poll() is not None:
                pytest.fail(f"{node.name} exited ({node.proc.returncode}):\n{node.log_text()}")
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {n.name}\n{n.log_text()[-3000:]}" for n in nodes)
            pytest.fail(f"not within {WAIT} s: {what}\n{logs}")
        time.sleep(0.1)


def cli(home: Path, *args: str) -> dict[str, Any]:
    """``storenode --home HOME ARGS --json``: its one JSON object (exit code 0 required)."""
    return cli_many([(home, args)])[0]


def cli_many(calls: Sequence[tuple[Path, Sequence[str]]]) -> list[dict[str, Any]]:
    """Several CLI commands run at the same time; their JSON objects, in order."""
    procs = [
        subprocess.Popen(
            [*STORENODE, "--home", str(home), *args, "--json"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for home, args in calls
    ]
    out = []
    try:
        for proc, (_, args) in zip(procs, calls, strict=True):
            stdout, stderr = proc.communicate(timeout=CLI_TIMEOUT)
            assert proc.returncode == 0, f"storenode {' '.join(args)}: {stderr}"
            lines = stdout.splitlines()
            assert len(lines) == 1, f"--json prints one line, not {stdout!r}"
            out.append(json.loads(lines[0]))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return out


def run(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``storenode --home HOME ARGS --json``, whatever its exit code."""
    return subprocess.run(
        [*STORENODE, "--home", str(home), *args, "--json"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
    )


def statuses(net: Net) -> tuple[dict[str, Any], dict[str, Any]]:
    v, f = cli_many([(n.home, ["chain", "status"]) for n in (net.validator, net.follower)])
    return v, f


def converge(net: Net, at_least: int = 1) -> dict[str, Any]:
    """Wait until both nodes report the same height and state root (>= ``at_least``)."""
    seen: list[tuple[dict[str, Any], dict[str, Any]]] = []

    def same() -> bool:
        v, f = statuses(net)
        seen.append((v, f))
        return (
            v["height"] >= at_least
            and (v["height"], v["tip_hash"], v["state_root"])
            == (f["height"], f["tip_hash"], f["state_root"])
            and v["genesis_hash"] == f["genesis_hash"]
        )

    eventually(
        same, f"the follower agrees with the validator at >= {at_least}", *net.nodes.values()
    )
    return seen[-1][0]


def transfer(net: Net, amount: str, *, wait: bool) -> dict[str, Any]:
    args = ["wallet", "transfer", DESTINATION, amount] + (
        ["--wait", "--timeout", "10"] if wait else []
    )
    return cli(net.publisher, *args)


def assert_committed(node: Node, observed: dict[str, int], seed: int) -> None:
    """Every transaction of ``observed`` is in ``node``'s chain at the height it was seen at."""
    found = cli_many([(node.home, ["chain", "tx", tx]) for tx in observed])
    for f in found:
        assert f["found"] and f["height"] == observed[f["tx"]], (seed, node.name, f)


@pytest.fixture
def net(tmp_path: Path) -> Iterator[Net]:
    root = tmp_path / "localnet"
    out = subprocess.run(
        [
            *STORENODE,
            "localnet",
            "init",
            "--dir",
            str(root),
            "--validators",
            "1",
            "--followers",
            "1",
            "--block-time",
            "1",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        check=True,
    )
    summary = json.loads(out.stdout)
    assert summary["genesis"] == str(root / "genesis.json")
    homes = {h["name"]: Path(h["home"]) for h in summary["homes"]}
    assert sorted(homes) == ["node-1", "publisher", "validator-1"]
    for h in summary["homes"]:
        assert h["wire"] is None or h["wire"].startswith("127.0.0.1:")
    net = Net(root, homes)
    try:
        for name in ("validator-1", "node-1"):
            node = net.nodes[name] = Node(name, homes[name], tmp_path / f"{name}.log")
            node.start()
        yield net
    finally:
        for node in net.nodes.values():
            node.kill()


def test_a_transfer_moves_tokens_and_both_nodes_agree_on_balances_and_state(net: Net) -> None:
    start = cli(net.publisher, "wallet", "balance")
    sent = transfer(net, "12.5", wait=True)
    assert sent["to"] == DESTINATION and sent["amount"] == "12.5"
    assert sent["height"] >= 1

    converge(net, sent["height"])
    on_v, on_f = cli_many(
        [(n.home, ["wallet", "balance", DESTINATION]) for n in (net.validator, net.follower)]
    )
    assert on_v["balance"] == on_f["balance"] == "12.5"
    after = cli(net.publisher, "wallet", "balance")
    spent = Decimal(start["balance"]) - Decimal(after["balance"])
    assert spent == Decimal("12.5") + Decimal(sent["fee"])
    assert after["nonce"] == start["nonce"] + 1

    found_v, found_f = cli_many(
        [(n.home, ["chain", "tx", sent["tx"]]) for n in (net.validator, net.follower)]
    )
    for found in (found_v, found_f):
        assert found["found"] and found["height"] == sent["height"]
        assert found["body"] == {"to": DESTINATION, "amount": "12.5"}
    block = cli(net.follower.home, "chain", "block", str(sent["height"]))
    assert sent["tx"] in [t["tx"] for t in block["transactions"]]
    assert cli(net.publisher, "contracts", "list")["contracts"] == []


def test_what_a_node_does_not_have_exits_1_and_a_stopped_node_is_named(net: Net) -> None:
    unknown = "0x" + "00" * 32
    for args in (["chain", "tx", unknown], ["registry", "show", unknown]):
        out = run(net.follower.home, *args)
        assert out.returncode == 1 and json.loads(out.stdout)["found"] is False
    net.validator.signal(signal.SIGTERM)
    assert net.validator.wait() == 0
    out = run(net.publisher, "chain", "status")
    assert out.returncode == 1 and out.stdout == ""
    assert "cannot reach the node" in out.stderr


def test_killed_nodes_lose_no_transaction_seen_in_a_block_and_resync(net: Net) -> None:
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    observed: dict[str, int] = {}  # tx hash -> the height it was seen at

    for round_ in range(rng.randint(2, 3)):
        done = transfer(net, f"{round_ + 1}.25", wait=True)
        observed[done["tx"]] = done["height"]
        in_flight = [transfer(net, f"0.{round_ + 1}", wait=False)["tx"] for _ in range(2)]

        time.sleep(rng.uniform(0.0, 1.5))  # a random moment in the block cycle
        seen = cli_many([(net.validator.home, ["chain", "tx", tx]) for tx in in_flight])
        observed.update({s["tx"]: s["height"] for s in seen if s["found"]})
        victims = [net.validator, net.follower]
        rng.shuffle(victims)
        for victim in victims:
            victim.signal(signal.SIGKILL)
            assert victim.wait() == -signal.SIGKILL
            time.sleep(rng.uniform(0.0, 0.6))
        rng.shuffle(victims)
        for victim in victims:
            victim.start()

        # The validator's chain is what it reopened; the follower may have been
        # killed a block behind, so it is checked once it has resynced.
        assert_committed(net.validator, observed, seed)
        converge(net, max(observed.values()))
        assert_committed(net.follower, observed, seed)

    # The chain went on: a new transfer after the last restart is committed on both.
    last = transfer(net, "0.5", wait=True)
    top = converge(net, last["height"])
    assert top["height"] >= last["height"] > max(observed.values())


def test_sigterm_stops_a_node_cleanly_and_it_resumes_where_it_stopped(net: Net) -> None:
    top = converge(net, 2)
    for node in (net.follower, net.validator):
        node.signal(signal.SIGTERM)
        assert node.wait() == 0, node.log_text()
        assert "received SIGTERM: stopping" in node.log_text()
        assert "stopped at height" in node.log_text()
    net.validator.start()
    net.follower.start()
    again = converge(net, top["height"] + 1)
    assert again["genesis_hash"] == top["genesis_hash"]
