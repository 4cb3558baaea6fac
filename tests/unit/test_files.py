"""storenode.files: syncing a directory, starting writeback early."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from storenode.files import start_writeback, sync_dir


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
