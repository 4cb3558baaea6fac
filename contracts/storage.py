"""Storage contracts: escrow, collateral, windows, challenges and proofs.

A publisher opens a contract with the host's signed acceptance of the
:class:`~contracts.tx.ContractTerms`; the escrow (price per window × windows)
and the host's collateral are locked in the same transaction. The contract id
is ``SHA-256(encode(terms))`` and is used once.

Windows follow one another without gaps, and each asks for one segment of
one chunk (:mod:`contracts.lifecycle` says which, and when). The host proves
it with the segment and its ChainedProof (segment → chunk root → contract
root) in any block of the window. At the start of the block after the
window's last one (:func:`run_due`, called by :func:`contracts.begin_block`),
the window is settled: proven, the host is paid the installment minus the
burn (2%, rounded up); unproven, the installment goes back to the publisher.
After the last window the collateral is returned, less the penalty (half, by
default) if the host missed more than half its windows.
Economics: docs/contracts.md.
"""

from __future__ import annotations

from typing import cast

import msgspec

from contracts.encoding import MAX_AMOUNT, ZERO, Amount, bps_ceil, encode, sha256
from contracts.entries import (
    MARKER,
    Params,
    Party,
    Role,
    Status,
    StorageContract,
    Tag,
    contract_key,
    due_key,
    due_prefix,
    party_key,
)
from contracts.errors import (
    AcceptanceExpiredError,
    ChainIdMismatchError,
    ContractExistsError,
    ContractUnknownError,
    PartySignatureInvalidError,
    ProofOutOfWindowError,
    ProofPathInvalidError,
    ProofSegmentWrongError,
    RevisionStaleError,
    SenderUnauthorizedError,
    TermsInvalidError,
    WindowProvenError,
)
from contracts.events import (
    BurnReason,
    ContractClosed,
    ContractOpened,
    ContractRevised,
    ProofAccepted,
    WindowOpened,
    WindowSettled,
)
from contracts.journal import Journal
from contracts.lifecycle import Move, challenge_indices, step, window_seed
from contracts.state import State
from contracts.tx import (
    REVISION_DOMAIN,
    TERMS_DOMAIN,
    ContractTerms,
    OpenContract,
    ReviseContract,
    SubmitProof,
)
from storenode.coding.errors import ProofError
from storenode.coding.merkle import ChainedProof, segment_count, verify_chained
from storenode.identity import address_of as _address_of
from storenode.identity import is_valid_signature

_replace = msgspec.structs.replace


def contract_id(terms: ContractTerms) -> bytes:
    """The id of the contract these terms open."""
    return sha256(encode(terms))


# -- transactions ----------------------------------------------------------------------


def open_contract(j: Journal, sender: bytes, body: OpenContract) -> None:
    terms, params = body.terms, j.params
    if terms.chain_id != params.chain_id:
        raise ChainIdMismatchError(f"the terms are for chain {terms.chain_id!r}")
    if _address_of(terms.publisher) != sender:
        raise SenderUnauthorizedError("the terms name another publisher than the sender")
    _check_terms(params, terms)
    if j.height > terms.accept_until:
        raise AcceptanceExpiredError(
            f"the host accepted until height {terms.accept_until}; this is {j.height}"
        )
    if not is_valid_signature(terms.host, TERMS_DOMAIN, encode(terms), body.host_signature):
        raise PartySignatureInvalidError("the host's acceptance does not verify")
    cid = contract_id(terms)
    key = contract_key(cid)
    if j.get(key) is not None:
        raise ContractExistsError(f"contract {cid.hex()} was already opened")
    escrow = terms.price_per_window * terms.windows
    if escrow > MAX_AMOUNT:
        raise TermsInvalidError("price per window × windows is above the largest amount")
    host = _address_of(terms.host)
    j.debit(sender, escrow, "the escrow")
    j.debit(host, terms.collateral, "the host's collateral")
    start = j.height + 1
    j.put(
        key,
        StorageContract(
            publisher=sender,
            publisher_key=terms.publisher,
            host=host,
            host_key=terms.host,
            root=terms.root,
            chunk_count=terms.chunk_count,
            chunk_size=terms.chunk_size,
            price_per_window=terms.price_per_window,
            windows=terms.windows,
            window_blocks=terms.window_blocks,
            escrow=Amount(escrow),
            collateral=terms.collateral,
            revision=0,
            status=Status.PENDING,
            window=0,
            window_start=start,
            seed=b"",
            proven=False,
            windows_proven=0,
            windows_missed=0,
            opened_height=j.height,
        ),
    )
    if host == sender:
        j.put(party_key(sender, cid), Party(Role.BOTH))
    else:
        j.put(party_key(sender, cid), Party(Role.PUBLISHER))
        j.put(party_key(host, cid), Party(Role.HOST))
    j.put(due_key(start, cid), MARKER)
    j.emit(ContractOpened(cid, sender, host, Amount(escrow), terms.collateral, start))


