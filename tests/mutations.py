"""Hypothesis strategies for fuzzing parsers: valid encodings, changed.

A parser that reads bytes from a peer (or a file another party wrote) must
return a valid value or raise its documented typed error, whatever the bytes.
Random bytes rarely get past the first check, so these strategies start from
a valid encoding and change it:

* :func:`byte_mutations`: bits flipped, bytes set, cut or inserted;
* :func:`value_mutations`: the encoding decoded to plain values, one or two
  values (or the whole document) replaced, and encoded again, so the change
  lands inside a well-formed document: by a value of the same type at an edge
  (integers at the edges of u8..u64, bytes of 19..65, a string that is not
  UTF-8, an array with an element dropped or repeated) or by any value (other
  types, nesting deeper than the recursion limit);
* :func:`mutations`: either.

pytest puts ``tests/`` on ``sys.path`` (the folder of a ``conftest.py`` with no
``__init__.py``), so any test module imports this one as ``mutations``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any, Literal

import msgspec
from hypothesis import strategies as st

Codec = Literal["msgpack", "json"]

_EDGE_INTS = [0, 1, -1, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**63 - 1, 2**64 - 1, -(2**63)]
_SIZES = [0, 1, 19, 20, 21, 31, 32, 33, 63, 64, 65]


_DEPTH = 5_000
"""Nested arrays past the interpreter's recursion limit, and short enough that the
example hypothesis prints for a failure stays readable."""


@cache
def _deep(depth: int, codec: Codec) -> msgspec.Raw:
    """``depth`` nested arrays."""
    if codec == "json":
        return msgspec.Raw(b"[" * depth + b"]" * depth)
    return msgspec.Raw(b"\x91" * depth + b"\xc0")


@cache
def _not_utf8(codec: Codec) -> st.SearchStrategy[msgspec.Raw]:
    """A string whose bytes are not UTF-8 (no str object can hold them)."""
    bad = st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"a\x80b", b"\xf8\x88\x80\x80\x80"])
    if codec == "json":
        return bad.map(lambda b: msgspec.Raw(b'"' + b + b'"'))
    return bad.map(lambda b: msgspec.Raw(bytes([0xA0 | len(b)]) + b))


@cache
def _ints(codec: Codec) -> st.SearchStrategy[int]:
    ints = st.one_of(st.sampled_from(_EDGE_INTS), st.integers(-(2**63), 2**64 - 1))
    if codec == "json":
        ints = ints | st.integers(2**64, 10**400)  # JSON numbers have no bound
    return ints


_TEXTS = st.text(max_size=40) | st.sampled_from(["", "0", "x" * 65, "x" * 201, "0x" + "ab" * 20])
_BLOBS = st.sampled_from(_SIZES).flatmap(lambda n: st.binary(min_size=n, max_size=n))


@cache
def _leaves(codec: Codec) -> st.SearchStrategy[Any]:
    """Values to put in place of another: every type the codec has, at its edges."""
    scalars: st.SearchStrategy[Any] = st.one_of(
        st.none(), st.booleans(), _ints(codec), st.floats(), _TEXTS
    )
    if codec == "msgpack":
        scalars = st.one_of(scalars, _BLOBS)
    return st.one_of(
        scalars,
        _not_utf8(codec),
        st.lists(scalars, max_size=4),
        st.dictionaries(_TEXTS, scalars, max_size=3),
        st.just(_deep(_DEPTH, codec)),
    )


def _like(value: Any, codec: Codec) -> st.SearchStrategy[Any]:
    """Values of the type of ``value``, at its edges: what gets past a type check."""
    if isinstance(value, bool):
        return st.booleans()
    if isinstance(value, int):
        return _ints(codec)
    if isinstance(value, str):
        return _TEXTS | _not_utf8(codec)
    if isinstance(value, bytes):
        return _BLOBS
    if isinstance(value, list) and value:
        # an element dropped or repeated
        return st.integers(0, len(value) - 1).flatmap(
            lambda i: st.sampled_from([value[:i] + value[i + 1 :], value[: i + 1] + value[i:]])
        )
    return _leaves(codec)


def _nodes(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The path of every node of a decoded document, the root first."""
    out = [path]
    if isinstance(value, list):
        for i, item in enumerate(value):
            out += _nodes(item, (*path, i))
    elif isinstance(value, dict):
        for key, item in value.items():
            out += _nodes(item, (*path, key))
    return out


def _at(value: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        value = value[step]
    return value


def _replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, list):
        return [_replaced(v, rest, new) if i == head else v for i, v in enumerate(value)]
    return {k: _replaced(v, rest, new) if k == head else v for k, v in value.items()}


_CODECS: dict[str, tuple[Callable[[bytes], Any], Callable[[Any], bytes]]] = {
    "msgpack": (msgspec.msgpack.decode, msgspec.msgpack.encode),
    "json": (msgspec.json.decode, msgspec.json.encode),
}


def value_mutations(raw: bytes, codec: Codec = "msgpack") -> st.SearchStrategy[bytes]:
    """``raw`` (a valid encoding) with one or two of its values replaced."""
    decode, encode = _CODECS[codec]

    @st.composite
    def mutate(draw: st.DrawFn) -> bytes:
        doc = decode(raw)
        for _ in range(draw(st.integers(1, 2))):
            path = draw(st.sampled_from(_nodes(doc)))
            new = draw(_like(_at(doc, path), codec) | _leaves(codec))
            doc = _replaced(doc, path, new)
            if isinstance(doc, msgspec.Raw):
                break  # the root itself was replaced by raw bytes
        return encode(doc)

    return mutate()


def byte_mutations(raw: bytes, *, max_edits: int = 4) -> st.SearchStrategy[bytes]:
    """``raw`` with 1..``max_edits`` bits flipped, bytes set, runs cut or bytes inserted."""

    @st.composite
    def mutate(draw: st.DrawFn) -> bytes:
        out = bytearray(raw)
        for _ in range(draw(st.integers(1, max_edits))):
            at = draw(st.integers(0, max(len(out) - 1, 0)))
            op = draw(st.sampled_from(["flip", "set", "cut", "insert"]))
            if op == "insert" or not out:
                out[at:at] = draw(st.binary(min_size=1, max_size=8))
            elif op == "flip":
                out[at] ^= 1 << draw(st.integers(0, 7))
            elif op == "set":
                out[at] = draw(st.integers(0, 255))
            else:
                del out[at : at + draw(st.integers(1, 40))]
        return bytes(out)

    return mutate()


def mutations(raw: bytes, codec: Codec = "msgpack") -> st.SearchStrategy[bytes]:
    """Either kind of change to ``raw``."""
    return value_mutations(raw, codec) | byte_mutations(raw)
