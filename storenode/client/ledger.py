"""A client of a ledger node: the ``ledger.*`` requests a wallet or the CLI sends.

The client dials the node over the wire with a fresh, throw-away identity and
checks that the node proves the public key it expects (so a process squatting
on the port cannot answer in the node's name)::

    async with open_home_client(home) as client:      # the node the home names
        status = await client.call_status()
        tx = await client.send_tx(home.identity(), Transfer(to, Amount(5 * TOKEN)), fee=fee)
        info = await client.wait_for_tx(tx, timeout=30)

Which node a home talks to: ``client.node`` in its config, else the home's
own node (its ``wire`` address, proving the home's identity key). Every
failure is a :class:`ClientError` whose message says what to do.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Final, TypeVar

import msgspec
import trio

from contracts import Amount, SignedTx, Tx, encode_tx, sign_tx
from contracts.tx import Body
from storenode.config import PeerSpec
from storenode.groups import single
from storenode.home import Home
from storenode.identity import Identity
from storenode.ledger.messages import (
    AccountInfo,
    BlockInfo,
    ChainStatus,
    ContractList,
    ContractSummary,
    GetAccount,
    GetBlock,
    GetContracts,
    GetListing,
    GetStatus,
    GetTx,
    GetWork,
    ListingInfo,
    RoleName,
    Submitted,
    SubmitTx,
    TxInfo,
    WorkReply,
)
from storenode.net.errors import (
    ConnectionLostError,
    PeerBannedError,
    PeerUnreachableError,
    RequestTimeoutError,
)
from storenode.net.rpc import RpcNode, open_rpc_node
from storenode.wire.errors import RemoteError, WireError
from storenode.wire.messages import ErrorCode

DEFAULT_TIMEOUT: Final = 10.0
POLL_INTERVAL: Final = 0.25
"""Seconds between two ``ledger.get_tx`` while waiting for a transaction."""
_ANY_HOST: Final = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}

R = TypeVar("R", bound=msgspec.Struct)


class ClientError(Exception):
    """Base of the client's errors; the message says what to do."""


class NodeUnreachableError(ClientError):
    """No connection to the node (not running, wrong address, or another key)."""


class NodeTimeoutError(ClientError):
    """The node did not answer in time."""


