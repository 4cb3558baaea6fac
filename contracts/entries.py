"""State entries: the key layout and the value of each kind of key.

A state is a map from keys to entries. A key is ``tag (1 byte) || id``; the
two bytes after the tag name the key's **bucket** (:func:`bucket_of`), which
is how the state root is cut (:mod:`contracts.state`). Ids start with an
address or a hash, so keys spread evenly over the 65,536 buckets, while all
keys under one address (an owner's works, an account's contracts) share a
bucket and can be listed without a scan.

| tag | key after the tag | entry |
| --- | --- | --- |
| 0x00 | ``00 00`` | :class:`Totals` |
| 0x00 | ``00 01`` | :class:`Params` |
| 0x01 | address | :class:`Account` |
| 0x02 | owner address, spender address | :class:`Allowance` |
| 0x03 | fingerprint | :class:`Work` |
| 0x04 | owner address, fingerprint | :class:`Marker` (works by owner) |
| 0x05 | contract id | :class:`StorageContract` |
| 0x06 | address, contract id | :class:`Party` (contracts by party) |
| 0x07 | u16 height mod 2**16, u64 height, contract id | :class:`Marker` (due at height) |
| 0x08 | fingerprint | :class:`Listing` |
| 0x09 | buyer address, fingerprint | :class:`Receipt` |

An entry's canonical bytes are ``encode(entry)`` (msgpack, as transactions).

The chain's :class:`Params` are an entry too: fixed at genesis, stored in the
state (so the state root commits to them) and read by every transition. Their
defaults are the economics of docs/contracts.md: 2% of every storage payout
burned, half the collateral burned from a host that missed more than half of
its windows, windows of 20 to 100,000 blocks.
"""

from __future__ import annotations

import struct
from enum import IntEnum
from typing import Annotated, Final

import msgspec

from contracts.encoding import ZERO, Address, Amount, Bps, ChainId, Record, decoder, encode, tokens
from contracts.errors import GenesisInvalidError
from contracts.tx import Share
from storenode.wire.messages import U32, U64, Hash32, PublicKey

_Limit = Annotated[int, msgspec.Meta(ge=1, le=2**32 - 1)]


# -- chain parameters --------------------------------------------------------------------


class Params(Record, frozen=True):
    """Everything a node must agree on besides the transactions themselves."""

    chain_id: ChainId
    """Named in every transaction and contract; a signature for one chain is
    worthless on another."""
    min_fee: Amount = tokens("0.0001")
    """Lowest fee a transaction may carry (base units). Fees go to the block producer."""
    burn_bps: Bps = 200
    """Share of each proven window's installment that is burned (200 = 2%)."""
    penalty_bps: Bps = 5_000
    """Share of the collateral burned from a host that missed more than half
    of its windows (5,000 = half)."""
    min_window_blocks: _Limit = 20
    """Shortest window: long enough that no single producer can keep a proof out."""
    max_window_blocks: _Limit = 100_000
    max_windows: _Limit = 100_000
    max_chunk_count: _Limit = 2**24
    max_chunk_size: _Limit = 2**26
    """Largest chunk (64 MiB): 65,536 segments of 1 KiB."""
    max_shares: _Limit = 16
    """Most stakeholders a work's price may be split among."""
    miss_weight: _Limit = 4
    """How many proven windows one missed window cancels in the reputation."""


# -- the entries ------------------------------------------------------------------------


class Tag(IntEnum):
    CHAIN = 0x00
    ACCOUNT = 0x01
    ALLOWANCE = 0x02
    WORK = 0x03
    WORK_BY_OWNER = 0x04
    CONTRACT = 0x05
    CONTRACT_BY_PARTY = 0x06
    DUE = 0x07
    LISTING = 0x08
    RECEIPT = 0x09


class Totals(Record, frozen=True):
    height: U64
    """Height of the block being applied (0: the genesis state)."""
    supply: Amount
    burned: Amount
    """Every token ever burned (payouts, voluntary burns, penalties)."""


class Account(Record, frozen=True):
    balance: Amount = ZERO
    nonce: U64 = 0
    """Transactions sent so far: the nonce the next one must carry."""
    burned: Amount = ZERO
    """Tokens this address burned that count toward its reputation: 2% of
    every storage payout it earned, and its voluntary burns (not penalties)."""
    windows_proven: U64 = 0
    windows_missed: U64 = 0


EMPTY_ACCOUNT: Final = Account()


class Allowance(Record, frozen=True):
    amount: Amount


class Work(Record, frozen=True):
    name: str
    version: str
    date: str
    author: str
    owner: Address
    manifest_hash: Hash32
    registered_height: U64
    registered_time: U64


class Marker(Record, frozen=True):
    """The value of an index key: the key is the information."""


MARKER: Final = Marker()


