"""The prover: answer the challenge of every open window of the host's contracts.

Apply, then act: after each block commits, the daemon takes a :class:`TipView`
(the committed state, the host's next nonce and its proofs still waiting in
the mempool) and hands it to :meth:`Prover.prove`. For each active contract
whose open window is not proven, whose proof is not already pending, and
whose window still has a block to come, the prover reads the challenged
chunk, builds the ChainedProof (segment -> chunk root -> contract root, the
root over the contract's chunk ids in the proposal's order) and submits a
``SubmitProof`` transaction, signed by the host, to its own ledger service
(which gossips it). A proof that does not land is tried again in a later
block of the same window: it is no longer pending, so it is due again, and
one that stays pending for :data:`RESEND_AFTER` blocks is sent to the peers
again. A restarted host proves the open windows as soon as its start-up sync
is done, without waiting for the next block.

A chunk that is missing or damaged cannot be proven: the prover logs it once
per window, and the window is missed.

:func:`proofs_due` and :func:`build_proof` are pure; :class:`Prover` is the shell.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, cast

import trio

from contracts.encoding import Amount
from contracts.entries import PARAMS_KEY, Params
from contracts.lifecycle import challenge_of
from contracts.state import State
from contracts.storage import contract_of
from contracts.tx import SubmitProof, Tx, encode_tx, sign_tx
from storenode.coding.merkle import MerkleTree, prove_chained, segment
from storenode.config import PeerSpec
from storenode.host.book import BookContract
from storenode.identity import Identity
from storenode.ledger import Chain, TxRejectedError
from storenode.ledger.messages import NewTx
from storenode.net.errors import NetError
from storenode.net.ledger import LedgerService, LedgerStoppedError
from storenode.store.errors import ChunkCorruptError, ChunkNotFoundError
from storenode.store.protocol import ChunkStore
from storenode.wire.errors import WireError

log = logging.getLogger(__name__)

RESEND_AFTER: Final = 2
"""Blocks a proof may stay pending here before it is sent to the peers again."""

WindowKey = tuple[bytes, int]
"""``(contract id, window)``."""


@dataclass(frozen=True, slots=True)
class TipView:
    """What the host acts on after a block: read while no call into the chain runs."""

    height: int
    state: State
    next_nonce: int
    """The nonce of the host's next transaction, after its pending ones."""
    pending: frozenset[WindowKey]
    """The windows whose proof from this host waits in the mempool."""


def view_of(chain: Chain, address: bytes) -> TipView:
    """The host's view of ``chain`` now. Call it only while nothing else calls
    the chain (before the ledger service starts, or from its ``on_applied``)."""
    pending = frozenset(
        (vtx.tx.body.contract_id, vtx.tx.body.window)
        for vtx in chain.mempool.pending(address)
        if isinstance(vtx.tx.body, SubmitProof)
    )
    return TipView(chain.height, chain.state, chain.mempool.next_nonce(address), pending)


@dataclass(frozen=True, slots=True)
class Due:
    """A window to prove now."""

    contract: BookContract
    window: int
    chunk_index: int
    segment_index: int
    end: int
    """The window's last height: the proof must be in a block up to it."""

    @property
    def key(self) -> WindowKey:
        return (self.contract.id, self.window)


def proofs_due(view: TipView, contracts: Iterable[BookContract]) -> list[Due]:
    """The open windows of ``contracts`` to prove after ``view``'s block: not
    proven, no proof pending, and the next block still inside the window."""
    due = []
    for c in contracts:
        ch = challenge_of(view.state, c.id)
        if ch is None or ch.proven or (c.id, ch.window) in view.pending:
            continue
        if view.height + 1 > ch.end:
            continue  # the next block settles it
        due.append(Due(c, ch.window, ch.chunk_index, ch.segment_index, ch.end))
    return due


class ProofUnavailableError(Exception):
    """This host cannot answer a challenge; the message says why (for the log)."""


def build_proof(due: Due, chunk: bytes, contract_tree: MerkleTree) -> SubmitProof:
    """The proof of ``due`` from the challenged chunk's bytes (already verified
    against its id by the store) and the tree over the contract's chunk ids."""
    proof = prove_chained(
        MerkleTree.of_chunk(chunk), contract_tree, due.chunk_index, due.segment_index
    )
    seg = bytes(segment(chunk, due.segment_index))
    return SubmitProof(due.contract.id, due.window, seg, proof.to_bytes())


