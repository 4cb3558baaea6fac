"""HTTP ``Range`` requests (RFC 9110 §14) over a work of known length: pure.

A player seeks in a track by asking for a byte range; the gateway answers
with ``206 Partial Content`` and only those bytes, so a seek costs the
stripes under the range, not the whole work. The rules, for a work of
``length`` bytes:

* ``bytes=a-b`` is bytes ``a`` to ``b`` inclusive (``b`` is clamped to the
  last byte), ``bytes=a-`` is from ``a`` to the end, ``bytes=-n`` is the last
  ``n`` bytes (the whole work if it is shorter). The unit is case-insensitive;
  the list may have blanks around commas and empty elements (RFC 9110 §5.6.1).
* A header we cannot parse, an unknown unit, ``b < a``, more than
  :data:`MAX_RANGES` elements, or a work of length 0 (no byte range of it can
  be written down): the header is ignored and the whole work is sent with 200,
  as RFC 9110 §14.2 allows.
* No element satisfiable (every ``a >= length``, or ``bytes=-0``):
  :class:`RangeNotSatisfiableError`, which the gateway answers with 416 and
  ``Content-Range: bytes */length``.
* Several ranges: the unsatisfiable ones are dropped and the rest merged where
  they overlap or touch. If that leaves one range, it is served (206);
  otherwise the whole work is sent (200). We never send
  ``multipart/byteranges``: no player asks for it, and one body that a client
  can always use is worth more than saving the bytes between the ranges.

``If-Range`` (RFC 9110 §13.1.5) is answered by :func:`if_range_holds`: our
ETag is strong (a work's bytes never change under its CID), and we send no
``Last-Modified``, so a date never matches.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_RANGES = 64
"""More elements than this in one header and it is ignored (a cheap request
for lots of small ranges is a known way to make a server work hard)."""

# Every length we serve is below 2**64 < 10**20, so a position of more digits
# is "past the end" whatever its value; saturating it keeps int() away from
# Python's limit on the digits it converts.
_HUGE = 10**20
_DIGITS = re.compile(r"[0-9]+")
_OWS = " \t"


@dataclass(frozen=True, slots=True)
class ByteRange:
    """Bytes ``[start, end)`` of a work (``end`` exclusive, unlike HTTP's last-pos)."""

    start: int
    end: int

    def content_range(self, length: int) -> str:
        """The ``Content-Range`` value of a 206 answer for a work of ``length`` bytes."""
        return f"bytes {self.start}-{self.end - 1}/{length}"


class RangeNotSatisfiableError(Exception):
    """No range in the request overlaps the work: answer 416."""

    def __init__(self, length: int) -> None:
        super().__init__(
            f"the requested range is outside the work, which is {length} bytes long; "
            f"ask for a range that starts before byte {length}"
        )
        self.length = length

    @property
    def content_range(self) -> str:
        """The ``Content-Range`` value of the 416 answer."""
        return f"bytes */{self.length}"


class _MalformedError(Exception):
    """The header breaks the grammar: it is ignored."""


def parse_range(header: str | None, length: int) -> ByteRange | None:
    """The one range to serve of a ``length``-byte work, or None for the whole work.

    Raises :class:`RangeNotSatisfiableError` when the header is valid but no
    part of it is inside the work. Never raises anything else, whatever the
    header holds.
    """
    if header is None or length <= 0:
        return None
    try:
        wanted = [r for r in _parse(header, length) if r is not None]
    except _MalformedError:
        return None
    if not wanted:
        raise RangeNotSatisfiableError(length)
    merged = _coalesce(wanted)
    return merged[0] if len(merged) == 1 else None


def if_range_holds(if_range: str | None, etag: str) -> bool:
    """Whether to honour ``Range`` given the request's ``If-Range`` and our strong ETag.

    No ``If-Range``: yes. An entity tag: only if it is exactly ours (strong
    comparison, so a weak ``W/"…"`` never matches). A date: no, since we send
    no ``Last-Modified`` to compare it with.
    """
    if if_range is None:
        return True
    return if_range.strip(_OWS) == etag


def _parse(header: str, length: int) -> list[ByteRange | None]:
    """Each element's part inside the work (None if it has none), in header order.

    The whole header is checked before any of it is used: one bad element and
    :class:`_MalformedError` makes the caller ignore all of it.
    """
    unit, sep, range_set = header.strip(_OWS).partition("=")
    if not sep or unit.lower() != "bytes":
        raise _MalformedError
    elements = [e.strip(_OWS) for e in range_set.split(",")]
    elements = [e for e in elements if e]
    if not elements or len(elements) > MAX_RANGES:
        raise _MalformedError
    return [_element(element, length) for element in elements]


def _element(element: str, length: int) -> ByteRange | None:
    first_text, dash, last_text = element.partition("-")
    if not dash:
        raise _MalformedError
    if not first_text:  # suffix-range: the last n bytes
        suffix = _number(last_text)
        return ByteRange(max(0, length - suffix), length) if suffix else None
    first = _number(first_text)
    last = _number(last_text) if last_text else None
    if last is not None and last < first:
        raise _MalformedError
    if first >= length:
        return None
    return ByteRange(first, length if last is None else min(last + 1, length))


def _number(text: str) -> int:
    if not _DIGITS.fullmatch(text):
        raise _MalformedError
    digits = text.lstrip("0")
    return _HUGE if len(digits) > 20 else int(digits or "0")


def _coalesce(ranges: list[ByteRange]) -> list[ByteRange]:
    """Ranges merged where they overlap or touch, in order."""
    merged: list[ByteRange] = []
    for r in sorted(ranges, key=lambda r: r.start):
        if merged and r.start <= merged[-1].end:
            merged[-1] = ByteRange(merged[-1].start, max(merged[-1].end, r.end))
        else:
            merged.append(r)
    return merged
