"""``storenode localnet up|status|down`` with real processes.

The first test runs the real daemons through the CLI. The others put a small
stand-in node in their place (a script that writes ``node.json`` and answers
``/api/status``, or misbehaves on purpose) to show what the launcher does
when a node fails to start or will not stop.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from storenode.localnet import processes
from storenode.localnet.processes import NodeStartError, down, is_running, load_record, up

STORENODE = [sys.executable, "-m", "storenode.cli"]
CLI_TIMEOUT = 90.0


def cli(*args: str) -> dict[str, Any]:
    done = subprocess.run(
        [*STORENODE, *args, "--json"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
    )
    assert done.returncode == 0, done.stderr
    doc: dict[str, Any] = json.loads(done.stdout)
    return doc


@pytest.mark.slow
def test_up_starts_every_node_status_shows_them_and_down_stops_them(tmp_path: Path) -> None:
    net = tmp_path / "net"
    try:
        summary = cli("localnet", "up", "--hosts", "2", "--dir", str(net))

        assert set(summary) == {"gateway", "publisher_home", "nodes"}
        assert summary["publisher_home"] == str(net / "publisher")
        assert [n["name"] for n in summary["nodes"]] == ["validator-1", "node-1", "node-2"]
        for node in summary["nodes"]:
            assert set(node) == {"name", "pid", "wire", "http"}
            assert node["wire"].startswith("127.0.0.1:") and node["http"].startswith("127.0.0.1:")
            assert is_running(node["pid"], net / node["name"])
        validator = summary["nodes"][0]
        assert summary["gateway"] == f"http://{validator['http']}"

        deadline = time.monotonic() + 20
        while True:
            status = cli("localnet", "status", "--dir", str(net))
            heights = [n["height"] for n in status["nodes"]]
            if all(isinstance(h, int) and h >= 2 for h in heights):
                break
            assert time.monotonic() < deadline, f"the chain did not grow: {status}"
            time.sleep(0.5)
        assert all(n["running"] for n in status["nodes"])
        for node in summary["nodes"]:  # each node serves its home's commands on its socket
            ready = json.loads((net / node["name"] / "node.json").read_text())
            assert ready["socket"] == str((net / node["name"] / "node.sock").absolute())
            assert (net / node["name"] / "node.sock").is_socket()
        assert {n["name"]: n["role"] for n in status["nodes"]} == {
            "validator-1": "validator",
            "node-1": "host",
            "node-2": "host",
        }
    finally:
        stopped = cli("localnet", "down", "--dir", str(net))
    assert sorted(stopped["stopped"]) == ["node-1", "node-2", "validator-1"]
    assert stopped["killed"] == []
    for node in summary["nodes"]:
        assert not is_running(node["pid"], net / node["name"])
        assert not (net / node["name"] / "node.json").exists()  # a clean exit removes it
        assert not (net / node["name"] / "node.sock").exists()
    again = cli("localnet", "down", "--dir", str(net))
    assert again == {"stopped": [], "killed": [], "not_running": stopped["stopped"]}
    after = cli("localnet", "status", "--dir", str(net))
    assert not any(n["running"] for n in after["nodes"])


# -- a stand-in node ---------------------------------------------------------------------------

FAKE_NODE = textwrap.dedent(
    """
    import json, os, signal, sys, threading, time
    from http.server import BaseHTTPRequestHandler, HTTPServer

    home = sys.argv[sys.argv.index("--home") + 1]
    name = os.path.basename(home)
    behaviour = json.load(open(os.path.join(os.path.dirname(__file__), "behaviour.json")))
    what = behaviour.get(name, "serve")
    if what == "exit":
        print(f"{name}: cannot open the chunk store: disk full", file=sys.stderr, flush=True)
        sys.exit(3)
    if what == "ignore-term":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if what == "hang":
        print(f"{name}: still syncing", file=sys.stderr, flush=True)
        while True:
            time.sleep(1)

    class Status(BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps({"height": 7, "chunks": 0}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Status)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    ready = {"pid": os.getpid(), "wire": "127.0.0.1:9", "http": f"127.0.0.1:{server.server_port}"}
    with open(os.path.join(home, "node.json"), "w") as f:
        json.dump(ready, f)
    while True:
        time.sleep(1)
    """
)


@pytest.fixture
def fake_nodes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    script = tmp_path / "fake_node.py"
    script.write_text(FAKE_NODE)
    monkeypatch.setattr(processes, "NODE_COMMAND", (sys.executable, str(script)))
    return tmp_path / "net"


def _behave(net: Path, **behaviour: str) -> None:
    net.mkdir()
    (net.parent / "behaviour.json").write_text(json.dumps(behaviour))


def test_a_node_that_exits_while_starting_is_named_with_its_log_and_the_rest_stopped(
    fake_nodes: Path,
) -> None:
    net = fake_nodes
    _behave(net, **{"node-2": "exit"})

    with pytest.raises(NodeStartError, match="node-2") as caught:
        up(net, hosts=3, timeout=20)

    assert "disk full" in str(caught.value)  # the tail of its log
    record = load_record(net)
    assert [n.name for n in record.nodes] == ["validator-1", "node-1", "node-2", "node-3"]
    assert not any(is_running(n.pid, n.home) for n in record.nodes)


def test_a_node_that_never_comes_up_is_named_after_the_timeout_and_all_are_stopped(
    fake_nodes: Path,
) -> None:
    net = fake_nodes
    _behave(net, **{"node-1": "hang"})

    with pytest.raises(NodeStartError, match=r"node-1 is not up after 2 s") as caught:
        up(net, hosts=2, timeout=2)

    assert "still syncing" in str(caught.value)
    assert not any(is_running(n.pid, n.home) for n in load_record(net).nodes)


def test_a_node_that_ignores_sigterm_is_killed_after_the_grace(fake_nodes: Path) -> None:
    net = fake_nodes
    _behave(net, **{"node-1": "ignore-term"})
    record = up(net, hosts=2, timeout=20)
    assert record.gateway is not None

    start = time.monotonic()
    report = down(net, grace=1.0)

    assert report.killed == ("node-1",)
    assert sorted(report.stopped) == ["node-2", "validator-1"]
    assert 1.0 <= time.monotonic() - start < 5.0
    assert not any(is_running(n.pid, n.home) for n in record.nodes)
