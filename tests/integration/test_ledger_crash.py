"""A validator killed with SIGKILL mid-block loses no committed block or transaction,
and the chain it leaves behind reopens, verifies from genesis, and continues."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from storenode.ledger import Chain, save_genesis
from storenode.testing.ledger import account, funded_genesis, transfer, validator

ROUNDS = 4


def run_writer(chain_dir: Path, genesis_file: Path, seed: int, kill_after: float) -> list[str]:
    """Start the writer, SIGKILL it after ``kill_after`` seconds; its complete lines."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "storenode.testing.ledger_writer",
            str(chain_dir),
            str(genesis_file),
            f"--seed={seed}",
        ],
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
    # A line cut by the kill has no newline: its block was not acknowledged.
    return out.splitlines()[: out.count("\n")]


@pytest.mark.slow
def test_killed_validator_loses_no_committed_block(tmp_path: Path) -> None:
    base = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(base)
    genesis = funded_genesis(12)
    genesis_file = tmp_path / "genesis.json"
    save_genesis(genesis, genesis_file)
    chain_dir = tmp_path / "chain"
    acknowledged: dict[int, tuple[str, list[str]]] = {}
    deadline = time.monotonic() + 15
    for round_ in range(ROUNDS):
        kill_after = rng.uniform(0.6, 1.6)
        context = f"base seed {base}, round {round_}, killed after {kill_after:.2f}s"
        for line in run_writer(chain_dir, genesis_file, base + round_, kill_after):
            _, number, block_hash, tx_ids = line.split()
            acknowledged[int(number)] = (block_hash, [] if tx_ids == "-" else tx_ids.split(","))

        with Chain.open(chain_dir, genesis) as chain:
            tip = chain.tip
            assert tip.height >= max(acknowledged, default=0), context
            for height, (digest, ids) in acknowledged.items():
                block = chain.store.block(height)
                assert block is not None and block.hash.hex() == digest, context
                for index, tid in enumerate(ids):
                    assert chain.store.tx_location(bytes.fromhex(tid)) == (height, index), context
            tip_block = chain.store.block(tip.height)
            assert tip_block is not None, context
            assert chain.state.root == tip_block.header.state_root == tip.state_root, context
            # The chain goes on: the validator produces the next block here.
            who = account(rng.randrange(12))
            chain.submit_tx(
                transfer(who, account(0).address, 1, chain.mempool.next_nonce(who.address))
            )
            applied = chain.produce_block(validator(0), tip.time + 1)
            assert applied.height == tip.height + 1 and len(applied.tx_ids) == 1, context
            acknowledged[applied.height] = (applied.hash.hex(), [applied.tx_ids[0].hex()])
        assert time.monotonic() < deadline, "the crash test is too slow"
    assert len(acknowledged) > ROUNDS, f"the writer never acknowledged a block (base seed {base})"

    # Every block of the crashed chain verifies from genesis in a fresh follower.
    with Chain.open(chain_dir, genesis) as chain, Chain.open(tmp_path / "f", genesis) as follower:
        for raw in chain.store.blocks_bytes(1, chain.height + 1):
            follower.verify_and_apply(raw, time.time())
        assert follower.tip == chain.tip and follower.state.root == chain.state.root