def _check_terms(params: Params, terms: ContractTerms) -> None:
    limits = (
        ("window_blocks", terms.window_blocks, params.min_window_blocks, params.max_window_blocks),
        ("windows", terms.windows, 1, params.max_windows),
        ("chunk_count", terms.chunk_count, 1, params.max_chunk_count),
        ("chunk_size", terms.chunk_size, 1, params.max_chunk_size),
    )
    for name, value, low, high in limits:
        if not low <= value <= high:
            raise TermsInvalidError(f"{name} is {value}; this chain allows {low}..{high}")


def revise_contract(j: Journal, sender: bytes, body: ReviseContract) -> None:
    rev = body.revision
    contract = _contract(j, rev.contract_id)
    step(contract.status, Move.REVISE)
    if rev.revision <= contract.revision:
        raise RevisionStaleError(
            f"revision {rev.revision} is not above the contract's {contract.revision}"
        )
    if rev.chunk_count > j.params.max_chunk_count:
        raise TermsInvalidError(f"chunk_count {rev.chunk_count} is above this chain's limit")
    payload = encode(rev)
    for who, key, signature in (
        ("publisher", contract.publisher_key, body.publisher_signature),
        ("host", contract.host_key, body.host_signature),
    ):
        if not is_valid_signature(key, REVISION_DOMAIN, payload, signature):
            raise PartySignatureInvalidError(f"the {who}'s signature of the revision fails")
    j.put(
        contract_key(rev.contract_id),
        _replace(contract, root=rev.root, chunk_count=rev.chunk_count, revision=rev.revision),
    )
    j.emit(ContractRevised(rev.contract_id, rev.revision, rev.root, rev.chunk_count))


def submit_proof(j: Journal, sender: bytes, body: SubmitProof) -> None:
    cid = body.contract_id
    contract = _contract(j, cid)
    if sender != contract.host:
        raise SenderUnauthorizedError(f"only the host 0x{contract.host.hex()} proves {cid.hex()}")
    step(contract.status, Move.PROVE)
    if body.window != contract.window:
        when = "closed" if body.window < contract.window else "not open yet"
        raise ProofOutOfWindowError(
            f"window {body.window} is {when}; window {contract.window} is open "
            f"from height {contract.window_start} to "
            f"{contract.window_start + contract.window_blocks - 1}"
        )
    if contract.proven:
        raise WindowProvenError(f"window {contract.window} of {cid.hex()} is already proven")
    chunk_index, segment_index = challenge_indices(contract)
    segments = segment_count(contract.chunk_size)
    try:
        proof = ChainedProof.from_bytes(body.proof)
    except ProofError as exc:
        raise ProofPathInvalidError(f"malformed proof: {exc}") from None
    asked = (chunk_index, contract.chunk_count, segment_index, segments)
    given = (
        proof.chunk.index,
        proof.chunk.leaf_count,
        proof.segment.index,
        proof.segment.leaf_count,
    )
    if given != asked:
        raise ProofSegmentWrongError(
            f"window {contract.window} asks for segment {segment_index} of {segments} in chunk "
            f"{chunk_index} of {contract.chunk_count}; the proof is for segment {given[2]} of "
            f"{given[3]} in chunk {given[0]} of {given[1]}"
        )
    try:
        verify_chained(
            contract.root,
            body.segment,
            proof,
            chunk_index=chunk_index,
            chunk_count=contract.chunk_count,
            segment_index=segment_index,
            segment_count=segments,
        )
    except ProofError as exc:
        raise ProofPathInvalidError(str(exc)) from None
    j.put(contract_key(cid), _replace(contract, proven=True))
    j.emit(ProofAccepted(cid, contract.window))


