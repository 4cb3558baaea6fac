"""Whether a home's node runs, from its ``node.json``: what makes ``storenode fetch``
and ``stream`` read through it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from storenode.client.via_node import RunningNode, running_node
from storenode.homedir import READY_FILE


def _ready(home: Path, **doc: object) -> None:
    doc.setdefault("started", time.time())  # as the node writes it, once it is up
    (home / READY_FILE).write_text(json.dumps(doc))


def _dead_pid() -> int:
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(child.stdout)


def test_a_live_node_with_an_http_address_is_found(tmp_path: Path) -> None:
    _ready(tmp_path, pid=os.getpid(), name="node-1", http="127.0.0.1:8181", wire="x")
    node = running_node(tmp_path)
    assert node == RunningNode(os.getpid(), "127.0.0.1", 8181)
    assert node.url == "http://127.0.0.1:8181"


@pytest.mark.parametrize(
    ("said", "taken"),
    [
        ("/home/u/.storenode/node.sock", "/home/u/.storenode/node.sock"),
        ("node.sock", None),  # relative to what? not believed
        (7, None),
        (None, None),
    ],
)
def test_the_nodes_local_socket_is_taken_only_as_an_absolute_path(
    tmp_path: Path, said: object, taken: str | None
) -> None:
    _ready(tmp_path, pid=os.getpid(), http="127.0.0.1:8181", socket=said)
    assert running_node(tmp_path) == RunningNode(os.getpid(), "127.0.0.1", 8181, taken)


@pytest.mark.parametrize(
    ("listen", "asked", "url"),
    [
        ("0.0.0.0:80", "127.0.0.1", "http://127.0.0.1:80"),
        ("[::]:8080", "::1", "http://[::1]:8080"),
        ("[::1]:8080", "::1", "http://[::1]:8080"),
        ("127.0.0.9:9", "127.0.0.9", "http://127.0.0.9:9"),
    ],
)
def test_a_node_on_every_address_is_asked_on_loopback(
    tmp_path: Path, listen: str, asked: str, url: str
) -> None:
    _ready(tmp_path, pid=os.getpid(), http=listen)
    node = running_node(tmp_path)
    assert node is not None
    assert node.host == asked
    assert node.url == url


def test_a_process_that_took_the_pid_after_the_node_started_is_not_the_node(
    tmp_path: Path,
) -> None:
    # this process started after the time node.json gives: the node's pid was reused
    _ready(tmp_path, pid=os.getpid(), http="127.0.0.1:8181", started=time.time() - 10 * 86400)
    assert running_node(tmp_path) is None
    _ready(tmp_path, pid=os.getpid(), http="127.0.0.1:8181", started="yesterday")
    assert running_node(tmp_path) is None


def test_a_pid_of_another_users_process_is_not_the_node(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def kill(pid: int, signal: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    _ready(tmp_path, pid=os.getpid(), http="127.0.0.1:8181")
    monkeypatch.setattr(os, "kill", kill)
    assert running_node(tmp_path) is None


def test_no_node_json_means_no_running_node(tmp_path: Path) -> None:
    assert running_node(tmp_path) is None
    assert running_node(tmp_path / "no such home") is None


def test_a_node_json_left_by_a_dead_process_is_ignored(tmp_path: Path) -> None:
    _ready(tmp_path, pid=_dead_pid(), http="127.0.0.1:8181")
    assert running_node(tmp_path) is None


@pytest.mark.parametrize(
    "doc",
    [
        "",
        "{half",
        "[1, 2]",
        '{"pid": 1}',
        '{"http": "127.0.0.1:80"}',
        '{"pid": "1", "http": "127.0.0.1:80"}',
        '{"pid": true, "http": "127.0.0.1:80"}',
        '{"pid": -4, "http": "127.0.0.1:80"}',
        '{"pid": 1, "http": null}',
        '{"pid": 1, "http": "127.0.0.1"}',
        '{"pid": 1, "http": "127.0.0.1:0"}',
        '{"pid": 1, "http": "127.0.0.1:70000"}',
        '{"pid": 1, "http": "127.0.0.1:8o"}',
        '{"pid": 1, "http": "127.0.0.1:\u00b2"}',
    ],
)
def test_a_node_json_that_names_no_live_gateway_is_ignored(tmp_path: Path, doc: str) -> None:
    live = doc.replace('"pid": 1', f'"pid": {os.getpid()}, "started": {time.time()}')
    (tmp_path / READY_FILE).write_text(live)
    assert running_node(tmp_path) is None
