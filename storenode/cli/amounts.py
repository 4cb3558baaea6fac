"""Token amounts, addresses and hashes on the command line.

Amounts are read and shown as decimals of whole tokens (``1.5`` is
1.5 × 10^18 base units), exactly, never through a float.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from typing import Any

DECIMALS = 18
"""The contracts' ``DECIMALS`` (not imported: ``contracts`` is slow to import)."""
TOKEN: int = 10**DECIMALS
MAX_UNITS: int = 2**256 - 1
MAX_WHOLE_DIGITS = len(str(MAX_UNITS // TOKEN))
_AMOUNT = re.compile(r"([0-9]*)(?:\.([0-9]+))?", re.ASCII)
_HEX = re.compile(r"(?:0x)?([0-9a-fA-F]*)", re.ASCII)


class AmountInvalidError(ValueError):
    """Text that is not an amount of tokens."""


def parse_amount(text: str) -> int:
    """Base units of a decimal amount of tokens (``"1.5"``, ``"2"``, ``".25"``):
    at most 18 decimals, at most 2**256 - 1 base units; exact."""
    m = _AMOUNT.fullmatch(text.strip())
    if m is None or not (m.group(1) or m.group(2)):
        raise AmountInvalidError(
            f"{text!r} is not an amount of tokens: write a decimal number such as 1.5"
        )
    whole: str = (m.group(1) or "").lstrip("0") or "0"
    frac: str = m.group(2) or ""
    if len(frac) > DECIMALS:
        raise AmountInvalidError(
            f"{text!r} has {len(frac)} decimals; a token has at most {DECIMALS}"
        )
    too_large = AmountInvalidError(f"{text!r} is more tokens than can exist")
    if len(whole) > MAX_WHOLE_DIGITS:
        raise too_large
    units = int(whole) * TOKEN + int(frac.ljust(DECIMALS, "0"))
    if units > MAX_UNITS:
        raise too_large
    return units


def format_amount(units: int) -> str:
    """Base units as a decimal of tokens, without trailing zeros (``1.5``, ``2``)."""
    from contracts.encoding import format_tokens

    return format_tokens(units)


def parse_hex(text: str, size: int, what: str) -> bytes:
    m = _HEX.fullmatch(text.strip())
    if m is None or len(m.group(1)) != 2 * size:
        raise ValueError(f"{text!r} is not {what}: expected 0x and {2 * size} hex digits")
    return bytes.fromhex(m.group(1))


def _arg(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse ``type`` that reports ``parse``'s ValueError as a usage error (exit 2)."""

    def convert(text: str) -> Any:
        try:
            value = parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return value

    convert.__name__ = parse.__name__
    return convert


amount_arg = _arg(parse_amount)
address_arg = _arg(lambda t: parse_hex(t, 20, "an address"))
hash_arg = _arg(lambda t: parse_hex(t, 32, "a hash"))
