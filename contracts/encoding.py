"""Canonical bytes: token amounts, the record convention, and the codec.

Every transaction and every state entry is a msgspec Struct with
``array_like=True, forbid_unknown_fields=True, frozen=True`` (the convention of
:mod:`storenode.wire.registry`), encoded as msgpack. msgspec writes a Struct's
fields in declaration order and every integer and string in its shortest
msgpack form, so one value has exactly one encoding; decoders in this package
re-encode what they decoded and refuse bytes that differ (see
:func:`contracts.tx.decode_tx`).

Token amounts are integers of base units (18 decimals, as ERC-20) up to
2**256 - 1. msgpack integers stop at 2**64 - 1 (about 18.4 tokens), so an
:class:`Amount` is encoded as a msgpack ``bin`` holding its big-endian bytes
with no leading zero byte (zero is the empty ``bin``), as RLP does. Spec:
docs/specs/ledger.md, "Transactions".
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any, Final, TypeVar

import msgspec

from storenode.identity import ID_SIZE

DECIMALS: Final = 18
TOKEN: Final = 10**DECIMALS
"""One token in base units."""
MAX_AMOUNT: Final = 2**256 - 1
BPS: Final = 10_000
"""Basis points in a whole."""

Address = Annotated[bytes, msgspec.Meta(min_length=ID_SIZE, max_length=ID_SIZE)]
ChainId = Annotated[
    str, msgspec.Meta(min_length=1, max_length=32, pattern=r"^[a-z0-9][a-z0-9._-]*$")
]
Bps = Annotated[int, msgspec.Meta(ge=0, le=BPS)]


class Amount(int):
    """A token amount in base units: an ``int`` in ``0 .. 2**256 - 1``.

    Arithmetic gives plain ints; wrap the result again (``Amount(a - b)``) to
    store it, which re-checks the range, so no stored amount is negative.
    """

    __slots__ = ()

    def __new__(cls, value: int = 0) -> Amount:
        if not isinstance(value, int):
            raise TypeError(f"an amount is an int of base units, not {type(value).__name__}")
        if not 0 <= value <= MAX_AMOUNT:
            raise ValueError(f"an amount is 0..2**256-1 base units, not {value}")
        return super().__new__(cls, value)

    def __repr__(self) -> str:
        return f"Amount({int(self)})"


ZERO: Final = Amount(0)


def tokens(whole: int | str) -> Amount:
    """``tokens(5)`` is five tokens; ``tokens("0.25")`` a quarter (exact, no floats)."""
    text = str(whole)
    units, _, frac = text.partition(".")
    if len(frac) > DECIMALS or not (units.isdigit() and (frac.isdigit() or not frac)):
        raise ValueError(f"{text!r} is not a token amount with at most {DECIMALS} decimals")
    return Amount(int(units) * TOKEN + int(frac.ljust(DECIMALS, "0") or "0"))


def format_tokens(units: int) -> str:
    """Base units as a decimal of tokens, without trailing zeros (``1.5``, ``2``)."""
    if units < 0:
        raise ValueError("an amount is not negative")
    whole, frac = divmod(units, TOKEN)
    digits = f"{frac:0{DECIMALS}d}".rstrip("0")
    return f"{whole}.{digits}" if digits else str(whole)


def bps_ceil(amount: int, bps: int) -> Amount:
    """``amount × bps / 10,000`` rounded up: a burn or penalty is never rounded away."""
    return Amount(-(-amount * bps // BPS))


def amount_bytes(value: int) -> bytes:
    """The minimal big-endian bytes of an amount (empty for zero)."""
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


def _enc_hook(obj: Any) -> Any:
    if type(obj) is Amount:
        return amount_bytes(obj)
    raise NotImplementedError(f"{type(obj).__qualname__} has no canonical encoding")


def _dec_hook(type_: type, obj: Any) -> Any:
    if type_ is Amount:
        if type(obj) is not bytes:
            raise TypeError("an amount is a msgpack bin")
        if len(obj) > 32:
            raise ValueError("an amount is at most 32 bytes")
        if obj[:1] == b"\x00":
            raise ValueError("an amount has no leading zero byte")
        return Amount(int.from_bytes(obj, "big"))
    raise NotImplementedError(f"cannot decode {type_!r}")


class Record(msgspec.Struct, array_like=True, forbid_unknown_fields=True, frozen=True, gc=False):
    """Base of every encoded Struct of the contracts (transactions, entries, events).

    A field declared :class:`Amount` holds an Amount even when given a plain
    int (``Transfer(to, 5 * TOKEN)``): it is converted, and range-checked, when
    the Struct is made, so no plain int can reach the encoder.
    """

    def __post_init__(self) -> None:
        cls = type(self)
        names = _AMOUNT_FIELDS.get(cls)
        if names is None:
            fields = msgspec.structs.fields(cls)
            names = _AMOUNT_FIELDS[cls] = tuple(f.name for f in fields if f.type is Amount)
        for name in names:
            value = getattr(self, name)
            if type(value) is not Amount:
                msgspec.structs.force_setattr(self, name, Amount(value))


_AMOUNT_FIELDS: dict[type, tuple[str, ...]] = {}


_ENCODER: Final = msgspec.msgpack.Encoder(enc_hook=_enc_hook)
encode: Final = _ENCODER.encode
"""``encode(record) -> bytes``: the canonical msgpack bytes."""

R = TypeVar("R")


def decoder(type_: type[R]) -> msgspec.msgpack.Decoder[R]:
    """A msgpack decoder for ``type_`` that knows :class:`Amount`; on bad bytes it
    raises one of :data:`DECODE_ERRORS`."""
    return msgspec.msgpack.Decoder(type_, dec_hook=_dec_hook)


DECODE_ERRORS: Final = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)
"""What a :func:`decoder` raises on bad bytes: msgspec's DecodeError (a
ValidationError is one), UnicodeDecodeError for a str that is not UTF-8, and
RecursionError for nesting deeper than the interpreter's recursion limit (an
Amount is read as any msgpack value before the hook checks it is a bin, so a
few KiB of nested arrays in its place get that far)."""


def sha256(*parts: bytes) -> bytes:
    h = hashlib.sha256()
    for part in parts:
        h.update(part)
    return h.digest()
