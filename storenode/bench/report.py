"""What every ``storenode bench`` shares: one pinned core, targets, the table."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from typing import Any

Check = Callable[[dict[str, Any]], bool]
Targets = dict[str, tuple[str, Check]]
"""key -> (the target as shown, whether a result meets it)."""


def pin_one_core() -> str:
    """Run this process on one core (the lowest it may use); say which."""
    try:
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return f"cpu {cpu}"
    except (AttributeError, OSError):
        return "not pinned"


def targets_met(result: dict[str, Any], targets: Targets) -> dict[str, bool]:
    return {name: bool(check(result)) for name, (_, check) in targets.items()}


def print_table(
    title: str,
    rows: Sequence[tuple[str, str, str]],
    result: dict[str, Any],
    targets: Targets,
) -> None:
    """One row per (label, key, unit): the figure, its target and whether it is met."""
    from rich.console import Console
    from rich.table import Table

    t = Table(title=title)
    t.add_column("what")
    t.add_column("figure", justify="right")
    t.add_column("target", justify="right")
    t.add_column("")
    for label, key, unit in rows:
        target, ok = "", ""
        if key in targets:
            shown = targets[key][0]
            target = shown if unit == "×" else f"{shown} {unit}"
            ok = "[green]met[/]" if result["targets_met"][key] else "[red]MISSED[/]"
        t.add_row(label, f"{result[key]:,.1f} {unit}", target, ok)
    Console().print(t)


def emit(result: dict[str, Any], json_out: bool, table: Callable[[dict[str, Any]], None]) -> int:
    """Print ``result`` as one JSON line or as the bench's table."""
    if json_out:
        print(json.dumps(result, sort_keys=True))
    else:
        table(result)
    return 0
