"""`storenode bench ledger --json` as a user runs it: one JSON object with every figure."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_bench_ledger_prints_every_figure_as_one_json_object() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "storenode.cli", "bench", "ledger", "--json", "--quick"],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 1, "--json prints exactly one line"
    result = json.loads(lines[0])
    for key in (
        "transfers_per_s",
        "block_apply_ms_1000_transfers",
        "proofs_verified_per_s",
        "block_apply_ms_1000_proofs",
    ):
        assert isinstance(result[key], float) and result[key] > 0, key
    assert set(result["targets_met"]) == {"transfers_per_s", "proofs_verified_per_s"}
