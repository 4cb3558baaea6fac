"""Range requests (RFC 9110 §14) over a work of known length."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from storenode.api.ranges import (
    MAX_RANGES,
    ByteRange,
    RangeNotSatisfiableError,
    if_range_holds,
    parse_range,
)

LENGTH = 1000


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-99", ByteRange(0, 100)),
        ("bytes=100-", ByteRange(100, LENGTH)),
        ("bytes=-100", ByteRange(900, LENGTH)),
        ("bytes=-5000", ByteRange(0, LENGTH)),  # a suffix longer than the work: all of it
        ("bytes=990-5000", ByteRange(990, LENGTH)),  # last-pos past the end is clamped
        ("bytes=999-999", ByteRange(999, LENGTH)),
        ("bytes=0-0", ByteRange(0, 1)),
        ("Bytes=10-19", ByteRange(10, 20)),  # the unit is case-insensitive
        (" bytes=10-19 ", ByteRange(10, 20)),
        ("bytes= 10-19 ,", ByteRange(10, 20)),  # list syntax: blanks and empty elements
        ("bytes=0010-0019", ByteRange(10, 20)),
    ],
)
def test_single_ranges_select_the_bytes_a_player_asked_for(
    header: str, expected: ByteRange
) -> None:
    assert parse_range(header, LENGTH) == expected


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-99,100-199", ByteRange(0, 200)),  # touching
        ("bytes=50-150,0-99", ByteRange(0, 151)),  # overlapping, out of order
        ("bytes=0-99,5000-6000", ByteRange(0, 100)),  # the unsatisfiable one is dropped
        ("bytes=900-,-50", ByteRange(900, LENGTH)),
        ("bytes=0-9,20-29", None),  # disjoint: the whole work with 200
        ("bytes=0-0,-1", None),
    ],
)
def test_several_ranges_are_served_only_when_they_make_one(
    header: str, expected: ByteRange | None
) -> None:
    assert parse_range(header, LENGTH) == expected


@pytest.mark.parametrize(
    "header",
    [
        "",
        "bytes",
        "bytes=",
        "bytes=,",
        "items=0-10",  # unknown unit
        "bytes 0-10",
        "bytes=10",
        "bytes=a-b",
        "bytes=20-10",  # last before first: invalid
        "bytes=0-10,20-10",  # one bad element spoils the header
        "bytes=--5",
        "bytes=1-2-3",
        "bytes=+1-2",
        "bytes=\u0661-\u0662",  # Arabic-Indic digits are not DIGIT
        "bytes=0x10-0x20",
        "bytes=" + ",".join(["0-1"] * (MAX_RANGES + 1)),
    ],
)
def test_a_header_that_breaks_the_grammar_is_ignored(header: str) -> None:
    assert parse_range(header, LENGTH) is None


@pytest.mark.parametrize("header", ["bytes=1000-", "bytes=5000-6000", "bytes=-0", "bytes=1000-,-0"])
def test_a_range_wholly_outside_the_work_is_not_satisfiable(header: str) -> None:
    with pytest.raises(RangeNotSatisfiableError) as caught:
        parse_range(header, LENGTH)
    assert caught.value.content_range == f"bytes */{LENGTH}"
    assert "1000 bytes long" in str(caught.value)


def test_no_header_or_an_empty_work_means_the_whole_work() -> None:
    assert parse_range(None, LENGTH) is None
    assert parse_range("bytes=0-10", 0) is None
    assert parse_range("bytes=-10", 0) is None


def test_positions_with_many_digits_are_past_any_end() -> None:
    huge = "9" * 5000  # more digits than int() converts by default
    assert parse_range(f"bytes=0-{huge}", LENGTH) == ByteRange(0, LENGTH)
    assert parse_range(f"bytes=-{huge}", LENGTH) == ByteRange(0, LENGTH)
    with pytest.raises(RangeNotSatisfiableError):
        parse_range(f"bytes={huge}-", LENGTH)


def test_content_range_names_inclusive_positions() -> None:
    assert ByteRange(100, 200).content_range(1000) == "bytes 100-199/1000"


def test_if_range_honours_range_only_for_our_own_strong_etag() -> None:
    etag = '"ab12"'
    assert if_range_holds(None, etag)
    assert if_range_holds('"ab12"', etag)
    assert if_range_holds(' "ab12" ', etag)
    assert not if_range_holds('W/"ab12"', etag)
    assert not if_range_holds('"cd34"', etag)
    assert not if_range_holds("Sat, 21 Nov 2026 09:00:00 GMT", etag)


# -- properties -------------------------------------------------------------------------------

lengths = st.integers(min_value=1, max_value=300)
positions = st.integers(min_value=0, max_value=400)
specs = st.one_of(
    st.tuples(positions, st.none()),  # a-
    st.tuples(positions, positions).map(lambda t: (min(t), max(t))),  # a-b, a <= b
    st.tuples(st.none(), positions),  # -n
)


def _spec_text(spec: tuple[int | None, int | None]) -> str:
    first, last = spec
    return f"{'' if first is None else first}-{'' if last is None else last}"


def _covered(spec: tuple[int | None, int | None], length: int) -> set[int]:
    """The bytes one element asks for, by RFC 9110's definitions."""
    first, last = spec
    if first is None:
        assert last is not None
        return set(range(max(0, length - last), length))
    return set(range(first, length if last is None else min(last + 1, length)))


@given(length=lengths, elements=st.lists(specs, min_size=1, max_size=6))
def test_well_formed_ranges_serve_exactly_the_bytes_asked_for_when_they_are_one_range(
    length: int, elements: list[tuple[int | None, int | None]]
) -> None:
    header = "bytes=" + ", ".join(_spec_text(e) for e in elements)
    wanted = set().union(*(_covered(e, length) for e in elements))
    if not wanted:
        with pytest.raises(RangeNotSatisfiableError):
            parse_range(header, length)
        return
    result = parse_range(header, length)
    if wanted == set(range(min(wanted), max(wanted) + 1)):
        assert result == ByteRange(min(wanted), max(wanted) + 1)
    else:
        assert result is None


_RANGE_ALPHABET = st.sampled_from(list("bytesBYTES=-,0123456789 \t;x\u0661"))


@given(
    header=st.one_of(
        st.text(),
        st.text(_RANGE_ALPHABET, max_size=40),
        st.text(_RANGE_ALPHABET, max_size=40).map(lambda t: "bytes=" + t),
    ),
    length=st.integers(min_value=0, max_value=10**12),
)
@example(header="bytes=0-", length=1)
def test_any_header_gives_a_range_inside_the_work_or_the_typed_error(
    header: str, length: int
) -> None:
    try:
        result = parse_range(header, length)
    except RangeNotSatisfiableError as error:
        assert error.length == length
        return
    if result is not None:
        assert 0 <= result.start < result.end <= length
