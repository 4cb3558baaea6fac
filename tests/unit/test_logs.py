"""Daemon logs as JSON lines: one parseable object per record, whatever the message."""

from __future__ import annotations

import json
import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from storenode.config import Config, ConfigValueError, parse_config, render_config
from storenode.logs import JsonFormatter, use_format


def _record(message: str, *args: object, exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, None) if exc is not None else None
    return logging.LogRecord(
        "storenode.host.daemon", logging.INFO, __file__, 1, message, args, exc_info
    )


def test_a_record_is_one_json_object_with_time_level_logger_and_message() -> None:
    line = JsonFormatter().format(_record("proved window %d of contract %s", 3, "1a2b…"))

    doc = json.loads(line)
    assert doc["level"] == "info"
    assert doc["logger"] == "storenode.host.daemon"
    assert doc["message"] == "proved window 3 of contract 1a2b…"
    assert doc["time"].endswith("Z") and "T" in doc["time"]


def test_an_exception_is_named_in_the_record() -> None:
    doc = json.loads(JsonFormatter().format(_record("failed", exc=OSError("disk full"))))

    assert doc["error"] == "OSError: disk full"


@given(st.text())
def test_any_message_stays_on_one_line_and_reads_back(message: str) -> None:
    line = JsonFormatter().format(_record("%s", message))

    assert "\n" not in line
    assert json.loads(line)["message"] == message


def test_use_format_switches_the_root_handlers() -> None:
    root = logging.getLogger()
    before = [(h, h.formatter) for h in root.handlers]
    handler = logging.StreamHandler()
    root.addHandler(handler)
    try:
        use_format("json")
        assert isinstance(handler.formatter, JsonFormatter)
        use_format("text")
        assert not isinstance(handler.formatter, JsonFormatter)
    finally:
        root.removeHandler(handler)
        for other, formatter in before:
            other.setFormatter(formatter)


def test_log_format_is_read_from_the_config_and_checked() -> None:
    config = Config(log_format="json")
    assert parse_config(render_config(config)).log_format == "json"
    with pytest.raises(ConfigValueError) as info:
        parse_config('[node]\nlog_format = "xml"\n')
    assert info.value.key == "node.log_format"
