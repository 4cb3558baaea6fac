"""The genesis: what every node of a chain agrees on before its first block.

A :class:`Genesis` holds the chain's start time, its validators (Ed25519
public keys, in schedule order), the token allocations, the contracts'
:class:`~contracts.Params` (chain id, minimum fee, burn 2%, penalty, window
limits) and the chain's own parameters: the block time, the default window
length offered in new storage contracts, and the block size limits.

* **Proposer schedule**: the proposer of block h is
  ``validators[h % len(validators)]``. Nothing assumes one validator.
* **Genesis hash** = ``SHA-256(encode(genesis))`` (the contracts' canonical
  msgpack, :mod:`contracts.encoding`); it is block 1's ``previous_hash``, so
  every block commits to the genesis.
* **File**: JSON (:func:`save_genesis` / :func:`load_genesis`), bytes as hex,
  amounts as decimal strings of base units (JSON numbers lose precision
  above 2**53)::

      {"version": 1, "chain_id": "localnet", "time": 1700000000, "block_time": 5,
       "window_blocks": 60, "max_block_txs": 4096, "max_block_bytes": 4194304,
       "validators": ["<64 hex digits>", ...],
       "allocations": {"0x<40 hex digits>": "1000000000000000000000000", ...},
       "params": {"min_fee": "100000000000000", "burn_bps": 200, "penalty_bps": 5000, ...}}

Spec: docs/specs/ledger.md, "Blocks and chain".
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Final

import msgspec

from contracts import Params, State, genesis_state
from contracts.encoding import MAX_AMOUNT, Address, Amount, Record, decoder, encode
from contracts.errors import GenesisInvalidError as ContractGenesisInvalidError
from storenode.identity import KeyInvalidError, SignatureInvalidError, verify
from storenode.ledger.block import MAX_BLOCK_SIZE, MAX_BLOCK_TXS
from storenode.ledger.errors import GenesisInvalidError
from storenode.wire.messages import U64, PublicKey

GENESIS_VERSION: Final = 1
MAX_VALIDATORS: Final = 1024
DEFAULT_BLOCK_TIME: Final = 5
DEFAULT_WINDOW_BLOCKS: Final = 60
DEFAULT_MAX_BLOCK_TXS: Final = 4096
DEFAULT_MAX_BLOCK_BYTES: Final = 4 * 1024 * 1024

_Version = Annotated[int, msgspec.Meta(ge=GENESIS_VERSION, le=GENESIS_VERSION)]
_Seconds = Annotated[int, msgspec.Meta(ge=1, le=86_400)]
_Blocks = Annotated[int, msgspec.Meta(ge=1, le=2**32 - 1)]
_Validators = Annotated[
    tuple[PublicKey, ...], msgspec.Meta(min_length=1, max_length=MAX_VALIDATORS)
]
_TxCount = Annotated[int, msgspec.Meta(ge=1, le=MAX_BLOCK_TXS)]
# Room for the header, the signature and the array headers of the transactions.
_TxBytes = Annotated[int, msgspec.Meta(ge=4096, le=MAX_BLOCK_SIZE - 256 * 1024)]


class Allocation(Record, frozen=True):
    address: Address
    amount: Amount


class Genesis(Record, frozen=True):
    """A chain's genesis. Build one with :func:`make_genesis` or :func:`load_genesis`."""

    version: _Version
    time: U64
    """Seconds since the epoch; block 1's time must be later."""
    validators: Annotated[
        tuple[PublicKey, ...], msgspec.Meta(min_length=1, max_length=MAX_VALIDATORS)
    ]
    allocations: tuple[Allocation, ...]
    """Sorted by address, each address once."""
    params: Params
    block_time: _Seconds
    """Seconds between blocks: the pace of the producer loop (not a validity rule)."""
    window_blocks: _Blocks
    """The window length new storage contracts are offered with (within the params' limits)."""
    max_block_txs: _TxCount
    max_block_bytes: _TxBytes
    """Most bytes of transactions (the sum of their encodings) in one block."""

    @property
    def chain_id(self) -> str:
        return self.params.chain_id

    @property
    def hash(self) -> bytes:
        return genesis_hash(self)

    def proposer_for(self, height: int) -> bytes:
        """The public key of the validator that produces block ``height``."""
        return self.validators[height % len(self.validators)]

    def state(self) -> State:
        """The committed state at height 0."""
        try:
            return genesis_state({a.address: a.amount for a in self.allocations}, self.params)
        except ContractGenesisInvalidError as exc:
            raise GenesisInvalidError(str(exc)) from exc


