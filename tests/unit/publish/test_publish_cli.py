"""``storenode publish`` on the command line: bad input is exit 2, no node is exit 1,
and each message says what to do. (Publishing itself: tests/integration/test_publish.py.)"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from storenode.cli import build_parser, main
from storenode.config import Config, PeerSpec
from storenode.home import init_home
from storenode.identity import Identity
from storenode.ledger import save_genesis
from storenode.testing.ledger import funded_genesis


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.fixture
def home(tmp_path: Path) -> Path:
    save_genesis(funded_genesis(), tmp_path / "genesis.json")
    node = PeerSpec(Identity.generate().public_key, "127.0.0.1", closed_port())
    config = Config(genesis_file=tmp_path / "genesis.json", client_node=node, publish_k=2)
    root, _ = init_home(tmp_path / "home", config)
    return root.root


@pytest.fixture
def track(tmp_path: Path) -> Path:
    path = tmp_path / "a.wav"
    path.write_bytes(b"RIFF" + bytes(1000))
    return path


def test_the_options_and_their_defaults() -> None:
    args = build_parser().parse_args(["publish", "a.wav", "music", "--k", "3", "--price", "0.5"])

    assert [p.name for p in args.paths] == ["a.wav", "music"]
    assert (args.k, args.n, args.windows) == (3, None, None)
    assert args.price == 5 * 10**17 and args.author == "unknown"


def test_k_above_n_is_bad_input(
    home: Path, track: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--home", str(home), "publish", str(track), "--k", "5", "--n", "3"])

    assert info.value.code == 2
    assert "k=5 n=3: give 1 <= k <= n <= 255" in capsys.readouterr().err


def test_a_path_that_is_not_there_is_bad_input(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--home", str(home), "publish", str(tmp_path / "nothing.wav")])

    assert info.value.code == 2
    assert "is not a file or a folder" in capsys.readouterr().err


def test_without_a_node_the_publish_fails_saying_where_it_looked(
    home: Path, track: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["--home", str(home), "publish", str(track), "--json"])

    err = capsys.readouterr().err
    assert code == 1
    assert "cannot reach the node at 127.0.0.1:" in err and "client.node" in err
