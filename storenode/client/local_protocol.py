"""The messages of the node's local socket (docs/specs/local-socket.md), over the
standard library only: the thin ``fetch`` imports this, and so does the node.

A command of the node's own home asks the node to write a work into a file the
command has opened: one request packet carries ``{"fetch": "<cid>"}`` and the
file's descriptor; the node answers with packets of one JSON object each.

:func:`parse_request` and :func:`parse_reply` are the two parsers; they take
untrusted bytes and either return a typed message or raise
:class:`LocalMessageError`. :func:`error_reply` and :func:`error_of` turn a
:class:`ContentError` into its reply and back, so a failure reaches the command
as the same error, with the node's words, before or after the first byte.
"""

from __future__ import annotations

import json
from typing import Final, NamedTuple

from storenode.client.content import (
    ContentCorruptError,
    ContentError,
    ContentInfo,
    ContentNotFoundError,
    ContentUnavailableError,
    PaymentRequiredError,
)

SOCKET_NAME: Final = "node.sock"
"""The socket's file in the node's home."""
MAX_MESSAGE: Final = 4096
"""The largest packet either side sends or takes (a request is ~90 bytes)."""
MAX_PATH: Final = 107
"""The longest socket path a Unix socket address holds on Linux (sun_path less its NUL)."""


class LocalMessageError(Exception):
    """A packet that is not a message of the local socket's protocol."""


class FetchRequest(NamedTuple):
    cid: bytes


class InfoReply(NamedTuple):
    """The work opened: the node writes it next."""

    info: ContentInfo


class WrittenReply(NamedTuple):
    """Progress: the first ``length`` bytes of the work are in the file."""

    length: int


class DoneReply(NamedTuple):
    """The whole work, ``length`` bytes, is in the file."""

    length: int


class ErrorReply(NamedTuple):
    """The fetch failed; ``at`` bytes were written before (None: before the info)."""

    kind: str
    message: str
    at: int | None
    price: int
    cap: int
    errno: int


Reply = InfoReply | WrittenReply | DoneReply | ErrorReply

KINDS: Final = (
    "not_found",
    "payment_required",
    "unavailable",
    "corrupt",
    "failed",
    "bad_request",
    "write_failed",
)
"""Every ``kind`` an error reply may have."""


def encode(message: dict[str, object]) -> bytes:
    data = json.dumps(message, separators=(",", ":")).encode()
    if len(data) > MAX_MESSAGE:
        raise ValueError(f"a local message of {len(data)} bytes is over {MAX_MESSAGE}")
    return data


def fetch_request(cid: bytes) -> bytes:
    return encode({"fetch": cid.hex()})


def parse_request(data: bytes) -> FetchRequest:
    """The request in one packet from a command; :class:`LocalMessageError` otherwise."""
    doc = _object(data)
    if set(doc) != {"fetch"}:
        raise LocalMessageError(f"a request has the one key 'fetch', not {sorted(doc)}")
    cid_hex = doc["fetch"]
    if not isinstance(cid_hex, str) or len(cid_hex) != 64 or not _is_hex(cid_hex):
        raise LocalMessageError("'fetch' is a work's CID: 64 hex digits")
    return FetchRequest(bytes.fromhex(cid_hex))


def info_reply(info: ContentInfo) -> bytes:
    return encode(
        {
            "info": {
                "cid": info.cid.hex(),
                "name": info.name,
                "media_type": info.media_type,
                "length": info.length,
                "registered": info.registered,
            }
        }
    )


def error_reply(error: ContentError, at: int | None) -> bytes:
    """The reply for ``error``, raised after ``at`` bytes were written (None: before
    the work was opened). A message too long for a packet is cut."""
    doc: dict[str, object] = {"error": str(error)[:2048], "kind": _kind_of(error), "at": at}
    if isinstance(error, PaymentRequiredError):
        doc |= {"price": error.price, "cap": error.cap}
    return encode(doc)


def plain_error_reply(kind: str, message: str, at: int | None, *, errno: int = 0) -> bytes:
    """An error that is not the work's: a bad request, or the file could not be written."""
    assert kind in KINDS
    return encode({"error": message[:2048], "kind": kind, "at": at, "errno": errno})


