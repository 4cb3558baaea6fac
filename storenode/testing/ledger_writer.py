"""A validator that produces blocks until it is killed (the ledger crash test's victim).

Run as ``python -m storenode.testing.ledger_writer CHAIN_DIR GENESIS_JSON --seed S``.
It opens (or creates) the chain, then loops: submits a few signed transfers
between the genesis accounts to the mempool and produces the next block with
``validator(0)`` (:mod:`storenode.testing.ledger`), each block one second
after the last. After ``produce_block``
returned (the block is durable) it prints one line, flushed::

    B <height> <block hash hex> <tx id hex>,<tx id hex>,...   ("-" for no transaction)

It never stops by itself; the test kills it.
"""

from __future__ import annotations

import argparse
import random
import sys

from storenode.ledger import Chain, load_genesis
from storenode.testing.ledger import account, transfer, validator


def run(path: str, genesis_path: str, seed: int) -> None:
    genesis = load_genesis(genesis_path)
    rng = random.Random(seed)
    accounts = [account(i) for i in range(len(genesis.allocations))]
    producer = validator(0)
    out = sys.stdout
    with Chain.open(path, genesis) as chain:
        while True:
            for who in rng.sample(accounts, rng.randint(0, 8)):
                to = rng.choice(accounts).address
                nonce = chain.mempool.next_nonce(who.address)
                chain.submit_tx(transfer(who, to, rng.randrange(1, 10**15), nonce))
            # A logical clock, one second a block: the writer produces far faster
            # than a real validator, whose blocks would otherwise run ahead of time.
            applied = chain.produce_block(producer, chain.tip.time + 1)
            ids = ",".join(tid.hex() for tid in applied.tx_ids) or "-"
            out.write(f"B {applied.height} {applied.hash.hex()} {ids}\n")
            out.flush()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("path")
    parser.add_argument("genesis")
    parser.add_argument("--seed", type=int, required=True)
    args = parser.parse_args(argv)
    run(args.path, args.genesis, args.seed)


if __name__ == "__main__":
    main()
