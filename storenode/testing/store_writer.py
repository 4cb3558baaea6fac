"""A process that writes to a LevelDB chunk store until it is killed (the crash test's victim).

Run as ``python -m storenode.testing.store_writer PATH --seed S``. It puts
chunks (alone or several in one ``put_many``), reads back and deletes some, and
prints one line per operation, flushed, only after the operation returned::

    P <n> <chunk id hex>      chunk n (see :func:`chunk_bytes`) is stored
    d <n>                     chunk n is about to be deleted (printed before the delete)
    D <n>                     chunk n is deleted

A read that returns wrong bytes exits with status 3. The writer never stops by
itself; the test kills it.
"""

from __future__ import annotations

import argparse
import random
import sys

from storenode.coding.merkle import merkle_root
from storenode.store.disk import DiskChunkStore

MAX_CHUNK = 200_000
_EDGE_SIZES = (16, 1023, 1024, 1025, 4096, 65_536)


def chunk_bytes(seed: int, n: int) -> bytes:
    """Chunk ``n`` of the run with ``seed``: 16 header bytes (seed, n) then random bytes.

    The header makes every chunk of every run distinct, so no two share an id.
    """
    rng = random.Random(seed * 1_000_003 + n)
    size = rng.choice(_EDGE_SIZES) if rng.random() < 0.3 else rng.randrange(16, MAX_CHUNK)
    return seed.to_bytes(8, "big") + n.to_bytes(8, "big") + rng.randbytes(size - 16)


def run(path: str, seed: int, capacity: int) -> None:
    rng = random.Random(seed)
    ids: dict[int, bytes] = {}
    held: list[int] = []
    n = 0
    out = sys.stdout
    with DiskChunkStore(path, capacity=capacity) as store:
        while True:
            roll = rng.random()
            if roll < 0.15 and held:
                k = rng.choice(held)
                if store.get(ids[k]) != chunk_bytes(seed, k):
                    print(f"chunk {k} read back wrong", file=sys.stderr, flush=True)
                    sys.exit(3)
            elif roll < 0.25 and held:
                k = held.pop(rng.randrange(len(held)))
                out.write(f"d {k}\n")
                out.flush()
                store.delete(ids[k])
                out.write(f"D {k}\n")
                out.flush()
            else:
                batch = range(n, n + (rng.randint(2, 4) if roll > 0.8 else 1))
                chunks = [(merkle_root(c), c) for c in (chunk_bytes(seed, k) for k in batch)]
                if len(chunks) == 1:
                    store.put(*chunks[0])
                else:
                    store.put_many(chunks)
                for k, (chunk_id, _) in zip(batch, chunks, strict=True):
                    ids[k] = chunk_id
                    held.append(k)
                out.write("".join(f"P {k} {ids[k].hex()}\n" for k in batch))
                out.flush()
                n = batch[-1] + 1


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("path")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--capacity", type=int, default=1 << 40)
    args = parser.parse_args(argv)
    run(args.path, args.seed, args.capacity)


if __name__ == "__main__":
    main()