class Status(IntEnum):
    PENDING = 0
    """Opened; the first window opens at the next block."""
    ACTIVE = 1
    """A window is open and can be proven."""
    CLOSED = 2
    """Every window settled and the collateral released."""


class StorageContract(Record, frozen=True):
    publisher: Address
    publisher_key: PublicKey
    host: Address
    host_key: PublicKey
    root: Hash32
    chunk_count: U32
    chunk_size: U32
    price_per_window: Amount
    windows: U32
    window_blocks: U32
    escrow: Amount
    """Installments not yet settled: price_per_window × windows left."""
    collateral: Amount
    """The host's locked collateral (zero once released)."""
    revision: U64
    status: Status
    window: U32
    """The open window (while active), or the next one to open."""
    window_start: U64
    """First height of that window."""
    seed: bytes
    """The open window's challenge seed (empty while none is open)."""
    proven: bool
    windows_proven: U32
    windows_missed: U32
    opened_height: U64


class Role(IntEnum):
    PUBLISHER = 1
    HOST = 2
    BOTH = 3


class Party(Record, frozen=True):
    role: Role


class Listing(Record, frozen=True):
    price: Amount
    shares: tuple[Share, ...]


class Receipt(Record, frozen=True):
    price: Amount
    height: U64
    time: U64


Entry = (
    Totals
    | Params
    | Account
    | Allowance
    | Work
    | Marker
    | StorageContract
    | Party
    | Listing
    | Receipt
)

TOTALS_KEY: Final = bytes([Tag.CHAIN, 0, 0])
PARAMS_KEY: Final = bytes([Tag.CHAIN, 0, 1])
_U16_U64: Final = struct.Struct(">HQ")


def bucket_of(key: bytes) -> int:
    """The key's bucket: the two bytes after its tag."""
    return key[1] << 8 | key[2]


def account_key(address: bytes) -> bytes:
    return b"\x01" + address


def allowance_key(owner: bytes, spender: bytes) -> bytes:
    return b"\x02" + owner + spender


def work_key(fingerprint: bytes) -> bytes:
    return b"\x03" + fingerprint


def work_by_owner_key(owner: bytes, fingerprint: bytes) -> bytes:
    return b"\x04" + owner + fingerprint


def contract_key(contract_id: bytes) -> bytes:
    return b"\x05" + contract_id


def party_key(address: bytes, contract_id: bytes) -> bytes:
    return b"\x06" + address + contract_id


def due_prefix(height: int) -> bytes:
    return b"\x07" + _U16_U64.pack(height & 0xFFFF, height)


def due_key(height: int, contract_id: bytes) -> bytes:
    return due_prefix(height) + contract_id


def listing_key(fingerprint: bytes) -> bytes:
    return b"\x08" + fingerprint


def receipt_key(buyer: bytes, fingerprint: bytes) -> bytes:
    return b"\x09" + buyer + fingerprint


_DECODERS: Final[dict[int, msgspec.msgpack.Decoder[Entry]]] = {
    Tag.ACCOUNT: decoder(Account),
    Tag.ALLOWANCE: decoder(Allowance),
    Tag.WORK: decoder(Work),
    Tag.WORK_BY_OWNER: decoder(Marker),
    Tag.CONTRACT: decoder(StorageContract),
    Tag.CONTRACT_BY_PARTY: decoder(Party),
    Tag.DUE: decoder(Marker),
    Tag.LISTING: decoder(Listing),
    Tag.RECEIPT: decoder(Receipt),
}
_CHAIN_DECODERS: Final[dict[bytes, msgspec.msgpack.Decoder[Entry]]] = {
    TOTALS_KEY: decoder(Totals),
    PARAMS_KEY: decoder(Params),
}


def decode_entry(key: bytes, value: bytes) -> Entry:
    """The entry stored under ``key``; ValueError for an unknown key or bad bytes
    (a corrupt database, never a peer's input)."""
    dec = _CHAIN_DECODERS.get(key) if key[:1] == b"\x00" else _DECODERS.get(key[0])
    if dec is None:
        raise ValueError(f"no entry is stored under key {key.hex()}")
    try:
        return dec.decode(value)
    except msgspec.DecodeError as exc:
        raise ValueError(f"entry {key.hex()}: {exc}") from None


def check_params(params: Params) -> None:
    """Raise :class:`GenesisInvalidError` for parameters no chain can run with.

    Constructing a Struct in Python checks no bounds, so the params go through
    their own encoding and back, which checks every field as a node reading
    them from the chain would; then the fields are checked against each other.
    """
    try:
        _CHAIN_DECODERS[PARAMS_KEY].decode(encode(params))
    except msgspec.ValidationError as exc:
        raise GenesisInvalidError(f"params: {exc}") from None
    if params.min_window_blocks > params.max_window_blocks:
        raise GenesisInvalidError("params: min_window_blocks is above max_window_blocks")
