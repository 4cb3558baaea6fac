"""The ledger's answers to clients: submitting a transaction, and queries.

A part of :class:`~storenode.net.ledger.LedgerService` (a mixin over the
service's state; :class:`_Node` is what it uses). It answers ``ledger.submit``,
``ledger.account``, ``ledger.get_tx``, ``ledger.get_block``, ``ledger.work``,
``ledger.listing`` and ``ledger.contracts`` (:mod:`storenode.ledger.messages`
computes the replies from the chain's state). Those that read the mempool take
the service's lock; the others read committed, immutable values without it.
"""

from __future__ import annotations

from typing import Protocol

import msgspec
import trio

from contracts import VerifiedTx, decode_tx, tx_id
from contracts.errors import TxRejectedError as ContractTxRejectedError
from storenode.ledger import Chain, TxRejectedError
from storenode.ledger.messages import (
    AccountInfo,
    BlockInfo,
    ContractList,
    GetAccount,
    GetBlock,
    GetContracts,
    GetListing,
    GetTx,
    GetWork,
    ListingInfo,
    Submitted,
    SubmitTx,
    TxInfo,
    WorkReply,
    account_info,
    contract_list,
    listing_info,
    work_reply,
)
from storenode.net.peer import PeerConnection


class _Node(Protocol):
    """What the client queries use of the service (:class:`~storenode.net.ledger.LedgerService`)."""

    chain: Chain
    _lock: trio.Lock

    def _check_open(self) -> None: ...

    async def submit(self, raw: bytes, *, source: bytes | None = None) -> VerifiedTx: ...


class ClientQueries:
    """The service's handlers for clients (a part of
    :class:`~storenode.net.ledger.LedgerService`)."""

    async def handle_submit(self: _Node, conn: PeerConnection, body: msgspec.Struct) -> Submitted:
        assert isinstance(body, SubmitTx)
        self._check_open()
        try:
            vtx = await self.submit(body.raw)
        except TxRejectedError as e:
            return Submitted(_tx_id_of(body.raw), False, e.reason, e.message[:512])
        return Submitted(vtx.tx_id, True)

    async def handle_account(
        self: _Node, conn: PeerConnection, body: msgspec.Struct
    ) -> AccountInfo:
        assert isinstance(body, GetAccount)
        async with self._lock:
            self._check_open()
            state = self.chain.state
            next_nonce = self.chain.mempool.next_nonce(body.address)
        return account_info(state, body.address, next_nonce=next_nonce)

    async def handle_get_tx(self: _Node, conn: PeerConnection, body: msgspec.Struct) -> TxInfo:
        assert isinstance(body, GetTx)
        async with self._lock:
            self._check_open()
            committed = self.chain.store.transaction(body.tx_id)
            pending = None if committed is not None else self.chain.mempool.get(body.tx_id)
        if committed is not None:
            raw, height, index = committed
            return TxInfo(found=True, height=height, index=index, raw=raw)
        if pending is not None:
            return TxInfo(found=False, pending=True, raw=pending.raw)
        return TxInfo(found=False)

    def handle_get_block(self: _Node, conn: PeerConnection, body: msgspec.Struct) -> BlockInfo:
        assert isinstance(body, GetBlock)
        self._check_open()
        raw = self.chain.store.block_bytes(body.height) if body.height else None
        return BlockInfo(False) if raw is None else BlockInfo(True, raw)

    def handle_work(self: _Node, conn: PeerConnection, body: msgspec.Struct) -> WorkReply:
        assert isinstance(body, GetWork)
        self._check_open()
        return work_reply(self.chain.state, body.fingerprint)

    def handle_listing(self: _Node, conn: PeerConnection, body: msgspec.Struct) -> ListingInfo:
        assert isinstance(body, GetListing)
        self._check_open()
        return listing_info(self.chain.state, body.fingerprint, body.buyer)

    def handle_contracts(self: _Node, conn: PeerConnection, body: msgspec.Struct) -> ContractList:
        assert isinstance(body, GetContracts)
        self._check_open()
        return contract_list(self.chain.state, body.address, body.role, body.offset)


def _tx_id_of(raw: bytes) -> bytes | None:
    try:
        return tx_id(decode_tx(raw).tx)
    except ContractTxRejectedError:
        return None
