"""How the daemons log: sentences for a person, or one JSON object per line.

``[node] log_format = "text"`` (the default) writes
``2026-11-21 09:44:45,039 INFO storenode.host.daemon: proved window 0 of …``;
``"json"`` writes the same record as one object per line, for a log
collector::

    {"time": "2026-11-21T09:44:45.039Z", "level": "info",
     "logger": "storenode.host.daemon", "message": "proved window 0 of …"}

with ``"error"`` (the exception's type and text) when the record carries one.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Final

TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (messages never break the line)."""

    def format(self, record: logging.LogRecord) -> str:
        seconds = time.gmtime(record.created)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", seconds) + f".{int(record.msecs):03d}Z"
        doc: dict[str, str] = {
            "time": stamp,
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            doc["error"] = f"{type(exc).__name__}: {exc}"
        return json.dumps(doc, ensure_ascii=False)


def use_format(name: str) -> None:
    """Make every handler of the root logger write ``name`` ("text" or "json")."""
    formatter = JsonFormatter() if name == "json" else logging.Formatter(TEXT_FORMAT)
    for handler in logging.getLogger().handlers:
        handler.setFormatter(formatter)