def parse_reply(data: bytes) -> Reply:
    """One packet from the node; :class:`LocalMessageError` for anything else."""
    doc = _object(data)
    if "info" in doc:
        return InfoReply(_info(doc["info"]))
    if "written" in doc:
        return WrittenReply(_count(doc, "written"))
    if "done" in doc:
        return DoneReply(_count(doc, "done"))
    if "error" in doc:
        message, kind, at = doc["error"], doc.get("kind"), doc.get("at")
        if not isinstance(message, str) or kind not in KINDS:
            raise LocalMessageError("an error reply has a message and a known kind")
        if at is not None and not _natural(at):
            raise LocalMessageError("an error reply's 'at' is a byte count or null")
        price, cap, errno = (doc.get(key, 0) for key in ("price", "cap", "errno"))
        if not (
            isinstance(kind, str)
            and (at is None or isinstance(at, int))
            and isinstance(price, int)
            and isinstance(cap, int)
            and isinstance(errno, int)
            and _natural(price)
            and _natural(cap)
            and _natural(errno)
        ):
            raise LocalMessageError("an error reply's price, cap and errno are counts")
        return ErrorReply(kind, message, at, price, cap, errno)
    raise LocalMessageError(f"a reply has 'info', 'written', 'done' or 'error', not {sorted(doc)}")


def error_of(reply: ErrorReply) -> ContentError:
    """The :class:`ContentError` a work's error reply stands for."""
    if reply.kind == "not_found":
        return ContentNotFoundError(reply.message)
    if reply.kind == "payment_required":
        return PaymentRequiredError(reply.message, price=reply.price, cap=reply.cap)
    if reply.kind == "corrupt":
        return ContentCorruptError(reply.message)
    return ContentUnavailableError(reply.message)


def _kind_of(error: ContentError) -> str:
    if isinstance(error, ContentNotFoundError):
        return "not_found"
    if isinstance(error, PaymentRequiredError):
        return "payment_required"
    if isinstance(error, ContentUnavailableError):
        return "unavailable"
    if isinstance(error, ContentCorruptError):
        return "corrupt"
    return "failed"


def _object(data: bytes) -> dict[str, object]:
    if len(data) > MAX_MESSAGE:
        raise LocalMessageError(f"a packet of {len(data)} bytes is over {MAX_MESSAGE}")
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, ValueError):
        raise LocalMessageError("a packet is one JSON object in UTF-8") from None
    if not isinstance(doc, dict):
        raise LocalMessageError("a packet is one JSON object")
    return doc


def _info(doc: object) -> ContentInfo:
    if not isinstance(doc, dict):
        raise LocalMessageError("'info' is an object")
    cid, name, media_type = doc.get("cid"), doc.get("name"), doc.get("media_type")
    length, registered = doc.get("length"), doc.get("registered")
    if not (isinstance(cid, str) and len(cid) == 64 and _is_hex(cid)):
        raise LocalMessageError("'info' names the work's CID in 64 hex digits")
    if not (isinstance(name, str) and isinstance(media_type, str)):
        raise LocalMessageError("'info' has the work's name and media type")
    if not _natural(length) or not isinstance(registered, bool):
        raise LocalMessageError("'info' has the work's length and whether it is registered")
    assert isinstance(length, int)
    return ContentInfo(bytes.fromhex(cid), name, media_type, length, registered)


def _count(doc: dict[str, object], key: str) -> int:
    value = doc[key]
    if len(doc) != 1 or not _natural(value):
        raise LocalMessageError(f"'{key}' is a byte count alone")
    assert isinstance(value, int)
    return value


def _natural(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_hex(text: str) -> bool:
    return text.isascii() and all(c in "0123456789abcdefABCDEF" for c in text)


__all__ = [
    "KINDS",
    "MAX_MESSAGE",
    "MAX_PATH",
    "SOCKET_NAME",
    "DoneReply",
    "ErrorReply",
    "FetchRequest",
    "InfoReply",
    "LocalMessageError",
    "Reply",
    "WrittenReply",
    "encode",
    "error_of",
    "error_reply",
    "fetch_request",
    "info_reply",
    "parse_reply",
    "parse_request",
    "plain_error_reply",
]