_DECODER: Final = decoder(Genesis)


def genesis_hash(genesis: Genesis) -> bytes:
    return hashlib.sha256(encode(genesis)).digest()


def check_genesis(genesis: Genesis) -> Genesis:
    """``genesis`` if a chain can start from it, else :class:`GenesisInvalidError`:
    every bound of the fields, distinct valid validator keys, sorted distinct
    allocations, a window length within the params' limits, allocations the
    contracts accept."""
    try:
        _DECODER.decode(encode(genesis))
    except (msgspec.DecodeError, NotImplementedError, OverflowError) as exc:  # int beyond u64
        raise GenesisInvalidError(f"the genesis is out of bounds: {exc}") from None
    if len(set(genesis.validators)) != len(genesis.validators):
        raise GenesisInvalidError("a validator is listed twice")
    for key in genesis.validators:
        try:
            verify(key, b"storenode/genesis-key-check", b"", bytes(64))
        except KeyInvalidError:
            raise GenesisInvalidError(f"validator {key.hex()} is not an Ed25519 key") from None
        except SignatureInvalidError:
            pass  # a valid key: the all-zero signature of course does not verify
    addresses = [a.address for a in genesis.allocations]
    if addresses != sorted(set(addresses)):
        raise GenesisInvalidError("allocations must be sorted by address, each address once")
    params = genesis.params
    if not params.min_window_blocks <= genesis.window_blocks <= params.max_window_blocks:
        raise GenesisInvalidError(
            f"window_blocks {genesis.window_blocks} is outside the params' limits "
            f"{params.min_window_blocks}..{params.max_window_blocks}"
        )
    genesis.state()
    return genesis


def make_genesis(
    chain_id: str,
    validators: Sequence[bytes],
    allocations: Mapping[bytes, int],
    *,
    time: int,
    block_time: int = DEFAULT_BLOCK_TIME,
    window_blocks: int | None = None,
    max_block_txs: int = DEFAULT_MAX_BLOCK_TXS,
    max_block_bytes: int = DEFAULT_MAX_BLOCK_BYTES,
    **params: Any,
) -> Genesis:
    """A checked genesis. ``params`` are :class:`contracts.Params` fields other
    than ``chain_id`` (``min_fee=…, burn_bps=…``); the rest keep their defaults.
    ``window_blocks`` defaults to 60, moved into the params' limits."""
    try:
        chain_params = Params(chain_id=chain_id, **params)
    except (TypeError, ValueError) as exc:
        raise GenesisInvalidError(f"params: {exc}") from None
    if window_blocks is None:
        window_blocks = min(
            max(DEFAULT_WINDOW_BLOCKS, chain_params.min_window_blocks),
            chain_params.max_window_blocks,
        )
    try:
        allocs = tuple(Allocation(a, Amount(amount)) for a, amount in sorted(allocations.items()))
    except (TypeError, ValueError) as exc:
        raise GenesisInvalidError(f"allocations: {exc}") from None
    genesis = Genesis(
        version=GENESIS_VERSION,
        time=time,
        validators=tuple(validators),
        allocations=allocs,
        params=chain_params,
        block_time=block_time,
        window_blocks=window_blocks,
        max_block_txs=max_block_txs,
        max_block_bytes=max_block_bytes,
    )
    return check_genesis(genesis)


# -- the JSON file --------------------------------------------------------------------

_TOP: Final = ("block_time", "window_blocks", "max_block_txs", "max_block_bytes")


