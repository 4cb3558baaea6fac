"""A home's config.toml and key file: defaults, round trips, bad input named by key,
and a key file no other user can read."""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from storenode.config import (
    Config,
    ConfigError,
    ConfigKeyUnknownError,
    ConfigNotFoundError,
    ConfigSyntaxError,
    ConfigValueError,
    PeerSpec,
    load_config,
    parse_config,
    render_config,
    toml_string,
    write_config,
)
from storenode.home import (
    HomeExistsError,
    KeyFileExistsError,
    KeyFileInvalidError,
    KeyFileNotFoundError,
    KeyFilePermissionsError,
    init_home,
    open_home,
    read_key_file,
    write_key_file,
)
from storenode.identity import Identity

KEY = bytes(range(32))
PEER = f"{KEY.hex()}@127.0.0.1:7401"


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- defaults and round trips ------------------------------------------------------------------


def test_an_empty_config_means_every_default() -> None:
    config = parse_config("")
    assert config == Config()
    assert (config.listen_host, config.listen_port) == ("127.0.0.1", 7400)
    assert config.identity_file == Path("identity.key")
    assert config.data_dir == Path("data") and config.chain_dir == Path("data/chain")
    assert config.genesis_file == Path("genesis.json")
    assert config.peers == () and config.client_node is None
    assert config.log_level == "info"


def test_the_default_config_file_documents_every_key_and_reads_back_as_the_defaults() -> None:
    text = render_config(Config())
    assert parse_config(text) == Config()
    doc = tomllib.loads(text)
    lines = text.splitlines()
    for section, keys in doc.items():
        for key in keys:
            at = next(i for i, line in enumerate(lines) if line.startswith(f"{key} ="))
            assert lines[at - 1].startswith("#"), f"{section}.{key} has no comment above it"
    assert "# node = " in text  # the client's node is shown, commented out


def test_a_config_with_every_key_set_survives_a_round_trip() -> None:
    config = Config(
        identity_file=Path("/etc/storenode/key"),
        data_dir=Path("var/data dir"),
        log_level="debug",
        listen_host="0.0.0.0",
        listen_port=65535,
        advertise_host="node.example.org",
        peers=(PeerSpec(KEY, "127.0.0.1", 1), PeerSpec(bytes(32), "::1", 7402)),
        genesis_file=Path('odd "name"\\genesis.json'),
        client_node=PeerSpec(KEY, "node.example", 7400),
        spending_cap=123 * 10**15,
        host_enabled=False,
        capacity=3 * 10**9 + 1,
        price=1,
        collateral_bps=0,
        max_windows=7,
        scrub_rate=0,
        http_enabled=False,
        http_host="::1",
        http_port=1,
        publish_k=3,
        publish_n=10,
        publish_windows=2,
        publish_max_price=10**30,
    )
    assert parse_config(render_config(config)) == config


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("10 GiB", 10 << 30),
        ("512MB", 512 * 10**6),
        ("1.5 KiB", 1536),
        ('"7"', 7),
        ("2 tb", 2 * 10**12),
    ],
)
def test_a_capacity_reads_with_or_without_a_unit(text: str, size: int) -> None:
    value = text if text.startswith('"') else f'"{text}"'
    assert parse_config(f"[host]\ncapacity = {value}\n").capacity == size


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ('capacity = "10 parsecs"', "host.capacity"),
        ("capacity = -1", "host.capacity"),
        ("price = 0.5", "host.price"),
        ('price = "1.0000000000000000001"', "host.price"),
        ("collateral_bps = 10001", "host.collateral_bps"),
        ("enabled = 1", "host.enabled"),
        ('scrub_rate = "fast"', "host.scrub_rate"),
        ("scrub_rate = -8", "host.scrub_rate"),
    ],
)
def test_a_bad_host_value_is_named_by_its_key(line: str, key: str) -> None:
    with pytest.raises(ConfigValueError) as info:
        parse_config(f"[host]\n{line}\n")
    assert info.value.key == key


def test_publish_n_below_k_is_refused() -> None:
    with pytest.raises(ConfigValueError) as info:
        parse_config("[publish]\nk = 5\nn = 4\n")
    assert info.value.key == "publish.n"


