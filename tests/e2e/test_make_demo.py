"""``storenode demo`` (what ``make demo`` runs) passes its checks and stops every node."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from storenode.localnet.processes import is_running

pytestmark = pytest.mark.slow


def test_the_demo_passes_every_check_and_leaves_no_node_running(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    done = subprocess.run(
        [sys.executable, "-m", "storenode.cli", "demo", "--hosts", "6", "--dir", str(folder)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=170,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    for step in ("localnet up", "published 3 works", "every byte matches", "206", "killed 3 hosts"):
        assert step in out, f"{step!r} is not narrated:\n{out}"
    assert "every check passed" in out
    rows = [line for line in out.splitlines() if line.startswith("│ node-")]
    assert len(rows) == 6
    assert sum("killed" in row for row in rows) == 3
    record = json.loads((folder / "localnet" / "localnet.json").read_text())
    assert not any(is_running(n["pid"], Path(n["home"])) for n in record["nodes"])