def genesis_to_json(genesis: Genesis) -> bytes:
    params: dict[str, Any] = {}
    for field in msgspec.structs.fields(Params):
        if field.name != "chain_id":
            value = getattr(genesis.params, field.name)
            params[field.name] = str(int(value)) if field.type is Amount else value
    doc: dict[str, Any] = {
        "version": genesis.version,
        "chain_id": genesis.chain_id,
        "time": genesis.time,
        **{name: getattr(genesis, name) for name in _TOP},
        "validators": [key.hex() for key in genesis.validators],
        "allocations": {"0x" + a.address.hex(): str(int(a.amount)) for a in genesis.allocations},
        "params": params,
    }
    return msgspec.json.format(msgspec.json.encode(doc), indent=2) + b"\n"


def genesis_from_json(text: bytes | str) -> Genesis:
    """Parse a genesis file; :class:`GenesisInvalidError` says what is wrong with it."""
    try:
        doc = msgspec.json.decode(text)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise GenesisInvalidError(f"not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise GenesisInvalidError("a genesis file is one JSON object")
    expected = {"version", "chain_id", "time", "validators", "allocations", "params", *_TOP}
    if set(doc) != expected:
        raise GenesisInvalidError(
            f"keys must be exactly {sorted(expected)}; unknown {sorted(set(doc) - expected)}, "
            f"missing {sorted(expected - set(doc))}"
        )
    if doc["version"] != GENESIS_VERSION:
        raise GenesisInvalidError(f"genesis version {doc['version']!r}; this reads 1")
    chain_id = _typed(doc["chain_id"], str, "chain_id")
    params_doc = _typed(doc["params"], dict, "params")
    fields = {f.name: f.type for f in msgspec.structs.fields(Params) if f.name != "chain_id"}
    params: dict[str, Any] = {}
    for name, value in params_doc.items():
        if name == "chain_id":
            raise GenesisInvalidError("params.chain_id: the chain id is the top-level chain_id")
        if name not in fields:
            raise GenesisInvalidError(f"params.{name}: no such parameter; known: {sorted(fields)}")
        what = f"params.{name}"
        params[name] = _amount(value, what) if fields[name] is Amount else _typed(value, int, what)
    validators = [
        _hex(v, 32, "validators[]") for v in _typed(doc["validators"], list, "validators")
    ]
    allocations = {
        _hex(address, 20, "an allocation's address"): _amount(amount, f"allocations[{address}]")
        for address, amount in _typed(doc["allocations"], dict, "allocations").items()
    }
    kw = {name: _typed(doc[name], int, name) for name in _TOP}
    return make_genesis(
        chain_id,
        validators,
        allocations,
        time=_typed(doc["time"], int, "time"),
        **kw,
        **params,
    )


def save_genesis(genesis: Genesis, path: str | os.PathLike[str]) -> None:
    """Write the genesis file (replacing what is there, atomically)."""
    target = Path(path)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_bytes(genesis_to_json(genesis))
    os.replace(tmp, target)


def load_genesis(path: str | os.PathLike[str]) -> Genesis:
    try:
        text = Path(path).read_bytes()
    except OSError as exc:
        raise GenesisInvalidError(f"cannot read the genesis file {path}: {exc}") from None
    return genesis_from_json(text)


_MAX_AMOUNT_DIGITS: Final = len(str(MAX_AMOUNT))
_JSON_NAMES: Final = {str: "string", int: "integer", list: "array", dict: "object"}


def _typed(value: Any, type_: type, what: str) -> Any:
    if not isinstance(value, type_) or isinstance(value, bool):
        raise GenesisInvalidError(f"{what} must be a JSON {_JSON_NAMES[type_]}, not {value!r}")
    return value


def _hex(value: Any, size: int, what: str) -> bytes:
    text = _typed(value, str, what)
    digits = text[2:] if text.startswith("0x") else text
    try:
        raw = bytes.fromhex(digits)
    except ValueError:
        raise GenesisInvalidError(f"{what} {text!r} is not hex") from None
    if len(raw) != size:
        raise GenesisInvalidError(f"{what} {text!r} is {len(raw)} bytes, not {size}")
    return raw


def _amount(value: Any, what: str) -> int:
    text = _typed(value, str, what)
    if not text.isdigit() or not text.isascii() or len(text) > _MAX_AMOUNT_DIGITS:
        raise GenesisInvalidError(
            f"{what} is a decimal string of base units below 2**256, not {text!r}"
        )
    return int(text)