class NodeRefusedError(ClientError):
    """The node answered with an error code (or an answer that broke its schema)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class TxRefusedError(ClientError):
    """The node did not admit the transaction; ``reason`` is the stable code
    (docs/specs/ledger.md: ``insufficient_balance``, ``fee_too_low``, …)."""

    def __init__(self, tx_id: bytes | None, reason: str, message: str) -> None:
        super().__init__(f"the node refused the transaction ({reason}): {message}")
        self.tx_id = tx_id
        self.reason = reason


class TxNotIncludedError(ClientError):
    """A transaction that was not in a block in time, or that the node dropped."""

    def __init__(self, tx_id: bytes, message: str, *, pending: bool) -> None:
        super().__init__(message)
        self.tx_id = tx_id
        self.pending = pending


def home_node(home: Home) -> tuple[PeerSpec, str]:
    """The node ``home``'s commands talk to, and what to tell the user when it is
    unreachable."""
    config = home.config
    if config.client_node is not None:
        return config.client_node, (
            f"check that it is running and that client.node in {home.config_path} is right"
        )
    host = _ANY_HOST.get(config.listen_host, config.listen_host)
    node = PeerSpec(home.identity().public_key, host, config.listen_port)
    return node, f"start it with `storenode --home {home.root} ledger`"


class LedgerClient:
    """Requests to one ledger node. Build it with :func:`open_ledger_client`."""

    def __init__(self, rpc: RpcNode, node: PeerSpec, *, timeout: float, hint: str) -> None:
        self.rpc = rpc
        self.node = node
        self.timeout = timeout
        self.hint = hint

    @property
    def where(self) -> str:
        return f"{self.node.host}:{self.node.port}"

    async def connect(self) -> None:
        """Dial the node now (the calls dial it when needed)."""
        try:
            await self.rpc.connect(self.node)
        except (PeerUnreachableError, PeerBannedError) as exc:
            raise NodeUnreachableError(
                f"cannot reach the node at {self.where} ({exc}): {self.hint}"
            ) from None

    async def _ask(self, body: msgspec.Struct, reply_type: type[R]) -> R:
        try:
            reply = await self.rpc.request(self.node, body, timeout=self.timeout)
        except (PeerUnreachableError, PeerBannedError) as exc:
            raise NodeUnreachableError(
                f"cannot reach the node at {self.where} ({exc}): {self.hint}"
            ) from None
        except ConnectionLostError:
            raise NodeUnreachableError(
                f"the node at {self.where} closed the connection (did it stop?): {self.hint}"
            ) from None
        except RequestTimeoutError:
            raise NodeTimeoutError(
                f"the node at {self.where} did not answer within {self.timeout:g} s: "
                "it may be busy; try again"
            ) from None
        except RemoteError as exc:
            code = _code_name(exc.code)
            raise NodeRefusedError(
                exc.code, f"the node at {self.where} refused the request ({code}): {exc.message}"
            ) from None
        except WireError as exc:
            raise NodeRefusedError(
                int(ErrorCode.BAD_REQUEST), f"the node at {self.where} sent a bad answer: {exc}"
            ) from None
        if not isinstance(reply, reply_type):  # the registry decodes the declared type
            raise NodeRefusedError(
                int(ErrorCode.INTERNAL), f"unexpected answer {type(reply).__name__}"
            )
        return reply

    # -- the requests (docs/specs/ledger.md, "Gossip and sync") ----------------------------

    async def call_status(self) -> ChainStatus:
        return await self._ask(GetStatus(), ChainStatus)

    async def call_account(self, address: bytes) -> AccountInfo:
        return await self._ask(GetAccount(address), AccountInfo)

    async def call_submit(self, raw: bytes) -> Submitted:
        return await self._ask(SubmitTx(raw), Submitted)

    async def call_get_tx(self, tx_id: bytes) -> TxInfo:
        return await self._ask(GetTx(tx_id), TxInfo)

    async def call_get_block(self, height: int) -> BlockInfo:
        return await self._ask(GetBlock(height), BlockInfo)

    async def call_work(self, fingerprint: bytes) -> WorkReply:
        return await self._ask(GetWork(fingerprint), WorkReply)

    async def call_listing(self, fingerprint: bytes, buyer: bytes) -> ListingInfo:
        return await self._ask(GetListing(fingerprint, buyer), ListingInfo)

    async def call_contracts(self, address: bytes, role: RoleName, offset: int = 0) -> ContractList:
        return await self._ask(GetContracts(address, role, offset), ContractList)

    # -- built on them ---------------------------------------------------------------------

    async def all_contracts(self, address: bytes, role: RoleName) -> list[ContractSummary]:
        """Every contract ``address`` is a party of in ``role`` (all pages)."""
        out: list[ContractSummary] = []
        while True:
            page = await self.call_contracts(address, role, len(out))
            out.extend(page.contracts)
            if not page.contracts or len(out) >= page.total:
                return out

    async def sign(self, identity: Identity, body: Body, *, fee: int) -> SignedTx:
        """``body`` as a transaction of ``identity`` on the node's chain, with the
        next nonce the node expects from it (counting its pending ones)."""
        status = await self.call_status()
        account = await self.call_account(identity.address)
        tx = Tx(status.chain_id, identity.public_key, account.next_nonce, Amount(fee), body)
        return sign_tx(identity, tx)

    async def submit(self, signed: SignedTx) -> bytes:
        """Submit; the transaction id (:class:`TxRefusedError` if not admitted)."""
        reply = await self.call_submit(encode_tx(signed))
        if not reply.accepted or reply.tx_id is None:
            raise TxRefusedError(reply.tx_id, reply.reason or "refused", reply.message)
        return reply.tx_id

    async def send_tx(self, identity: Identity, body: Body, *, fee: int) -> bytes:
        return await self.submit(await self.sign(identity, body, fee=fee))

    async def wait_for_tx(self, tx_id: bytes, *, timeout: float) -> TxInfo:
        """Poll until ``tx_id`` is in a block; its :class:`TxInfo`.
        :class:`TxNotIncludedError` after ``timeout`` seconds, or at once if the
        node no longer knows it (dropped from the mempool)."""
        with trio.move_on_after(timeout):
            while True:
                info = await self.call_get_tx(tx_id)
                if info.found:
                    return info
                if not info.pending:
                    raise TxNotIncludedError(
                        tx_id,
                        f"the node at {self.where} dropped transaction {tx_id.hex()} before it "
                        "reached a block (replaced, or no longer valid): check the balance "
                        "and nonce, and send it again",
                        pending=False,
                    )
                await trio.sleep(POLL_INTERVAL)
        raise TxNotIncludedError(
            tx_id,
            f"transaction {tx_id.hex()} is still pending after {timeout:g} s: "
            f"is a validator producing blocks? Check with `storenode chain status`",
            pending=True,
        )


def _code_name(code: int) -> str:
    try:
        return ErrorCode(code).name
    except ValueError:
        return f"code {code}"


@asynccontextmanager
async def open_ledger_client(
    node: PeerSpec, *, timeout: float = DEFAULT_TIMEOUT, hint: str = "is it running?"
) -> AsyncIterator[LedgerClient]:
    """A client of ``node``, connected (:class:`NodeUnreachableError` if it cannot be).

    An exception raised in the block comes out as itself, not inside the
    ExceptionGroup of the nursery the client's connections live in."""
    try:
        async with open_rpc_node(Identity.generate()) as rpc:
            client = LedgerClient(rpc, node, timeout=timeout, hint=hint)
            await client.connect()
            yield client
    except BaseExceptionGroup as group:
        raise single(group) from None


@asynccontextmanager
async def open_home_client(
    home: Home, *, timeout: float = DEFAULT_TIMEOUT
) -> AsyncIterator[LedgerClient]:
    """A client of the node ``home`` talks to (:func:`home_node`)."""
    node, hint = home_node(home)
    async with open_ledger_client(node, timeout=timeout, hint=hint) as client:
        yield client
