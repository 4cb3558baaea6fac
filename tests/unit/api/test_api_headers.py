"""Header values made from what a manifest says: CIDs, media types, file names."""

from __future__ import annotations

import contextlib
from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from storenode.api.headers import (
    FALLBACK_MEDIA_TYPE,
    CidSyntaxError,
    content_disposition,
    etag_of,
    media_type_header,
    parse_cid,
)

CID = bytes(range(32))


def test_a_cid_is_read_with_or_without_0x_in_either_case() -> None:
    assert parse_cid(CID.hex()) == CID
    assert parse_cid("0x" + CID.hex()) == CID
    assert parse_cid("0X" + CID.hex().upper()) == CID


@pytest.mark.parametrize(
    "text",
    [
        "",
        "0x",
        CID.hex()[:-1],
        CID.hex() + "0",
        "zz" + CID.hex()[2:],
        " " + CID.hex()[1:],
        "\u0661" * 64,
        "0x0x" + CID.hex()[4:],
    ],
)
def test_anything_but_64_hex_digits_is_not_a_cid(text: str) -> None:
    with pytest.raises(CidSyntaxError, match="64 hex digits"):
        parse_cid(text)


@given(st.binary(min_size=32, max_size=32))
def test_every_cid_round_trips_through_its_hex(cid: bytes) -> None:
    assert parse_cid(cid.hex()) == cid
    assert etag_of(cid) == f'"{cid.hex()}"'


@given(st.text(max_size=80))
def test_any_text_is_a_cid_or_the_typed_error(text: str) -> None:
    with contextlib.suppress(CidSyntaxError):
        assert len(parse_cid(text)) == 32


@pytest.mark.parametrize(
    "media_type",
    [
        "audio/mpeg",
        "audio/flac",
        "audio/wav",
        "text/plain; charset=utf-8",
        'audio/ogg; codecs="opus"',
        "application/vnd.example+json",
    ],
)
def test_valid_media_types_are_sent_as_published(media_type: str) -> None:
    assert media_type_header(media_type) == media_type


@pytest.mark.parametrize(
    "media_type",
    [
        "",
        "audio",
        "audio/",
        "/mpeg",
        "audio/mpeg\r\nSet-Cookie: a=b",
        "audio/mp\u00e9g",
        "audio mpeg",
        "audio/mpeg; codecs",
    ],
)
def test_an_invalid_media_type_becomes_octet_stream(media_type: str) -> None:
    assert media_type_header(media_type) == FALLBACK_MEDIA_TYPE


@given(st.text())
def test_any_media_type_gives_a_printable_ascii_header(media_type: str) -> None:
    value = media_type_header(media_type)
    assert value.isascii() and value.isprintable() and "\n" not in value


def test_a_plain_name_is_the_file_name() -> None:
    assert content_disposition("track 01.flac") == 'inline; filename="track 01.flac"'


def test_a_path_in_the_name_is_dropped() -> None:
    assert content_disposition("../../etc/passwd") == 'inline; filename="passwd"'
    assert content_disposition("C:\\music\\a.mp3") == 'inline; filename="a.mp3"'
    assert content_disposition("music/") == 'inline; filename="work"'


def test_a_non_ascii_name_gets_an_ascii_fallback_and_the_utf8_form() -> None:
    value = content_disposition("Café – süß.mp3")
    assert value.startswith('inline; filename="Cafe ')
    assert "filename*=UTF-8''Caf%C3%A9%20%E2%80%93%20s%C3%BC%C3%9F.mp3" in value


def test_quotes_and_control_characters_cannot_break_the_header() -> None:
    value = content_disposition('a"b\r\nSet-Cookie: x.mp3')
    assert "\r" not in value and "\n" not in value
    assert value.startswith('inline; filename="a_bSet-Cookie: x.mp3"')


@given(st.text())
def test_any_name_gives_a_header_that_names_a_plain_file(name: str) -> None:
    value = content_disposition(name)
    assert value.isascii() and value.isprintable()
    assert value.startswith('inline; filename="')
    _, _, encoded = value.partition("filename*=UTF-8''")
    names = [value.split('"')[1]] + ([unquote(encoded)] if encoded else [])
    for shown in names:
        assert shown and "/" not in shown and "\\" not in shown and shown not in (".", "..")


def test_the_ascii_fallback_is_a_plain_name_too() -> None:
    assert content_disposition("a\uff0fb") == (
        "inline; filename=\"a_b\"; filename*=UTF-8''a%EF%BC%8Fb"
    )
    assert content_disposition("\u2025").startswith('inline; filename="work"')