def _contract(j: Journal, cid: bytes) -> StorageContract:
    contract = cast("StorageContract | None", j.get(contract_key(cid)))
    if contract is None:
        raise ContractUnknownError(f"no contract {cid.hex()}")
    return contract


# -- the due queue (begin_block) ---------------------------------------------------------


def run_due(j: Journal, previous_block_hash: bytes) -> None:
    """Start, roll or close every contract due at this height, in contract-id order."""
    for key, _ in j.state.scan(due_prefix(j.height)):
        j.delete(key)
        cid = key[-32:]
        contract = _contract(j, cid)
        if contract.status is Status.ACTIVE:
            contract = _settle(j, cid, contract)
            if contract.window + 1 >= contract.windows:
                _close(j, cid, contract)
                continue
            contract = _replace(contract, window=contract.window + 1)
            move = Move.ROLL
        else:
            move = Move.START
        _open_window(j, cid, contract, move, previous_block_hash)


def _open_window(
    j: Journal, cid: bytes, contract: StorageContract, move: Move, previous_block_hash: bytes
) -> None:
    contract = _replace(
        contract,
        status=step(contract.status, move),
        window_start=j.height,
        seed=window_seed(cid, previous_block_hash),
        proven=False,
    )
    j.put(contract_key(cid), contract)
    end = j.height + contract.window_blocks
    j.put(due_key(end, cid), MARKER)
    chunk_index, segment_index = challenge_indices(contract)
    j.emit(WindowOpened(cid, contract.window, chunk_index, segment_index, j.height, end - 1))


def _settle(j: Journal, cid: bytes, contract: StorageContract) -> StorageContract:
    installment = contract.price_per_window
    host = contract.host
    paid = burned = refunded = ZERO
    if contract.proven:
        burned = bps_ceil(installment, j.params.burn_bps)
        paid = Amount(installment - burned)
        j.credit(host, paid)
        j.burn(host, burned, BurnReason.PAYOUT)
        acct = j.account(host)
        j.set_account(host, _replace(acct, windows_proven=acct.windows_proven + 1))
        contract = _replace(contract, windows_proven=contract.windows_proven + 1)
    else:
        refunded = installment
        j.credit(contract.publisher, refunded)
        acct = j.account(host)
        j.set_account(host, _replace(acct, windows_missed=acct.windows_missed + 1))
        contract = _replace(contract, windows_missed=contract.windows_missed + 1)
    j.emit(WindowSettled(cid, contract.window, contract.proven, paid, burned, refunded))
    return _replace(contract, escrow=Amount(contract.escrow - installment))


def _close(j: Journal, cid: bytes, contract: StorageContract) -> None:
    missed = contract.windows_missed
    penalty = ZERO
    if 2 * missed > contract.windows:
        penalty = bps_ceil(contract.collateral, j.params.penalty_bps)
    returned = Amount(contract.collateral - penalty)
    j.credit(contract.host, returned)
    j.burn(contract.host, penalty, BurnReason.PENALTY)
    closed = _replace(
        contract,
        status=step(contract.status, Move.CLOSE),
        collateral=ZERO,
        seed=b"",
        proven=False,
    )
    j.put(contract_key(cid), closed)
    j.emit(ContractClosed(cid, missed, returned, penalty))


# -- queries ---------------------------------------------------------------------------


def contract_of(state: State, cid: bytes) -> StorageContract | None:
    return cast("StorageContract | None", state.get(contract_key(cid)))


def contracts_of(state: State, address: bytes) -> list[tuple[bytes, Role]]:
    """The contracts ``address`` is a party of, by id, with its role."""
    prefix = bytes([Tag.CONTRACT_BY_PARTY]) + address
    return [(key[-32:], cast(Party, entry).role) for key, entry in state.scan(prefix)]
