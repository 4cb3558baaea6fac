"""Deterministic contracts: token, registry, storage, trade and reputation.

Pure and synchronous: no clock, no I/O, no floats, no randomness, no trio.
What a transition may know about its block comes in a :class:`BlockContext`.
Token amounts are ints of base units (18 decimals); :class:`Amount` is the
int subclass that stores them. Specs: docs/specs/ledger.md (bytes and root),
docs/contracts.md (economics).

**Starting a chain**::

    state = genesis_state({address: tokens(1_000_000)}, Params(chain_id="localnet"))

**Applying a block** (height h >= 1)::

    ctx = BlockContext(height=h, time=header.time, producer=header.producer_address,
                       previous_hash=header.previous_hash)
    state, events = begin_block(state, ctx)      # settles and opens contract windows
    for raw in block.transactions:
        signed = decode_tx(raw)                  # TxMalformedError / TxOversizeError
        state, more = apply(state, verify_tx(signed), ctx)   # TxRejectedError: bad block
    changes = state.changes()   # [(key, encoded entry | None)] to write in the batch
    state = state.commit()
    header.state_root = state.root

A state is immutable: ``apply`` and ``begin_block`` return a new one and leave
the one given untouched, so a mempool may try a transaction against the tip
and drop the result. To check a transaction for the mempool, apply it to
``begin_block(tip, next_ctx)[0]`` (``apply`` requires the state to have begun
the context's block). Applying is cheap (a few dicts per transaction); the
root is computed once per block, by ``commit`` (its cost: docs/specs/ledger.md).

Transactions travel as bytes (``encode_tx``/``decode_tx``): carry them as a
msgpack ``bin`` in wire messages. ``verify_tx`` checks the bounds of every field and
the signature (the expensive part, ~290 µs; ~100 µs more the first time a key
is seen) and returns the :class:`VerifiedTx` that ``apply`` takes, with its id
and sender address; verify once (in the mempool), apply anywhere.

**API** (all pure; amounts are :class:`Amount`, a plain int is converted)::

    genesis_state(allocations: Mapping[bytes, int], params: Params) -> State
    begin_block(state: State, ctx: BlockContext) -> tuple[State, tuple[Event, ...]]
    apply(state: State, tx: VerifiedTx, ctx: BlockContext) -> tuple[State, tuple[Event, ...]]

    decode_tx(raw: bytes) -> SignedTx          encode_tx(signed: SignedTx) -> bytes
    verify_tx(signed: SignedTx) -> VerifiedTx  # .tx, .sender (address), .tx_id, .raw
    sign_tx(identity, tx: Tx) -> SignedTx      tx_id(tx: Tx) -> bytes
    sign_terms(host, terms: ContractTerms) -> bytes      contract_id(terms) -> bytes
    sign_revision(party, revision: Revision) -> bytes

    State.root -> bytes                  State.commit() -> State
    State.changes() -> list[tuple[bytes, bytes | None]]
    State.from_entries(pairs: Iterable[tuple[bytes, bytes]]) -> State
    State.get(key) / State.scan(prefix) / State.items()

**Queries** take a state: ``balance_of``, ``nonce_of``, ``allowance_of``,
``total_supply``, ``total_burned``, ``height_of``, ``work_of``, ``works_of``
(fingerprints by owner), ``contract_of``, ``contracts_of`` (by party, with the
role), ``challenge_of`` (what the host must prove now), ``listing_of``,
``receipt_of``, ``has_receipt``, ``reputation_of``, ``standing_of``,
``rank_hosts``, ``host_report``.

**Events** (:mod:`contracts.events`) say what a transition did: a host acts on
``WindowOpened`` (prove it) after the block commits; wallets on
``Transferred``, ``FeePaid``, ``WindowSettled``.

Errors: :mod:`contracts.errors` (``TxRejectedError.reason`` is a stable code).
"""

from __future__ import annotations

from contracts.encoding import DECIMALS, TOKEN, ZERO, Amount, tokens
from contracts.entries import Account, Listing, Params, Receipt, Role, Status, StorageContract, Work
from contracts.errors import (
    BlockContextError,
    ContractError,
    GenesisInvalidError,
    TxMalformedError,
    TxOversizeError,
    TxRejectedError,
)
from contracts.events import Event
from contracts.execute import BlockContext, apply, begin_block, genesis_state
from contracts.lifecycle import Challenge, challenge_of
from contracts.reputation import (
    HostReport,
    Standing,
    host_report,
    rank_hosts,
    reputation_of,
    standing_of,
)
from contracts.state import State
from contracts.storage import contract_id, contract_of, contracts_of
from contracts.token import (
    allowance_of,
    balance_of,
    height_of,
    nonce_of,
    total_burned,
    total_supply,
)
from contracts.tx import (
    MAX_TX_SIZE,
    Approve,
    Burn,
    Buy,
    ContractTerms,
    OpenContract,
    RegisterWork,
    ReviseContract,
    Revision,
    SetListing,
    Share,
    SignedTx,
    SubmitProof,
    Transfer,
    TransferFrom,
    TransferWork,
    Tx,
    VerifiedTx,
    decode_tx,
    encode_tx,
    sign_revision,
    sign_terms,
    sign_tx,
    tx_id,
    verify_tx,
)
from contracts.works import has_receipt, listing_of, receipt_of, work_of, works_of

__all__ = [
    "DECIMALS",
    "MAX_TX_SIZE",
    "TOKEN",
    "ZERO",
    "Account",
    "Amount",
    "Approve",
    "BlockContext",
    "BlockContextError",
    "Burn",
    "Buy",
    "Challenge",
    "ContractError",
    "ContractTerms",
    "Event",
    "GenesisInvalidError",
    "HostReport",
    "Listing",
    "OpenContract",
    "Params",
    "Receipt",
    "RegisterWork",
    "ReviseContract",
    "Revision",
    "Role",
    "SetListing",
    "Share",
    "SignedTx",
    "Standing",
    "State",
    "Status",
    "StorageContract",
    "SubmitProof",
    "Transfer",
    "TransferFrom",
    "TransferWork",
    "Tx",
    "TxMalformedError",
    "TxOversizeError",
    "TxRejectedError",
    "VerifiedTx",
    "Work",
    "allowance_of",
    "apply",
    "balance_of",
    "begin_block",
    "challenge_of",
    "contract_id",
    "contract_of",
    "contracts_of",
    "decode_tx",
    "encode_tx",
    "genesis_state",
    "has_receipt",
    "height_of",
    "host_report",
    "listing_of",
    "nonce_of",
    "rank_hosts",
    "receipt_of",
    "reputation_of",
    "sign_revision",
    "sign_terms",
    "sign_tx",
    "standing_of",
    "tokens",
    "total_burned",
    "total_supply",
    "tx_id",
    "verify_tx",
    "work_of",
    "works_of",
]
