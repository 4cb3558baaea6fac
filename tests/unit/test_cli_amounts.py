"""Token amounts on the command line: decimals of whole tokens, parsed exactly."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import contracts
from storenode.cli import (
    DECIMALS,
    MAX_UNITS,
    TOKEN,
    AmountInvalidError,
    build_parser,
    format_amount,
    parse_amount,
)

ADDRESS = "0x" + "ab" * 20


def test_the_cli_counts_decimals_as_the_contracts_do() -> None:
    assert DECIMALS == contracts.DECIMALS
    assert TOKEN == contracts.TOKEN


@pytest.mark.parametrize(
    ("text", "units"),
    [
        ("1.5", 1_500_000_000_000_000_000),
        ("1", TOKEN),
        ("0", 0),
        ("0.0", 0),
        (".5", TOKEN // 2),
        ("0.000000000000000001", 1),
        ("1.000000000000000000", TOKEN),
        ("007.25", 7 * TOKEN + TOKEN // 4),
        (" 2 ", 2 * TOKEN),
        ("1000000", 10**6 * TOKEN),
        (format_amount(MAX_UNITS), MAX_UNITS),
    ],
)
def test_decimal_tokens_become_exact_base_units(text: str, units: int) -> None:
    assert parse_amount(text) == units


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "not an amount"),
        (" ", "not an amount"),
        (".", "not an amount"),
        ("1.", "not an amount"),
        ("-1", "not an amount"),
        ("+1", "not an amount"),
        ("1e18", "not an amount"),
        ("1,5", "not an amount"),
        ("1_000", "not an amount"),
        ("1.5.5", "not an amount"),
        ("0x10", "not an amount"),
        ("inf", "not an amount"),
        ("nan", "not an amount"),
        ("１", "not an amount"),  # a full-width digit
        ("1.0000000000000000001", "19 decimals"),
        ("0.0000000000000000000", "19 decimals"),
        (str(MAX_UNITS // TOKEN + 1), "more tokens than can exist"),
        ("9" * 5000, "more tokens than can exist"),
    ],
)
def test_anything_else_is_refused_with_a_reason(text: str, why: str) -> None:
    with pytest.raises(AmountInvalidError, match=why):
        parse_amount(text)


@pytest.mark.parametrize(
    ("units", "text"),
    [
        (0, "0"),
        (1, "0.000000000000000001"),
        (TOKEN, "1"),
        (TOKEN * 3 // 2, "1.5"),
        (10 * TOKEN, "10"),
        (TOKEN + 10, "1.00000000000000001"),
    ],
)
def test_base_units_are_shown_as_tokens_without_trailing_zeros(units: int, text: str) -> None:
    assert format_amount(units) == text


def test_a_negative_amount_cannot_be_shown() -> None:
    with pytest.raises(ValueError):
        format_amount(-1)


@given(st.integers(min_value=0, max_value=MAX_UNITS))
def test_every_amount_survives_being_shown_and_read_back(units: int) -> None:
    assert parse_amount(format_amount(units)) == units


@given(
    st.from_regex(r"\A[0-9]{1,30}(\.[0-9]{1,18})?\Z"),
)
def test_parsing_agrees_with_the_contracts_tokens_function(text: str) -> None:
    assert parse_amount(text) == contracts.tokens(text)
    assert format_amount(parse_amount(text)) == format_amount(contracts.tokens(text))


@pytest.mark.parametrize(
    "argv",
    [
        ["wallet", "transfer", ADDRESS, "1.5x"],
        ["wallet", "transfer", ADDRESS, "-3"],
        ["wallet", "transfer", ADDRESS, "1", "--fee", "0.1.1"],
        ["wallet", "burn", "1e3"],
        ["wallet", "transfer", "0x1234", "1"],
    ],
)
def test_a_bad_amount_or_address_on_the_command_line_exits_2_saying_why(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "is not an amount of tokens" in err or "is not an address" in err


def test_amounts_on_the_command_line_are_base_units() -> None:
    args = build_parser().parse_args(["wallet", "transfer", ADDRESS, "2.5", "--fee", "0.001"])
    assert args.amount == 2 * TOKEN + TOKEN // 2
    assert args.fee == TOKEN // 1000
    assert args.to == bytes.fromhex("ab" * 20)
