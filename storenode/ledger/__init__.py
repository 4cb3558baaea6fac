"""The ledger every node runs: blocks, the chain store, the mempool, block
production and verification. Sans-IO and synchronous (no trio, no clock:
``now`` is an argument); the contracts it executes are :mod:`contracts`.
Spec: docs/specs/ledger.md, "Blocks and chain".

**A node** opens its chain (created at the genesis when the directory is empty)::

    genesis = load_genesis("genesis.json")          # or make_genesis(...)
    chain = Chain.open(data_dir / "chain", genesis)  # ChainStore + Mempool

**Transactions** from a wallet or a peer (gossip only what was admitted)::

    vtx = chain.submit_tx(raw)        # TxRejectedError(.reason) at the door

**The producer loop** (every ``genesis.block_time`` seconds)::

    if chain.next_proposer() == identity.public_key:
        applied = chain.produce_block(identity, now)   # durable when it returns
        gossip(encode_block(applied.block)); act_on(applied.events)

**A follower** (blocks from gossip or sync)::

    try:
        applied = chain.verify_and_apply(raw_block, now)   # durable when it returns
    except BlockNotNextError as e:   # e.ahead: sync heights tip+1 .. e.height first
    except BlockInvalidError as e:   # e.reason; nothing changed; score the peer down
    act_on(applied.events)           # apply, then act: e.g. WindowOpened -> prove

**Serving sync**: ``chain.store.blocks_bytes(start, stop)`` (stored bytes, as
they go on the wire), ``chain.store.block(h)``, ``chain.store.height_of(hash)``,
``chain.store.transaction(tx_id)``; **queries** are the contracts' functions
on ``chain.state`` (``balance_of(chain.state, address)``, ``challenge_of``, …).

**API**::

    Chain.open(path, genesis, *, create=True, mempool_limits=None, max_future_s=15,
               indexers=()) -> Chain
    Chain.genesis / .store: ChainStore / .mempool: Mempool / .tip: Tip / .height / .state
    Chain.next_proposer() -> bytes            Chain.next_context(time=None) -> BlockContext
    Chain.submit_tx(raw: bytes) -> VerifiedTx
    Chain.produce_block(identity: Identity, now: float) -> AppliedBlock
    Chain.verify_and_apply(block: Block | bytes, now: float) -> AppliedBlock
    AppliedBlock: .block, .hash, .height, .tx_ids, .events, .dropped (mempool drops)
    BlockIndexer.writes_for(block, events) -> Iterable[(key, bytes | None)]  # same batch

    Genesis: .chain_id .time .validators .allocations .params .block_time .window_blocks
             .max_block_txs .max_block_bytes .hash .proposer_for(height) .state()
    make_genesis(chain_id, validators, allocations, *, time, block_time=5, window_blocks=None,
                 max_block_txs=4096, max_block_bytes=4 MiB, **params) -> Genesis
    load_genesis(path) / save_genesis(genesis, path) / genesis_from_json / genesis_to_json

    Block(header: Header, transactions: tuple[bytes, ...], signature)  .hash .height
    Header(version, height, previous_hash, time, producer, tx_root, state_root)
    encode_block(block) -> bytes     decode_block(raw) -> Block     block_hash(header)
    tx_root(raws) -> bytes           sign_block(identity, header, raws) -> Block

    ChainStore(path, genesis, *, create=True): .tip .state .block(h) .block_bytes(h)
        .blocks_bytes(start, stop) .height_of(hash) .tx_location(id) .transaction(id)
        .state_entries() .apply_block(block, state, tx_ids, *, extra_writes=()) .close()
    Mempool(state, next_ctx, *, limits=MempoolLimits()): .add(raw) .take(max_txs, max_bytes)
        .remove_committed(block, tx_ids=None) .recheck(state, next_ctx) -> [Dropped]
        .discard(ids) .get(id) .next_nonce(address) .pending(address) len() .size_bytes

    build_block(genesis, tip, state, candidates, identity, now) -> Built   (pure)
    check_header(genesis, tip, block, *, now, max_future) / execute_block(state, block)

Errors (:mod:`storenode.ledger.errors`): ``LedgerError``; ``TxRejectedError``
and ``BlockInvalidError`` carry a stable ``reason``; ``BlockNotNextError``,
``ProposerNotScheduledError``, ``GenesisInvalidError``, ``ChainStoreError``
and its subclasses (each says what the operator can do).
"""

from __future__ import annotations

from storenode.ledger.block import (
    BLOCK_DOMAIN,
    MAX_BLOCK_SIZE,
    Block,
    Header,
    block_context,
    block_hash,
    decode_block,
    encode_block,
    sign_block,
    tx_root,
)
from storenode.ledger.chain import MAX_FUTURE_S, AppliedBlock, BlockIndexer, Chain
from storenode.ledger.chainstore import ChainStore, Tip
from storenode.ledger.errors import (
    BlockInvalidError,
    BlockNotNextError,
    ChainStoreError,
    GenesisInvalidError,
    LedgerError,
    ProposerNotScheduledError,
    TxRejectedError,
)
from storenode.ledger.genesis import (
    Genesis,
    genesis_from_json,
    genesis_hash,
    genesis_to_json,
    load_genesis,
    make_genesis,
    save_genesis,
)
from storenode.ledger.mempool import Dropped, Mempool, MempoolLimits
from storenode.ledger.producer import Built, build_block
from storenode.ledger.verify import Executed, check_header, execute_block

__all__ = [
    "BLOCK_DOMAIN",
    "MAX_BLOCK_SIZE",
    "MAX_FUTURE_S",
    "AppliedBlock",
    "Block",
    "BlockIndexer",
    "BlockInvalidError",
    "BlockNotNextError",
    "Built",
    "Chain",
    "ChainStore",
    "ChainStoreError",
    "Dropped",
    "Executed",
    "Genesis",
    "GenesisInvalidError",
    "Header",
    "LedgerError",
    "Mempool",
    "MempoolLimits",
    "ProposerNotScheduledError",
    "Tip",
    "TxRejectedError",
    "block_context",
    "block_hash",
    "build_block",
    "check_header",
    "decode_block",
    "encode_block",
    "execute_block",
    "genesis_from_json",
    "genesis_hash",
    "genesis_to_json",
    "load_genesis",
    "make_genesis",
    "save_genesis",
    "sign_block",
    "tx_root",
]
