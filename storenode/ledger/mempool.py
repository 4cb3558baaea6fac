"""The mempool: verified transactions waiting for a block, ordered by fee and nonce.

Sans-IO and synchronous. A transaction is admitted by :meth:`Mempool.add`
only after every check a block would make, cheapest first (a refusal is a
:class:`~storenode.ledger.errors.TxRejectedError` with its ``reason``, and
changes nothing):

1. size and canonical decoding (``oversize``, ``malformed``);
2. the chain id (``wrong_chain``); not already pending (``duplicate``);
3. the nonce: not below the sender's next at the tip (``nonce_replayed``), at
   most ``max_nonce_gap`` beyond the sender's next pending nonce
   (``nonce_too_far``); a second transaction at a pending nonce replaces the
   first only with a fee 10% higher (``replacement_underpriced``); at most
   ``max_per_sender`` pending per sender (``sender_full``);
4. the fee: at least the chain's ``min_fee`` (``fee_too_low``); when the pool
   is full, above the cheapest transaction that can be evicted (``mempool_full``);
5. the signature (``bad_signature``), the costly step, so it comes last but one;
6. the **admission apply**: the transaction applied, after the sender's
   earlier pending ones, to ``begin_block(tip, next_ctx)``, as it would be in
   the next block (``insufficient_balance``, ``proof_out_of_window``, …).

A transaction whose nonce leaves a gap is kept **queued** (checked up to
step 5) and applied when the gap fills. The pool holds at most ``max_txs``
transactions and ``max_bytes`` bytes; to admit a better-paying transaction
when full it evicts the cheapest transaction that is last in its sender's
nonce order (so no kept transaction loses its predecessor).

:meth:`Mempool.take` lists what the next block should carry: highest fee
first across senders, each sender's transactions in consecutive nonce order.
After a block, :meth:`remove_committed` then :meth:`recheck` bring the pool to
the new tip (pending transactions are re-applied; those that no longer apply
are dropped and reported).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import cast

from contracts import BlockContext, State, VerifiedTx, apply, begin_block, nonce_of
from contracts.entries import PARAMS_KEY, Params
from contracts.errors import TxRejectedError as ContractTxRejectedError
from contracts.tx import decode_tx, tx_id, verify_tx
from storenode.identity import address_of
from storenode.ledger.block import Block
from storenode.ledger.errors import TxRejectedError


@dataclass(frozen=True, slots=True)
class MempoolLimits:
    max_txs: int = 10_000
    max_bytes: int = 16 * 1024 * 1024
    max_per_sender: int = 64
    max_nonce_gap: int = 16
    """How far beyond the sender's next pending nonce a transaction may be queued."""
    replace_bump_pct: int = 10
    """How much higher (in percent) a replacement's fee must be."""


@dataclass(frozen=True, slots=True)
class Dropped:
    """A pending transaction that was dropped by :meth:`Mempool.recheck` or eviction."""

    tx_id: bytes
    sender: bytes
    nonce: int
    reason: str


@dataclass(slots=True)
class _Pending:
    vtx: VerifiedTx
    fee: int
    size: int
    seq: int
    after: State | None
    """The admission state after this transaction; None while it is queued."""


class _Sender:
    __slots__ = ("base", "ready", "txs")

    def __init__(self, base: int) -> None:
        self.base = base
        """The sender's next nonce at the tip."""
        self.txs: dict[int, _Pending] = {}
        self.ready = 0
        """Transactions ``base .. base + ready - 1`` are pending and applied in
        a chain; ``base + ready`` is absent; the rest are queued."""

    @property
    def tail(self) -> int:
        return max(self.txs)


