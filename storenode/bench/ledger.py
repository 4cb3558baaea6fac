"""``storenode bench ledger``: a follower verifying and applying blocks, on one core.

A producer (this process) builds a chain in a temporary LevelDB directory:
signed transactions go through the mempool (``Chain.submit_tx``) and into
blocks (``Chain.produce_block``), as on a validator. Then a **fresh follower**
(a new process pinned to the same core, with an empty chain store and cold
caches: no key seen, nothing in its mempool) reads those blocks' bytes and
runs ``Chain.verify_and_apply`` on each, as a node syncing from a peer: decode,
header checks, the producer's signature, every transaction's signature,
re-execution, the state root, and the durable write batch (``sync=True``).
Only the follower is timed.

Keys of ``--json`` (see docs/benchmarks.md):

==========================  ======================================================
transfers_per_s             blocks of 1,000 signed transfers from 2,000 accounts:
                            transfers verified and applied per second, including
                            the LevelDB writes
block_apply_ms_1000_transfers  median time to verify and apply one such block
proofs_verified_per_s       blocks of 1,000 storage proofs (``SubmitProof`` of
                            a 1 KiB segment with its path through a 256 KiB
                            chunk and a 64-chunk contract), each from its host:
                            proofs verified and applied per second
block_apply_ms_1000_proofs  median time to verify and apply one such block
==========================  ======================================================

The setup blocks of the proof chain (3,000 contracts opened) are applied by
the follower too, untimed.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from contracts import tokens
from storenode.bench.report import Targets, emit, pin_one_core, print_table, targets_met
from storenode.identity import Identity
from storenode.ledger import Chain, Genesis, load_genesis, make_genesis, save_genesis
from storenode.testing.ledger import (
    CHAIN_ID,
    GENESIS_TIME,
    StoredData,
    account,
    funded_genesis,
    open_contract,
    signed,
    transfer,
    validator,
)

TARGETS: Targets = {
    "transfers_per_s": ("≥ 2000", lambda r: r["transfers_per_s"] >= 2000),
    "proofs_verified_per_s": ("≥ 1000", lambda r: r["proofs_verified_per_s"] >= 1000),
}

PER_BLOCK = 1000
TRANSFER_ACCOUNTS = 2000
HOSTS = 100
PUBLISHERS = 100
CHUNKS, CHUNK_SIZE = 64, 256 * 1024
WINDOW_BLOCKS = 20


class _Producer:
    """A single-validator chain that turns batches of transactions into blocks."""

    def __init__(self, path: Path, genesis: Genesis) -> None:
        self.genesis = genesis
        self.validator = validator(0)
        self.chain = Chain.open(path, genesis)

    def block(self, raws: list[bytes]) -> int:
        for raw in raws:
            self.chain.submit_tx(raw)
        applied = self.chain.produce_block(self.validator, self.chain.tip.time + 5)
        assert len(applied.block.transactions) == len(raws), applied.dropped
        return applied.height


def _transfer_chain(path: Path, blocks: int, per_block: int, accounts: int) -> int:
    """Blocks 1..blocks of transfers; returns the first height to time (1)."""
    genesis = funded_genesis(accounts)
    save_genesis(genesis, path / "genesis.json")
    rng = random.Random(1)
    ids = [account(i) for i in range(accounts)]
    nonces = [0] * accounts
    producer = _Producer(path / "chain", genesis)
    for b in range(blocks):
        raws = []
        for k in range(per_block):
            i = (b * per_block + k) % accounts
            to = ids[rng.randrange(accounts)].address
            raws.append(transfer(ids[i], to, rng.randrange(1, 10**18), nonces[i]))
            nonces[i] += 1
        producer.block(raws)
    producer.chain.close()
    return 1


def _proof_chain(path: Path, blocks: int, per_block: int) -> int:
    """Contracts opened in ``blocks`` blocks, one empty block, then ``blocks``
    blocks of proofs; returns the first height to time."""
    hosts = [account(1000 + i) for i in range(HOSTS)]
    publishers = [account(i) for i in range(PUBLISHERS)]
    balance = tokens(1_000_000)
    genesis = make_genesis(
        CHAIN_ID,
        [validator(0).public_key],
        {who.address: balance for who in hosts + publishers},
        time=GENESIS_TIME,
        min_window_blocks=2,
        window_blocks=WINDOW_BLOCKS,
    )
    save_genesis(genesis, path / "genesis.json")
    rng = random.Random(2)
    data = StoredData([rng.randbytes(CHUNK_SIZE) for _ in range(CHUNKS)])
    producer = _Producer(path / "chain", genesis)
    nonce: dict[bytes, int] = {}

    def next_nonce(who: Identity) -> int:
        n = nonce.get(who.address, 0)
        nonce[who.address] = n + 1
        return n

    contracts: list[tuple[bytes, Identity]] = []
    for b in range(blocks):
        raws = []
        for k in range(per_block):
            c = b * per_block + k
            host = hosts[c % HOSTS]  # each host and publisher: 10 per 1,000
            publisher = publishers[(c + c // HOSTS) % PUBLISHERS]
            terms = data.terms(
                publisher,
                host,
                price=tokens(1),
                windows=2,
                window_blocks=WINDOW_BLOCKS,
                collateral=tokens(1),
                salt=c,
            )
            cid, raw = open_contract(publisher, host, terms, next_nonce(publisher))
            contracts.append((cid, host))
            raws.append(raw)
        producer.block(raws)
    first = producer.block([]) + 1  # every window is open after this block
    state = producer.chain.state
    for b in range(blocks):
        batch = contracts[b * per_block : (b + 1) * per_block]
        producer.block(
            [signed(host, data.proof_body(state, cid), next_nonce(host)) for cid, host in batch]
        )
    producer.chain.close()
    return first


def follow(path: str, first_timed: int) -> dict[str, Any]:
    """Run in a fresh process: apply every block of the chain at ``path`` to a
    new chain store; per timed block, its seconds and transaction count."""
    genesis = load_genesis(Path(path) / "genesis.json")
    source = Chain.open(Path(path) / "chain", genesis, create=False)
    blocks = list(source.store.blocks_bytes(1, source.height + 1))
    source.close()
    seconds, counts = [], []
    with Chain.open(Path(path) / "follower", genesis) as chain:
        for height, raw in enumerate(blocks, start=1):
            now = chain.tip.time + 10
            start = time.perf_counter()
            applied = chain.verify_and_apply(raw, now)
            elapsed = time.perf_counter() - start
            if height >= first_timed:
                seconds.append(elapsed)
                counts.append(len(applied.block.transactions))
    return {"seconds": seconds, "counts": counts}


def _follow_in_fresh_process(path: Path, first_timed: int) -> dict[str, Any]:
    code = (
        "import json, os\n"
        f"os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))!r})\n"
        "from storenode.bench.ledger import follow\n"
        f"print(json.dumps(follow({str(path)!r}, {first_timed})))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=600
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _figures(timing: dict[str, Any]) -> tuple[float, float]:
    """(transactions per second over all timed blocks, median ms per block)."""
    seconds, counts = timing["seconds"], timing["counts"]
    return sum(counts) / sum(seconds), statistics.median(seconds) * 1000


def run(quick: bool = False) -> dict[str, Any]:
    pinned = pin_one_core()
    blocks = 1 if quick else 5
    proof_blocks = 1 if quick else 3
    per_block = 200 if quick else PER_BLOCK
    tmp = Path(tempfile.mkdtemp(prefix="storenode-bench-ledger-"))
    try:
        (tmp / "transfers").mkdir()
        first = _transfer_chain(tmp / "transfers", blocks, per_block, TRANSFER_ACCOUNTS)
        transfers = _follow_in_fresh_process(tmp / "transfers", first)
        (tmp / "proofs").mkdir()
        first = _proof_chain(tmp / "proofs", proof_blocks, per_block)
        proofs = _follow_in_fresh_process(tmp / "proofs", first)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    transfers_per_s, transfer_ms = _figures(transfers)
    proofs_per_s, proof_ms = _figures(proofs)
    result: dict[str, Any] = {
        "pinned": pinned,
        "txs_per_block": per_block,
        "transfers_per_s": transfers_per_s,
        "block_apply_ms_1000_transfers": transfer_ms * PER_BLOCK / per_block,
        "proofs_verified_per_s": proofs_per_s,
        "block_apply_ms_1000_proofs": proof_ms * PER_BLOCK / per_block,
    }
    result["targets_met"] = targets_met(result, TARGETS)
    return result


def _print_table(r: dict[str, Any]) -> None:
    rows = [
        ("signed transfers verified and applied", "transfers_per_s", "/s"),
        ("one block of 1,000 transfers", "block_apply_ms_1000_transfers", "ms"),
        ("storage proofs verified and applied", "proofs_verified_per_s", "/s"),
        ("one block of 1,000 proofs", "block_apply_ms_1000_proofs", "ms"),
    ]
    print_table(
        f"storenode bench ledger — a fresh follower, one core ({r['pinned']})", rows, r, TARGETS
    )


def main(json_out: bool = False, quick: bool = False) -> int:
    return emit(run(quick=quick), json_out, _print_table)
