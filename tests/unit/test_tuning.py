"""storenode.tuning: glibc's malloc thresholds, found without a library search."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from storenode import files
from storenode.tuning import tune_allocator

glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only")


@glibc
def test_the_malloc_thresholds_are_set_on_glibc() -> None:
    assert tune_allocator() is True
    assert tune_allocator() is True  # once per process; a second call is a no-op


@glibc
def test_writeback_is_started_through_libc_on_linux() -> None:
    assert files._sync_file_range() is not None


def test_a_thin_command_imports_no_library_search() -> None:
    """ctypes.util (and the shutil and subprocess it pulls in) cost every command
    ~6 ms; neither the tuning nor the file helpers need it."""
    code = (
        "import sys, storenode.tuning as t, storenode.files as f;"
        "t.tune_allocator(); f._sync_file_range();"
        "print('ctypes.util' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30
    )
    assert out.stdout.strip() == "False"
