"""The ``storenode`` parser: built for the one command asked, the same as the whole."""

from __future__ import annotations

import argparse

import pytest

from storenode.cli import _GROUPS, _command_in, build_parser


def _commands(parser: argparse.ArgumentParser) -> list[str]:
    (sub,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return list(sub.choices)


def test_the_groups_name_every_command_the_modules_add_in_their_order() -> None:
    assert _commands(build_parser()) == [c for commands in _GROUPS.values() for c in commands]


@pytest.mark.parametrize("command", [c for commands in _GROUPS.values() for c in commands])
def test_a_command_parses_alone_as_it_does_with_the_rest(command: str) -> None:
    alone = build_parser(command)
    group = next(commands for commands in _GROUPS.values() if command in commands)
    assert _commands(alone) == list(group)
    full = build_parser()
    (sub_full,) = (a for a in full._actions if isinstance(a, argparse._SubParsersAction))
    (sub_alone,) = (a for a in alone._actions if isinstance(a, argparse._SubParsersAction))
    assert sub_alone.choices[command].format_help() == sub_full.choices[command].format_help()


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["fetch", "0x00", "-o", "f"], "fetch"),
        (["--home", "h", "stream", "0x00"], "stream"),
        (["--home=h", "-v", "publish", "x"], "publish"),
        (["--verbose", "host"], "host"),
        (["--help"], None),
        (["-h", "fetch"], None),
        (["--version"], None),
        (["nosuch"], None),
        (["--home"], None),
        ([], None),
    ],
)
def test_the_command_is_found_before_any_option_that_needs_every_parser(
    argv: list[str], command: str | None
) -> None:
    assert _command_in(argv) == command