def short(contract_id: bytes) -> str:
    return contract_id.hex()[:8] + "…"


class Prover:
    """Submits the proofs of one host (see the module docstring)."""

    def __init__(
        self,
        ledger: LedgerService,
        store: ChunkStore,
        identity: Identity,
        *,
        peers: Sequence[PeerSpec] = (),
    ) -> None:
        self.ledger = ledger
        self.store = store
        self.identity = identity
        self.peers = list(peers)
        self.asked: dict[WindowKey, tuple[int, int]] = {}
        """(chunk, segment) each submitted proof answered, for the log."""
        self.failures: dict[WindowKey, str] = {}
        """Why a window could not be proven, for the log when it settles."""
        self._trees: dict[bytes, MerkleTree] = {}
        self._sent: dict[WindowKey, tuple[bytes, int]] = {}  # raw tx, height it was sent at

    def forget(self, contract_id: bytes) -> None:
        """Drop what is kept about a contract that closed or expired."""
        self._trees.pop(contract_id, None)
        for table in (self.asked, self.failures, self._sent):
            for key in [k for k in table if k[0] == contract_id]:
                del table[key]

    async def prove(self, view: TipView, contracts: Iterable[BookContract]) -> None:
        """Submit the proofs ``view`` calls for (see the module docstring)."""
        await self._resend(view)
        params = cast(Params, view.state.get(PARAMS_KEY))
        nonce = view.next_nonce
        for due in proofs_due(view, contracts):
            try:
                body = await self._proof(view.state, due)
            except ProofUnavailableError as e:
                if due.key not in self.failures:
                    self.failures[due.key] = str(e)
                    log.error(
                        "cannot prove window %d of contract %s: %s; the window will be missed",
                        due.window,
                        short(due.contract.id),
                        e,
                    )
                continue
            tx = Tx(params.chain_id, self.identity.public_key, nonce, Amount(params.min_fee), body)
            raw = encode_tx(sign_tx(self.identity, tx))
            try:
                await self.ledger.submit(raw)
            except TxRejectedError as e:
                if e.reason == "duplicate":
                    # Sent after the view was taken (blocks came while proving): pending.
                    nonce += 1
                    continue
                log.warning(
                    "the proof of window %d of contract %s was refused (%s); "
                    "trying again after the next block",
                    due.window,
                    short(due.contract.id),
                    e,
                )
                continue
            except LedgerStoppedError:
                return
            nonce += 1
            self._sent[due.key] = (raw, view.height)
            self.asked[due.key] = (due.chunk_index, due.segment_index)
            log.debug(
                "submitted the proof of window %d of contract %s (chunk %d, segment %d)",
                due.window,
                short(due.contract.id),
                due.chunk_index,
                due.segment_index,
            )

    async def _proof(self, state: State, due: Due) -> SubmitProof:
        c = due.contract
        on_chain = contract_of(state, c.id)
        ours = (c.terms.root, len(c.shards))
        if on_chain is None or (on_chain.root, on_chain.chunk_count) != ours:
            raise ProofUnavailableError("the contract was revised to chunks not listed here")
        chunk_id = c.shards[due.chunk_index].chunk_id
        try:
            chunk = await trio.to_thread.run_sync(self.store.get, chunk_id)
        except ChunkNotFoundError:
            raise ProofUnavailableError(f"chunk {due.chunk_index} is missing here") from None
        except ChunkCorruptError:
            raise ProofUnavailableError(f"chunk {due.chunk_index} is damaged here") from None
        tree = self._trees.get(c.id)
        if tree is None:
            tree = self._trees[c.id] = MerkleTree(c.chunk_ids)
        return await trio.to_thread.run_sync(build_proof, due, chunk, tree)

    async def _resend(self, view: TipView) -> None:
        """Send proofs that stay pending to the peers again (a gossip may be lost)."""
        for key, (raw, height) in list(self._sent.items()):
            if key not in view.pending:
                del self._sent[key]  # in a block, or dropped: nothing to resend
                continue
            if view.height - height < RESEND_AFTER:
                continue
            self._sent[key] = (raw, view.height)
            for peer in self.peers:
                try:
                    await self.ledger.rpc.notify(peer, NewTx(raw))
                except (NetError, WireError) as e:
                    log.debug("resending a proof to %s failed: %s", peer, e)
