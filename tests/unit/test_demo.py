"""`storenode demo`: the catalogue it writes, the round trip, and that it notices damage."""

from __future__ import annotations

import io
import random
import subprocess
import sys
import wave
from collections.abc import Iterator
from pathlib import Path

import plyvel
import pytest
from rich.console import Console

from storenode.coding.rs import ReedSolomon
from storenode.demo import Manifest, destroy_chunks, run_demo, store_work, verify_work
from storenode.store import LevelDBChunkStore
from storenode.store.leveldb import DATA_PREFIX
from storenode.testing.catalogue import (
    SAMPLE_RATE,
    synth_track,
    track_frames,
    track_seconds,
    write_catalogue,
)

CAPACITY = 1 << 30
SMALL_STRIPE = 64 << 10


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


# -- the round trip ----------------------------------------------------------------------


def test_demo_recovers_every_byte_and_exits_0(tmp_path: Path) -> None:
    console, out = _quiet()
    workdir = tmp_path / "demo"

    rc = run_demo(str(workdir), keep=True, seconds=1.0, tracks=2, random_mib=2, console=console)

    assert rc == 0, out.getvalue()
    text = out.getvalue()
    for name in ("track-01.wav", "track-02.wav", "random-2MiB.bin"):
        assert name in text
    assert "all 3 works verified" in text
    assert "✗" not in text
    for path, seconds in zip(
        sorted((workdir / "catalogue").glob("*.wav")), track_seconds(1.0, 2), strict=True
    ):
        with wave.open(str(path), "rb") as w:
            assert (w.getnchannels(), w.getframerate()) == (2, SAMPLE_RATE)
            assert w.getnframes() / w.getframerate() == pytest.approx(seconds)


def test_demo_removes_the_folder_it_made_unless_kept(tmp_path: Path) -> None:
    console, _ = _quiet()
    workdir = tmp_path / "demo"

    assert run_demo(str(workdir), keep=False, tracks=1, random_mib=0, console=console) == 0

    assert not workdir.exists()


def test_demo_in_an_existing_folder_leaves_other_files_alone(tmp_path: Path) -> None:
    console, _ = _quiet()
    (tmp_path / "notes.txt").write_text("mine")

    assert run_demo(str(tmp_path), keep=False, tracks=1, random_mib=0, console=console) == 0
    assert run_demo(str(tmp_path), keep=True, tracks=1, random_mib=0, console=console) == 0
    assert run_demo(str(tmp_path), keep=False, tracks=1, random_mib=0, console=console) == 0

    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_demo_refuses_a_folder_whose_store_it_did_not_write(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    console, _ = _quiet()
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "precious").write_text("data")

    assert run_demo(str(tmp_path), keep=False, tracks=1, random_mib=0, console=console) == 1

    assert "was not written by storenode demo" in capsys.readouterr().err
    assert (tmp_path / "store" / "precious").read_text() == "data"


def test_demo_rejects_impossible_coding_parameters(capsys: pytest.CaptureFixture[str]) -> None:
    console, _ = _quiet()

    assert run_demo(None, keep=False, k=8, n=4, console=console) == 1

    assert capsys.readouterr().err.startswith("storenode demo: ")


# -- noticing damage ----------------------------------------------------------------------


@pytest.fixture
def stored_work(tmp_path: Path) -> Iterator[tuple[Path, Path, Manifest]]:
    """A 200 KiB work coded into a LevelDB store with n-k chunks of every stripe destroyed.

    Yields (the original file, the store's path, the manifest); the store is closed.
    """
    original = tmp_path / "work.bin"
    original.write_bytes(random.Random(1).randbytes(200 << 10))
    store_path = tmp_path / "store"
    with LevelDBChunkStore(store_path, capacity=CAPACITY) as store:
        manifest = store_work(
            original, store, ReedSolomon(4, 12), stripe_size=SMALL_STRIPE
        ).manifest
        destroy_chunks(store, manifest, random.Random(5))
    yield original, store_path, manifest


def _survivors(store_path: Path, manifest: Manifest, stripe: int) -> list[bytes]:
    with LevelDBChunkStore(store_path, capacity=CAPACITY) as store:
        return [c for c in manifest.stripes[stripe].chunk_ids if store.has(c)]


def _verify(store_path: Path, manifest: Manifest, original: Path) -> tuple[bool, str | None]:
    with LevelDBChunkStore(store_path, capacity=CAPACITY) as store:
        v = verify_work(store, manifest, original)
    return v.ok, v.problem


def test_intact_survivors_decode_to_the_original(
    stored_work: tuple[Path, Path, Manifest],
) -> None:
    original, store_path, manifest = stored_work

    assert len(manifest.stripes) == 4
    assert all(len(_survivors(store_path, manifest, s)) == 4 for s in range(4))
    assert _verify(store_path, manifest, original) == (True, None)


def test_a_surviving_chunk_corrupted_on_disk_fails_verification(
    stored_work: tuple[Path, Path, Manifest],
) -> None:
    original, store_path, manifest = stored_work
    victim = _survivors(store_path, manifest, 2)[0]
    db = plyvel.DB(str(store_path))
    key = DATA_PREFIX + victim
    data = bytearray(db.get(key))
    data[100] ^= 0x01
    db.put(key, bytes(data), sync=True)
    db.close()

    ok, problem = _verify(store_path, manifest, original)

    assert not ok
    assert problem is not None
    assert "stripe 2" in problem
    assert "corrupt" in problem
    assert victim.hex()[:16] in problem


def test_losing_more_than_n_minus_k_chunks_fails_verification(
    stored_work: tuple[Path, Path, Manifest],
) -> None:
    original, store_path, manifest = stored_work
    victim = _survivors(store_path, manifest, 3)[-1]
    with LevelDBChunkStore(store_path, capacity=CAPACITY) as store:
        assert store.delete(victim)

    ok, problem = _verify(store_path, manifest, original)

    assert not ok
    assert problem == "stripe 3: 3 intact chunks left, k=4 needed"


def test_a_changed_original_file_fails_verification(
    stored_work: tuple[Path, Path, Manifest],
) -> None:
    original, store_path, manifest = stored_work
    data = bytearray(original.read_bytes())
    data[123_456] ^= 0xFF
    original.write_bytes(bytes(data))

    ok, problem = _verify(store_path, manifest, original)

    assert not ok
    assert problem == "byte 123456 differs from the original file"


# -- the command ------------------------------------------------------------------------


def test_storenode_demo_command_verifies_the_catalogue(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"

    done = subprocess.run(
        [sys.executable, "-m", "storenode.cli", "demo", "--dir", str(workdir)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    for name in ("track-01.wav", "track-02.wav", "track-03.wav", "random-24MiB.bin"):
        assert name in done.stdout
    assert "all 4 works verified" in done.stdout
    assert not workdir.exists()