class Mempool:
    """Pending transactions over the tip ``state``; ``next_ctx`` is the context
    the next block is expected to have (its time is a guess)."""

    def __init__(
        self, state: State, next_ctx: BlockContext, *, limits: MempoolLimits | None = None
    ) -> None:
        self.limits = limits or MempoolLimits()
        self._senders: dict[bytes, _Sender] = {}
        self._index: dict[bytes, tuple[bytes, int]] = {}  # tx id -> (sender, nonce)
        self._bytes = 0
        self._seq = itertools.count()
        self._tails: list[tuple[int, int, bytes]] = []  # (fee, -seq, tx id): eviction order
        self._set_tip(state, next_ctx)

    # -- reading ------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, tx_id: object) -> bool:
        return tx_id in self._index

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def get(self, tx_id: bytes) -> VerifiedTx | None:
        where = self._index.get(tx_id)
        return None if where is None else self._senders[where[0]].txs[where[1]].vtx

    def next_nonce(self, sender: bytes) -> int:
        """The nonce a new transaction of ``sender`` should carry (after its pending ones)."""
        s = self._senders.get(sender)
        return nonce_of(self._tip, sender) if s is None else s.base + s.ready

    def pending(self, sender: bytes) -> list[VerifiedTx]:
        """The sender's pending transactions in nonce order (queued ones included)."""
        s = self._senders.get(sender)
        return [] if s is None else [s.txs[n].vtx for n in sorted(s.txs)]

    def take(self, max_txs: int, max_bytes: int) -> list[VerifiedTx]:
        """The best transactions for the next block, in block order: highest fee
        first across senders, each sender's in nonce order, at most ``max_txs``
        and ``max_bytes`` in all. A sender whose next transaction does not fit
        is skipped from then on. Nothing is removed from the pool."""
        heads: list[tuple[int, int, bytes, int]] = []
        for address, s in self._senders.items():
            if s.ready:
                p = s.txs[s.base]
                heads.append((-p.fee, p.seq, address, s.base))
        heapq.heapify(heads)
        out: list[VerifiedTx] = []
        room = max_bytes
        while heads and len(out) < max_txs:
            _, _, address, nonce = heapq.heappop(heads)
            s = self._senders[address]
            p = s.txs[nonce]
            if p.size > room:
                continue
            out.append(p.vtx)
            room -= p.size
            if nonce + 1 < s.base + s.ready:
                q = s.txs[nonce + 1]
                heapq.heappush(heads, (-q.fee, q.seq, address, nonce + 1))
        return out

    # -- admitting ----------------------------------------------------------------------

    def add(self, raw: bytes) -> VerifiedTx:
        """Admit ``encode(SignedTx)`` bytes, or raise :class:`TxRejectedError`."""
        try:
            signed = decode_tx(raw)
        except ContractTxRejectedError as exc:
            raise TxRejectedError.from_contract(exc) from None
        tx = signed.tx
        if tx.chain_id != self._params.chain_id:
            raise TxRejectedError(
                "wrong_chain",
                f"the transaction is for {tx.chain_id!r}, not {self._params.chain_id!r}",
            )
        tid = tx_id(tx)
        if tid in self._index:
            raise TxRejectedError("duplicate", f"transaction {tid.hex()} is already pending")
        sender = address_of(tx.sender)
        s = self._senders.get(sender)
        base = nonce_of(self._tip, sender) if s is None else s.base
        ready = 0 if s is None else s.ready
        if tx.nonce < base:
            raise TxRejectedError(
                "nonce_replayed", f"0x{sender.hex()} is at nonce {base}; the tx has {tx.nonce}"
            )
        if tx.nonce > base + ready + self.limits.max_nonce_gap:
            raise TxRejectedError(
                "nonce_too_far",
                f"nonce {tx.nonce} is more than {self.limits.max_nonce_gap} beyond the "
                f"sender's next pending nonce {base + ready}",
            )
        old = None if s is None else s.txs.get(tx.nonce)
        if old is not None:
            if tx.fee * 100 < old.fee * (100 + self.limits.replace_bump_pct):
                raise TxRejectedError(
                    "replacement_underpriced",
                    f"nonce {tx.nonce} is pending with fee {old.fee}; a replacement pays "
                    f"{self.limits.replace_bump_pct}% more",
                )
        elif s is not None and len(s.txs) >= self.limits.max_per_sender:
            raise TxRejectedError(
                "sender_full", f"0x{sender.hex()} has {len(s.txs)} pending transactions"
            )
        if tx.fee < self._params.min_fee:
            raise TxRejectedError(
                "fee_too_low", f"the fee {int(tx.fee)} is below {int(self._params.min_fee)}"
            )
        size = len(raw)
        victims = self._victims(
            size - (0 if old is None else old.size), old is None, int(tx.fee), sender, tx.nonce
        )
        try:
            vtx = verify_tx(signed)
        except ContractTxRejectedError as exc:
            raise TxRejectedError.from_contract(exc) from None
        after = None
        if tx.nonce <= base + ready:  # extends or replaces the applied chain: apply it
            before = self._base if tx.nonce == base or s is None else s.txs[tx.nonce - 1].after
            assert before is not None
            try:
                after, _ = apply(before, vtx, self._ctx)
            except ContractTxRejectedError as exc:
                raise TxRejectedError.from_contract(exc) from None
        # Admitted. Evictions and the replaced transaction only ever sit above
        # the new one's nonce in their sender's order, so ``after`` stays right.
        for victim in victims:
            self._remove(victim)
        if old is not None:
            self._remove(old.vtx.tx_id)
        s = self._senders.get(sender)
        if s is None:
            s = self._senders[sender] = _Sender(base)
        entry = _Pending(vtx, int(tx.fee), size, next(self._seq), after)
        s.txs[tx.nonce] = entry
        self._index[tid] = (sender, tx.nonce)
        self._bytes += size
        if after is not None:
            self._rebuild(sender, s, tx.nonce + 1)
        if tx.nonce == s.tail:
            heapq.heappush(self._tails, (entry.fee, -entry.seq, tid))
        if len(self._tails) > 2 * len(self._index) + 1024:
            self._reindex_tails()
        return vtx

    def _victims(self, size: int, new: bool, fee: int, sender: bytes, nonce: int) -> list[bytes]:
        """The transactions to evict so that the new one (``size`` more bytes,
        one more transaction if ``new``) fits: the cheapest that are last in
        their sender's order, each paying less than ``fee``, never one before
        ``nonce`` of ``sender``. Raises ``mempool_full`` if there are not
        enough (and leaves the pool as it was)."""
        need_count = len(self._index) + new - self.limits.max_txs
        need_bytes = self._bytes + size - self.limits.max_bytes
        chosen: list[bytes] = []
        if need_count <= 0 and need_bytes <= 0:
            return chosen
        # Records of tails are popped to look past them and pushed back: the
        # choice is carried out only once the new transaction has passed every
        # check (the records of what is then evicted go stale, skipped later).
        # Records of what is no longer a tail are dropped for good.
        restore: list[tuple[int, int, bytes]] = []
        lowest: dict[bytes, int] = {}  # sender -> lowest nonce chosen so far
        while need_count > 0 or need_bytes > 0:
            if not self._tails or self._tails[0][0] >= fee:
                for item in restore:
                    heapq.heappush(self._tails, item)
                raise TxRejectedError(
                    "mempool_full",
                    f"the mempool is full ({len(self._index)} transactions, {self._bytes} "
                    f"bytes) and holds nothing cheaper than fee {fee} to evict",
                )
            item = heapq.heappop(self._tails)
            where = self._index.get(item[2])
            if where is None:
                continue  # removed since
            address, vnonce = where
            s = self._senders[address]
            below = [n for n in s.txs if n < lowest.get(address, vnonce + 1)]
            if not below or vnonce != max(below):
                continue  # no longer last: pushed again when it is
            restore.append(item)
            if address == sender and vnonce < nonce:
                continue
            chosen.append(item[2])
            lowest[address] = vnonce
            need_count -= 1
            need_bytes -= s.txs[vnonce].size
            rest = [n for n in below if n < vnonce]
            if rest:  # its predecessor is now last
                q = s.txs[max(rest)]
                heapq.heappush(self._tails, (q.fee, -q.seq, q.vtx.tx_id))
        for item in restore:
            heapq.heappush(self._tails, item)
        return chosen

    def _reindex_tails(self) -> None:
        self._tails = [
            (p.fee, -p.seq, p.vtx.tx_id) for s in self._senders.values() for p in (s.txs[s.tail],)
        ]
        heapq.heapify(self._tails)

    # -- after a block ------------------------------------------------------------------

    def remove_committed(self, block: Block, tx_ids: Iterable[bytes] | None = None) -> None:
        """Forget the pending transactions that ``block`` committed (``tx_ids``:
        their ids, when the caller has them already)."""
        if tx_ids is None:
            tx_ids = [tx_id(decode_tx(raw).tx) for raw in block.transactions]
        for tid in tx_ids:
            if tid in self._index:
                self._remove(tid)

    def recheck(self, state: State, next_ctx: BlockContext) -> list[Dropped]:
        """Move to the new tip ``state``: re-apply every pending transaction for
        ``next_ctx`` and drop (and report) those that no longer apply."""
        self._set_tip(state, next_ctx)
        dropped: list[Dropped] = []
        for address in list(self._senders):
            s = self._senders[address]
            s.base = nonce_of(state, address)
            for nonce in [n for n in s.txs if n < s.base]:
                p = s.txs[nonce]
                dropped.append(Dropped(p.vtx.tx_id, address, nonce, "nonce_replayed"))
                self._remove(p.vtx.tx_id)
            if address in self._senders:
                dropped += self._rebuild(address, s, s.base)
        self._reindex_tails()
        return dropped

    def discard(self, tx_ids: Iterable[bytes]) -> None:
        """Remove these transactions (say, ones that failed when a block was
        built); their sender's later transactions wait queued for the gap."""
        for tid in tx_ids:
            if tid in self._index:
                self._remove(tid)

    # -- internals ----------------------------------------------------------------------

    def _set_tip(self, state: State, next_ctx: BlockContext) -> None:
        self._tip = state
        self._ctx = next_ctx
        self._base, _ = begin_block(state, next_ctx)
        self._params = cast(Params, state.get(PARAMS_KEY))

    def _rebuild(self, address: bytes, s: _Sender, start: int) -> list[Dropped]:
        """Apply the sender's pending transactions from nonce ``start`` (all
        before it are applied) until a gap; one that fails is dropped and the
        rest stay queued."""
        state = self._base if start == s.base else s.txs[start - 1].after
        assert state is not None
        n = start
        dropped: list[Dropped] = []
        while n in s.txs:
            p = s.txs[n]
            try:
                state, _ = apply(state, p.vtx, self._ctx)
            except ContractTxRejectedError as exc:
                dropped = [Dropped(p.vtx.tx_id, address, n, exc.reason)]
                self._remove(p.vtx.tx_id)
                break
            p.after = state
            n += 1
        if address in self._senders:
            s.ready = n - s.base
            for m, p in s.txs.items():
                if m > n:
                    p.after = None
        return dropped

    def _remove(self, tid: bytes) -> None:
        address, nonce = self._index.pop(tid)
        s = self._senders[address]
        p = s.txs.pop(nonce)
        self._bytes -= p.size
        if nonce < s.base + s.ready:
            s.ready = nonce - s.base
            for m, q in s.txs.items():
                if m > nonce:
                    q.after = None
        if not s.txs:
            del self._senders[address]
        elif nonce > s.tail:  # it was last: its predecessor is now
            q = s.txs[s.tail]
            heapq.heappush(self._tails, (q.fee, -q.seq, q.vtx.tx_id))
