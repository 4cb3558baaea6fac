"""storenode.files: syncing a directory, starting writeback early, reading past the
page cache."""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import mmap
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storenode.files import (
    DirectReadUnsupportedError,
    drop_cache,
    read_direct,
    start_writeback,
    sync_dir,
)


def test_writeback_started_as_a_file_grows_leaves_its_bytes_as_written(tmp_path: Path) -> None:
    path = tmp_path / "out.bin"
    pieces = [bytes([i]) * 300_000 for i in range(8)]
    with path.open("wb") as f:
        for piece in pieces:
            f.write(piece)
            f.flush()
            start_writeback(f.fileno())
        os.fdatasync(f.fileno())
    assert path.read_bytes() == b"".join(pieces)


def test_writeback_of_a_descriptor_that_is_not_a_file_is_left_to_the_final_sync() -> None:
    read_end, write_end = os.pipe()
    try:
        start_writeback(write_end)  # EINVAL/ESPIPE from the kernel: ignored, not raised
    finally:
        os.close(read_end)
        os.close(write_end)


def test_a_directory_is_synced_and_a_missing_one_is_an_error(tmp_path: Path) -> None:
    sync_dir(tmp_path)
    with pytest.raises(FileNotFoundError):
        sync_dir(tmp_path / "absent")


def _cached(path: Path) -> bool:
    """Whether the page cache holds all of ``path``, asked with ``mincore`` (a
    ``read_if_cached`` that misses starts readahead, which would fill it)."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    size = path.stat().st_size
    pages = -(-size // _PAGE)
    vector = (ctypes.c_ubyte * pages)()
    # A private mapping, never written: its pages are the page cache's own, and
    # mapping them faults none in.
    with path.open("rb") as f, mmap.mmap(f.fileno(), size, access=mmap.ACCESS_COPY) as m:
        start = (ctypes.c_char * size).from_buffer(m)
        try:
            if libc.mincore(ctypes.byref(start), ctypes.c_size_t(size), vector) != 0:
                raise OSError(ctypes.get_errno(), "mincore")
        finally:
            del start
    return all(v & 1 for v in vector)


def _direct_reads_work(path: Path) -> bool:
    path.write_bytes(b"probe")
    try:
        read_direct(path)
    except DirectReadUnsupportedError:
        return False
    return True


@pytest.fixture
def direct_dir(tmp_path: Path) -> Path:
    if not _direct_reads_work(tmp_path / "probe"):
        pytest.skip(f"{tmp_path}'s file system cannot read with O_DIRECT")
    return tmp_path


_PAGE = mmap.PAGESIZE


@settings(max_examples=40, deadline=None)
@given(
    size=st.one_of(
        st.sampled_from([0, 1, _PAGE - 1, _PAGE, _PAGE + 1, 2 * _PAGE, 349_184]),
        st.integers(0, 5 * _PAGE),
    )
)
def test_a_direct_read_gives_the_files_bytes_at_any_size(
    tmp_path_factory: pytest.TempPathFactory, size: int
) -> None:
    folder = tmp_path_factory.mktemp("d")
    if not _direct_reads_work(folder / "probe"):
        pytest.skip("no O_DIRECT here")
    path = folder / "f"
    data = os.urandom(size)
    path.write_bytes(data)
    assert read_direct(path) == data  # dirty pages: the kernel writes them back first


def test_a_direct_read_leaves_the_page_cache_as_it_found_it(direct_dir: Path) -> None:
    warm, cold = direct_dir / "warm", direct_dir / "cold"
    for path in (warm, cold):
        path.write_bytes(os.urandom(300_000))
        with path.open("rb") as f:
            os.fsync(f.fileno())
    with cold.open("rb") as f:
        drop_cache(f.fileno())
    warm.read_bytes()
    assert _cached(warm) and not _cached(cold)
    assert len(read_direct(warm)) == len(read_direct(cold)) == 300_000
    assert _cached(warm), "the read evicted pages a reader had cached"
    assert not _cached(cold), "the read filled the page cache"


def test_a_direct_read_of_a_missing_file_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_direct(tmp_path / "absent")


def test_a_file_system_without_direct_reads_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * 100)
    real_open = os.open

    def refusing_open(p: object, flags: int, *args: object) -> int:
        if flags & getattr(os, "O_DIRECT", 0):
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_open(p, flags, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", refusing_open)
    with pytest.raises(DirectReadUnsupportedError):
        read_direct(path)
