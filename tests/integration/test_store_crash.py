"""A writer killed with SIGKILL mid-write loses no acknowledged chunk and no byte of accounting."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from storenode.coding.merkle import merkle_root
from storenode.store import DiskChunkStore
from storenode.testing.store_writer import chunk_bytes

ROUNDS = 4
CAPACITY = 1 << 40
# put_many writes at most this many chunks at once: the ones that may be in flight.
MAX_IN_FLIGHT = 4


def run_writer(path: Path, seed: int, kill_after: float) -> tuple[list[str], str]:
    """Start the writer, SIGKILL it after ``kill_after`` seconds; its complete lines and stderr."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "storenode.testing.store_writer", str(path), f"--seed={seed}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        try:
            out, err = proc.communicate(timeout=kill_after)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            out, err = proc.communicate(timeout=10)
        else:
            pytest.fail(f"the writer stopped by itself ({proc.returncode}):\n{err}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL, err
    # A line cut by the kill has no newline: it was never acknowledged.
    return out.splitlines()[: out.count("\n")], err


@pytest.mark.slow
def test_killed_writer_loses_no_acknowledged_chunk(tmp_path: Path) -> None:
    base = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(base)
    path = tmp_path / "store"
    must_hold: dict[bytes, bytes] = {}  # acknowledged, not deleted since
    may_hold: set[bytes] = set()  # put or delete in flight at a kill
    acknowledged = 0
    for round_ in range(ROUNDS):
        seed = base * ROUNDS + round_
        kill_after = rng.uniform(0.2, 1.5)
        context = f"base seed {base}, round {round_}, killed after {kill_after:.2f}s"
        lines, _ = run_writer(path, seed, kill_after)

        stored: dict[int, bytes] = {}
        last = -1
        for line in lines:
            kind, n, *rest = line.split()
            k = int(n)
            if kind == "P":
                data = chunk_bytes(seed, k)
                assert rest == [merkle_root(data).hex()], context
                stored[k] = data
                must_hold[merkle_root(data)] = data
                last = max(last, k)
                acknowledged += 1
            elif kind == "d":  # a delete begins: until "D" the chunk may or may not be held
                may_hold.add(merkle_root(stored[k]))
                must_hold.pop(merkle_root(stored[k]))
            else:
                may_hold.discard(merkle_root(stored[k]))
        # The kill may have caught a put of the next few chunks half done.
        in_flight = range(last + 1, last + 1 + MAX_IN_FLIGHT)
        may_hold.update(merkle_root(chunk_bytes(seed, k)) for k in in_flight)

        with DiskChunkStore(path, capacity=CAPACITY) as store:
            present = set(store.ids())
            missing = set(must_hold) - present
            assert not missing, f"{len(missing)} acknowledged chunks lost ({context})"
            assert present <= set(must_hold) | may_hold, f"unknown chunks appeared ({context})"
            sizes = 0
            for cid in present:
                data = store.get(cid)
                if cid in must_hold:
                    assert data == must_hold[cid], context
                sizes += len(data)
            assert store.used_bytes == sizes, context
            assert store.chunk_count == len(present), context
            report = store.scrub()
            assert report.corrupt == (), context
            assert report.accounting_ok, context
            # What survived in flight is now simply held.
            must_hold.update((cid, store.get(cid)) for cid in present - set(must_hold))
            may_hold.clear()
    assert acknowledged > 0, f"the writer never acknowledged a put (base seed {base})"
