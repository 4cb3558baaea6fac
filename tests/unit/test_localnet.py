"""``storenode localnet``: the homes it writes and the record of its processes."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from storenode.home import open_home
from storenode.ledger import load_genesis
from storenode.localnet import (
    HOST_PRICE,
    LocalnetExistsError,
    LocalnetParamsError,
    init_localnet,
)
from storenode.localnet.processes import (
    LocalnetNotFoundError,
    LocalnetRecord,
    LocalnetRecordError,
    NodeRecord,
    down,
    load_record,
    names_home,
    parse_record,
    save_record,
)

# -- the homes -----------------------------------------------------------------------------


def test_the_validator_routes_and_the_hosts_rent_out_disk_each_on_its_own_ports(
    tmp_path: Path,
) -> None:
    net = init_localnet(tmp_path / "net", validators=1, followers=4, block_time=1, window_blocks=5)

    by_name = {h.name: h for h in net.homes}
    assert sorted(by_name) == ["node-1", "node-2", "node-3", "node-4", "publisher", "validator-1"]
    nodes = [h for h in net.homes if h.role != "publisher"]
    ports = set()
    for h in nodes:
        config = open_home(h.home).config
        assert config.host_enabled is (h.role == "host")
        assert config.http_enabled
        assert h.wire == f"127.0.0.1:{config.listen_port}"
        assert h.http == f"127.0.0.1:{config.http_port}"
        ports |= {config.listen_port, config.http_port}
        assert len(config.peers) == len(nodes) - 1
    assert len(ports) == 2 * len(nodes)
    assert open_home(by_name["node-1"].home).config.price == HOST_PRICE
    genesis = load_genesis(net.genesis_file)
    assert (genesis.block_time, genesis.window_blocks) == (1, 5)
    assert genesis.params.min_window_blocks <= 5


def test_the_publisher_talks_to_the_validator_and_codes_three_of_at_most_ten(
    tmp_path: Path,
) -> None:
    for hosts, n in ((12, 10), (10, 10), (4, 4)):
        net = init_localnet(tmp_path / str(hosts), followers=hosts)
        publisher = next(h for h in net.homes if h.role == "publisher")
        validator = next(h for h in net.homes if h.role == "validator")
        config = open_home(publisher.home).config
        assert (config.publish_k, config.publish_n) == (3, n)
        assert config.client_node is not None
        assert f"{config.client_node.host}:{config.client_node.port}" == validator.wire
        assert len(config.peers) == hosts + 1  # every node seeds its DHT
        assert config.publish_max_price >= HOST_PRICE
        assert publisher.wire is None and publisher.http is None


def test_a_localnet_is_written_only_into_a_new_or_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "file").write_text("x")
    with pytest.raises(LocalnetExistsError, match="new or empty"):
        init_localnet(tmp_path / "busy")
    with pytest.raises(LocalnetParamsError):
        init_localnet(tmp_path / "none", validators=0)


# -- the record ----------------------------------------------------------------------------


def _record(directory: Path) -> LocalnetRecord:
    nodes = (
        NodeRecord("validator-1", "validator", directory / "validator-1", 101, "127.0.0.1:1", None),
        NodeRecord("node-1", "host", directory / "node-1", 102, "127.0.0.1:2", "127.0.0.1:3"),
    )
    return LocalnetRecord(directory, nodes, directory / "publisher", 1700000000.5)


def test_the_record_reads_back_what_was_saved(tmp_path: Path) -> None:
    record = _record(tmp_path)
    save_record(record)

    assert load_record(tmp_path) == record
    assert record.gateway is None  # the validator has not reported an HTTP address yet
    served = record.with_node(
        NodeRecord("validator-1", "validator", tmp_path / "validator-1", 7, "a:1", "127.0.0.1:9")
    )
    assert served.gateway == "http://127.0.0.1:9"
    assert served.summary() == {
        "gateway": "http://127.0.0.1:9",
        "publisher_home": str(tmp_path / "publisher"),
        "nodes": [
            {"name": "validator-1", "pid": 7, "wire": "a:1", "http": "127.0.0.1:9"},
            {"name": "node-1", "pid": 102, "wire": "127.0.0.1:2", "http": "127.0.0.1:3"},
        ],
    }
    with pytest.raises(LocalnetParamsError, match="node-1"):
        record.node("node-9")


def test_a_directory_without_a_localnet_says_how_to_start_one(tmp_path: Path) -> None:
    with pytest.raises(LocalnetNotFoundError, match="localnet up --dir"):
        load_record(tmp_path)
    with pytest.raises(LocalnetNotFoundError):
        down(tmp_path)


@given(st.text(max_size=200))
def test_a_damaged_record_is_refused_with_a_typed_error(text: str) -> None:
    with contextlib.suppress(LocalnetRecordError):
        parse_record(Path("/x"), text, source=Path("/x/localnet.json"))


@given(
    st.dictionaries(
        st.sampled_from(["version", "started", "publisher_home", "nodes", "gateway"]),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
            lambda inner: (
                st.lists(inner, max_size=3)
                | st.dictionaries(st.text(max_size=6), inner, max_size=4)
            ),
            max_leaves=10,
        ),
    )
)
def test_any_json_shaped_record_is_either_read_or_refused(doc: dict[str, object]) -> None:
    doc.setdefault("version", 1)
    try:
        record = parse_record(Path("/x"), json.dumps(doc), source=Path("/x/localnet.json"))
    except LocalnetRecordError:
        return
    assert all(isinstance(n.pid, int) for n in record.nodes)


def test_a_process_is_a_nodes_only_while_its_command_line_names_the_home() -> None:
    home = Path("/tmp/net/node-1")
    cmdline = b"\0".join([b"python", b"-m", b"storenode.cli", b"--home", b"/tmp/net/node-1", b""])
    assert names_home(cmdline, home)
    assert not names_home(cmdline, Path("/tmp/net/node-10"))
    assert not names_home(cmdline, Path("/tmp/net/node"))
    assert not names_home(b"", home)  # a zombie has an empty command line


def test_down_leaves_alone_a_process_that_took_a_recorded_pid(tmp_path: Path) -> None:
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        node = NodeRecord("node-1", "host", tmp_path / "node-1", other.pid, None, None)
        save_record(LocalnetRecord(tmp_path, (node,), tmp_path / "publisher", 0.0))

        report = down(tmp_path, grace=0.5)

        assert report.not_running == ("node-1",) and not report.stopped and not report.killed
        assert other.poll() is None
        os.kill(other.pid, 0)
    finally:
        other.kill()
        other.wait(5)
