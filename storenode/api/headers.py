"""The gateway's header values for a work: pure.

Everything here is made from what a manifest says (its name and media type),
and a manifest is written by whoever published the work. So each value is
checked or cleaned before it goes into a header: a bad one must never break
the response or smuggle a header in.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote

_HEX = frozenset("0123456789abcdefABCDEF")
_CID_DIGITS = 64

# type "/" subtype *( OWS ";" OWS name "=" (token / quoted-string) ), RFC 9110 §8.3.1,
# with printable ASCII only.
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_QUOTED = r'"(?:[ !#-\[\]-~]|\\[ -~])*"'
_MEDIA_TYPE = re.compile(
    rf"{_TOKEN}/{_TOKEN}(?:[ \t]*;[ \t]*{_TOKEN}=(?:{_TOKEN}|{_QUOTED}))*",
)
FALLBACK_MEDIA_TYPE = "application/octet-stream"
_FALLBACK_NAME = "work"


class CidSyntaxError(ValueError):
    """A CID in a URL that is not 64 hex digits: answer 400."""


def parse_cid(text: str) -> bytes:
    """The 32-byte CID written as 64 hex digits, with or without ``0x``."""
    digits = text[2:] if text[:2] in ("0x", "0X") else text
    if len(digits) != _CID_DIGITS or not _HEX.issuperset(digits):
        raise CidSyntaxError(
            f"{text[:80]!r} is not a CID: write the work's CID as 64 hex digits "
            "(keccak256 of its bytes), optionally prefixed with 0x"
        )
    return bytes.fromhex(digits)


def etag_of(cid: bytes) -> str:
    """The work's strong ETag: its CID. The bytes under a CID never change."""
    return f'"{cid.hex()}"'


def media_type_header(media_type: str) -> str:
    """The ``Content-Type`` to send: the manifest's media type if it is a valid one."""
    text = media_type.strip()
    return text if _MEDIA_TYPE.fullmatch(text) else FALLBACK_MEDIA_TYPE


def content_disposition(name: str) -> str:
    """``inline`` with the work's name as the file name a browser saves it under.

    RFC 6266: an ASCII ``filename`` for old clients and a UTF-8 ``filename*``
    for the rest. Path separators and control characters are dropped, so the
    name is a plain file name.
    """
    clean = _file_name(name)
    ascii_name = _ascii_fallback(clean)
    value = f'inline; filename="{ascii_name}"'
    if ascii_name != clean:
        value += f"; filename*=UTF-8''{quote(clean, safe='')}"
    return value


def _ascii_fallback(name: str) -> str:
    """``name`` in ASCII for ``filename=``: accents dropped, no quote, still a plain name."""
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r'[/\\"]', "_", text).strip()
    return text if text not in ("", ".", "..") else _FALLBACK_NAME


def _file_name(name: str) -> str:
    """The last path component of ``name`` with control characters removed."""
    base = re.split(r"[/\\]", name)[-1]
    kept = "".join(c for c in base if unicodedata.category(c)[0] != "C")
    kept = kept.strip()
    return kept if kept not in ("", ".", "..") else _FALLBACK_NAME
