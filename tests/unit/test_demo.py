"""`storenode demo`: the catalogue it writes, the figures it shows per host, and
the checks that decide its exit status (the run itself is in tests/e2e)."""

from __future__ import annotations

import io
import wave
from pathlib import Path

from rich.console import Console

from contracts import tokens
from storenode.demo import (
    host_figures,
    host_table,
    rate,
    run_demo,
    short_tokens,
    window_problems,
)
from storenode.ledger.messages import AccountInfo, ContractSummary
from storenode.testing.catalogue import (
    SAMPLE_RATE,
    synth_track,
    track_frames,
    track_seconds,
    write_catalogue,
)


def _quiet() -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, width=160, color_system=None), buf


# -- the catalogue ---------------------------------------------------------------------


def test_catalogue_writes_stereo_cd_quality_tracks_of_the_promised_length(tmp_path: Path) -> None:
    paths = write_catalogue(tmp_path, seconds=1.0, tracks=3, random_mib=1)

    tracks = [p for p in paths if p.suffix == ".wav"]
    assert len(tracks) == 3
    for path, seconds in zip(tracks, track_seconds(1.0, 3), strict=True):
        with wave.open(str(path), "rb") as w:
            assert w.getnchannels() == 2
            assert w.getframerate() == SAMPLE_RATE
            assert w.getsampwidth() == 2
            assert w.getnframes() == track_frames(seconds)
    assert paths[-1].stat().st_size == 1 << 20


def test_catalogue_is_the_same_for_the_same_seed(tmp_path: Path) -> None:
    a = write_catalogue(tmp_path / "a", seconds=0.5, tracks=2, random_mib=1, seed=3)
    b = write_catalogue(tmp_path / "b", seconds=0.5, tracks=2, random_mib=1, seed=3)
    c = write_catalogue(tmp_path / "c", seconds=0.5, tracks=2, random_mib=1, seed=4)

    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]
    assert all(x.read_bytes() != y.read_bytes() for x, y in zip(a, c, strict=True))


def test_a_track_is_music_not_silence() -> None:
    raw = synth_track(1.0, seed=1)
    with wave.open(io.BytesIO(raw), "rb") as w:
        frames = w.readframes(w.getnframes())
    samples = memoryview(frames).cast("h")
    peak = max(abs(s) for s in samples)
    assert 20_000 < peak <= 32_767  # normalized near full scale, never clipped


# -- the figures per host ----------------------------------------------------------------

ADDRESS = b"\x11" * 20


def _account(*, proven: int, missed: int, burned: int, reputation: int) -> AccountInfo:
    return AccountInfo(
        address=ADDRESS,
        height=40,
        balance=str(tokens(10_000)),
        nonce=3,
        next_nonce=3,
        burned=str(burned),
        reputation=str(reputation),
        windows_proven=proven,
        windows_missed=missed,
    )


def _contract(*, chunks: int, price: int, proven: int, missed: int, status: str) -> ContractSummary:
    return ContractSummary(
        contract_id=b"\x22" * 32,
        publisher=b"\x33" * 20,
        host=ADDRESS,
        status=status,  # type: ignore[arg-type]
        root=b"\x44" * 32,
        chunk_count=chunks,
        chunk_size=1 << 16,
        price_per_window=str(price),
        windows=100,
        window_blocks=5,
        window=proven + missed,
        windows_proven=proven,
        windows_missed=missed,
        escrow=str(price * (100 - proven - missed)),
        collateral=str(price * 50),
        revision=0,
        opened_height=10,
    )


def test_a_host_earned_the_installments_of_its_proven_windows_less_the_burn() -> None:
    contracts = [
        _contract(chunks=4, price=1_000, proven=3, missed=1, status="active"),
        _contract(chunks=2, price=500, proven=2, missed=0, status="active"),
        _contract(chunks=9, price=700, proven=1, missed=0, status="closed"),
    ]
    burned = 3 * 20 + 2 * 10 + 14  # 2% of each installment, rounded up
    figures = host_figures(
        "node-1",
        killed=False,
        account=_account(proven=6, missed=1, burned=burned, reputation=77),
        contracts=contracts,
    )

    assert figures.earned == 3 * 1_000 + 2 * 500 + 700 - burned
    assert figures.burned == burned
    assert figures.chunks == 6  # the closed contract's chunks are no longer kept
    assert (figures.proven, figures.missed, figures.reputation) == (6, 1, 77)


def test_the_table_shows_each_host_state_and_its_windows() -> None:
    rows = [
        host_figures(
            "node-1",
            killed=False,
            account=_account(proven=5, missed=0, burned=10, reputation=9),
            contracts=[_contract(chunks=3, price=500, proven=5, missed=0, status="active")],
        ),
        host_figures(
            "node-2",
            killed=True,
            account=_account(proven=1, missed=4, burned=2, reputation=1),
            contracts=[_contract(chunks=3, price=500, proven=1, missed=4, status="active")],
        ),
    ]
    console, out = _quiet()
    console.print(host_table(rows))

    rows_text = {}
    for line in out.getvalue().splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if cells and cells[0].startswith("node-"):
            rows_text[cells[0]] = cells[1:5]
    # state, chunks, proven, missed
    assert rows_text == {"node-1": ["running", "3", "5", "0"], "node-2": ["killed", "3", "1", "4"]}


def test_running_hosts_must_prove_and_killed_hosts_must_miss() -> None:
    before = {"node-1": (3, 0), "node-2": (3, 1), "node-3": (2, 0)}
    good = {"node-1": (5, 0), "node-2": (4, 1), "node-3": (2, 3)}
    assert window_problems(before, good, {"node-3"}) == []

    bad = {"node-1": (3, 0), "node-2": (5, 2), "node-3": (4, 0)}
    assert window_problems(before, bad, {"node-3"}) == [
        "node-1 runs but proved no window",
        "node-2 runs but missed 1 windows",
        "node-3 was killed but missed no window",
    ]


def test_amounts_in_the_table_are_tokens_to_four_decimals_without_a_float() -> None:
    assert short_tokens(tokens(1) // 8) == "0.1250"
    assert short_tokens(1) == "0.0000"
    assert short_tokens(5 * 10**13) == "0.0001"  # half up
    assert short_tokens(2**256 - 1) == f"{(2**256 - 1) // 10**18}.5840"


def test_rates_are_megabytes_per_second() -> None:
    assert rate(25_000_000, 2.0) == "12.5 MB/s"
    assert rate(1, 0.0).endswith("MB/s")  # no division by zero


def test_a_demo_that_cannot_survive_its_kills_is_refused_before_starting(
    tmp_path: Path,
) -> None:
    console, out = _quiet()
    assert run_demo(tmp_path / "demo", hosts=5, console=console) == 2
    assert "at least 6 hosts" in out.getvalue()
    assert not (tmp_path / "demo").exists()
