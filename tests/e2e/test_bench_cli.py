"""`storenode bench ... --json` as a user runs it: one JSON object with every key."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

CODING_KEYS = {
    "backend",
    "rs_encode_MBps",
    "rs_decode_MBps",
    "zfec_encode_MBps",
    "rlnc_decode_MBps",
    "rlnc_recode_MBps",
    "merkle_root_MBps",
    "merkle_verify_us",
    "store_put_MBps",
    "store_get_MBps",
}


def run_bench(*args: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-m", "storenode.cli", "bench", *args, "--json", "--quick"],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 1, "--json prints exactly one line"
    result = json.loads(lines[0])
    assert isinstance(result, dict)
    return result


def test_bench_coding_prints_every_figure_as_one_json_object() -> None:
    result = run_bench("coding")
    assert result.keys() >= CODING_KEYS
    for key in CODING_KEYS - {"backend"}:
        value = result[key]
        assert isinstance(value, float) and value > 0, key


def test_bench_wire_prints_encrypted_and_plain_throughput() -> None:
    result = run_bench("wire")
    for key in ("encrypted_MBps", "plain_MBps"):
        value = result[key]
        assert isinstance(value, float) and value > 0, key