@given(st.text(st.characters(exclude_categories=["Cs"]), min_size=1))
def test_any_path_is_written_as_a_toml_string_that_reads_back_the_same(value: str) -> None:
    assert tomllib.loads(f"v = {toml_string(value)}")["v"] == value


def test_relative_paths_are_relative_to_the_home_and_absolute_ones_stay(tmp_path: Path) -> None:
    config = Config(identity_file=Path("/keys/node.key")).resolve(tmp_path)
    assert config.identity_file == Path("/keys/node.key")
    assert config.data_dir == tmp_path / "data"
    assert config.chain_dir == tmp_path / "data" / "chain"
    assert config.genesis_file == tmp_path / "genesis.json"


def test_a_peer_is_written_key_at_host_port_with_ipv6_in_brackets() -> None:
    assert str(PeerSpec(KEY, "127.0.0.1", 7401)) == PEER
    v6 = PeerSpec(KEY, "::1", 7401)
    assert str(v6) == f"{KEY.hex()}@[::1]:7401"
    assert PeerSpec.parse(str(v6)) == v6


# -- bad configs --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "key", "expected"),
    [
        ('[wire]\nport = "7400"', "wire.port", "an integer from 1 to 65535"),
        ("[wire]\nport = 0", "wire.port", "an integer from 1 to 65535"),
        ("[wire]\nport = 65536", "wire.port", "an integer from 1 to 65535"),
        ("[wire]\nport = true", "wire.port", "an integer"),
        ("[wire]\nport = 7400.0", "wire.port", "an integer"),
        ('[wire]\nhost = ""', "wire.host", "a host name or IP address"),
        ('[wire]\nhost = "1.2.3.4:80/x"', "wire.host", "a host name or IP address"),
        ('[wire]\npeers = "x"', "wire.peers", "a list of"),
        ("[wire]\npeers = [5]", "wire.peers[0]", "a string"),
        ('[wire]\npeers = ["abc@127.0.0.1:1"]', "wire.peers[0]", "64 hex digits"),
        (f'[wire]\npeers = ["{PEER}", "{KEY.hex()}127.0.0.1:1"]', "wire.peers[1]", "no '@'"),
        (f'[wire]\npeers = ["{KEY.hex()}@127.0.0.1:99999"]', "wire.peers[0]", "port"),
        (f'[wire]\npeers = ["{KEY.hex()}@127.0.0.1"]', "wire.peers[0]", "<host>:<port>"),
        (f'[wire]\npeers = ["{"zz" * 32}@h:1"]', "wire.peers[0]", "not hex"),
        ('[node]\nlog_level = "loud"', "node.log_level", '"debug", "info"'),
        ('[node]\nlog_level = "INFO"', "node.log_level", '"debug", "info"'),
        ("[node]\nidentity_file = 1", "node.identity_file", "a path"),
        ('[node]\ndata_dir = "  "', "node.data_dir", "a non-empty path"),
        ("[ledger]\ngenesis_file = []", "ledger.genesis_file", "a path"),
        ('[client]\nnode = "localhost:7400"', "client.node", "<public key hex>@<host>:<port>"),
        ("wire = 5", "wire", "a table"),
        ("[[node]]\ndata_dir = 'x'", "node", "a table"),
    ],
)
def test_a_bad_value_names_its_key_and_what_is_expected(text: str, key: str, expected: str) -> None:
    with pytest.raises(ConfigValueError) as info:
        parse_config(text, source="home/config.toml")
    assert info.value.key == key
    message = str(info.value)
    assert message.startswith(f"home/config.toml: {key} must be ")
    assert expected in message


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[wire]\nprt = 7400", "wire.prt"),
        ("[node]\nidentity = 'key'", "node.identity"),
        ("[nodes]\nx = 1", "nodes"),
        ("port = 7400", "port"),
    ],
)
def test_an_unknown_key_is_named_with_the_keys_that_exist(text: str, key: str) -> None:
    with pytest.raises(ConfigKeyUnknownError) as info:
        parse_config(text)
    assert info.value.key == key
    assert f"unknown key {key!r}" in str(info.value)
    assert "known keys here: " in str(info.value)


def test_text_that_is_not_toml_is_a_syntax_error_with_its_position() -> None:
    with pytest.raises(ConfigSyntaxError) as info:
        parse_config("[wire]\nport = = 3\n", source="c.toml")
    assert str(info.value).startswith("c.toml is not valid TOML: ")
    assert "line 2" in str(info.value)


def test_every_config_error_is_a_value_error() -> None:
    for cls in (ConfigKeyUnknownError, ConfigValueError, ConfigSyntaxError, ConfigNotFoundError):
        assert issubclass(cls, ConfigError) and issubclass(cls, ValueError)


def test_a_missing_config_file_says_how_to_create_a_home(tmp_path: Path) -> None:
    with pytest.raises(ConfigNotFoundError, match="storenode --home DIR init"):
        load_config(tmp_path / "config.toml")
    with pytest.raises(ConfigNotFoundError):
        open_home(tmp_path)


def test_writing_a_config_never_replaces_one_unless_asked(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    write_config(path, Config(listen_port=1))
    with pytest.raises(FileExistsError):
        write_config(path, Config(listen_port=2))
    assert load_config(path).listen_port == 1
    write_config(path, Config(listen_port=3), replace=True)
    assert load_config(path).listen_port == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.toml"]


# -- the home and its key file ------------------------------------------------------------------


def test_init_creates_a_private_key_a_data_dir_and_a_config(tmp_path: Path) -> None:
    old = os.umask(0)  # the key stays private whatever the umask
    try:
        home, wrote = init_home(tmp_path / "home", Config(listen_port=7555))
    finally:
        os.umask(old)
    assert wrote
    key_file = tmp_path / "home" / "identity.key"
    assert home.config.identity_file == key_file
    assert mode_of(key_file) == 0o600
    assert home.config.data_dir.is_dir()
    assert open_home(tmp_path / "home") == home
    assert home.config.listen_port == 7555
    assert read_key_file(key_file) == home.identity()
    assert len(key_file.read_text().strip()) == 64


def test_init_refuses_a_home_that_exists_and_keeps_its_key(tmp_path: Path) -> None:
    home, _ = init_home(tmp_path)
    before = home.identity()
    with pytest.raises(HomeExistsError):
        init_home(tmp_path)
    assert home.identity() == before


def test_init_adopts_a_key_made_before_the_config(tmp_path: Path) -> None:
    identity = Identity.generate()
    write_key_file(tmp_path / "identity.key", identity)
    home, wrote = init_home(tmp_path)
    assert not wrote
    assert home.identity() == identity


def test_a_key_file_is_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "k.key"
    first = Identity.generate()
    write_key_file(path, first)
    with pytest.raises(KeyFileExistsError):
        write_key_file(path, Identity.generate())
    assert read_key_file(path) == first


def test_bad_key_files_are_refused_with_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(KeyFileNotFoundError, match="wallet new"):
        read_key_file(tmp_path / "absent.key")
    for content, why in [(b"abc\n", "64 hex digits"), (b"zz" * 32, "not hex")]:
        path = tmp_path / f"bad-{why[:3]}.key"
        path.write_bytes(content)
        path.chmod(0o600)
        with pytest.raises(KeyFileInvalidError, match=why):
            read_key_file(path)
    shared = tmp_path / "shared.key"
    write_key_file(shared, Identity.generate())
    shared.chmod(0o644)
    with pytest.raises(KeyFilePermissionsError, match="chmod 600"):
        read_key_file(shared)


def test_a_node_announces_its_advertised_address_else_a_dialable_listen_address() -> None:
    assert Config(listen_host="127.0.0.1").public_host == "127.0.0.1"
    assert Config(listen_host="0.0.0.0").public_host is None
    assert Config(listen_host="0.0.0.0", advertise_host="203.0.113.7").public_host == (
        "203.0.113.7"
    )


def test_a_wildcard_cannot_be_advertised() -> None:
    with pytest.raises(ConfigValueError) as info:
        parse_config('[wire]\nadvertise = "0.0.0.0"\n')
    assert info.value.key == "wire.advertise"
