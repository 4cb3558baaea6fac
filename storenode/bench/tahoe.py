"""The Tahoe-LAFS half of ``storenode bench e2e``: the same sizes through a real Tahoe grid.

Tahoe-LAFS is the closest established peer written in Python (zfec, 3-of-10 by
default). The project keeps scripts that run a whole grid on 127.0.0.1 in
``../shared/peers/tahoe`` (beside the repository): ``grid.sh up`` installs
Tahoe 1.20.0 into that folder's own venv once, then starts an introducer, 10
storage nodes and a client (k=3, happy=7, n=10, Foolscap); ``bench.sh`` puts
and gets fresh random files of ``SIZE`` MiB ``REPS`` times through the
``tahoe`` CLI, then times ranged GETs of 64 KiB on the client's web API;
``grid.sh down`` stops what it recorded, by pid.

This module only calls those scripts (nothing of them is copied here): the
grid runs in a temporary ``GRID_DIR`` of its own, and is always brought down,
whatever happened. What the scripts measure is theirs: put and get are wall
time around the CLI (so they include its ~0.7 s start-up), the median of the
reps; ``ttfb_ms`` is curl's ``time_starttransfer`` (connect to first response
byte), the median of ``TTFB_REPS`` ranged reads after the put and get,
``ttfb_first_ms`` the first of them. MB/s is 10^6 bytes per second.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

GRID_UP_TIMEOUT_S: Final = 900.0
"""The first ``up`` also installs Tahoe from PyPI (~25 s here), then waits up to 180 s
for the storage servers to connect."""
GRID_DOWN_TIMEOUT_S: Final = 60.0
TTFB_REPS: Final = 5
RANGE_KIB: Final = 64
SCRIPTS: Final = ("grid.sh", "bench.sh")
RESULT_PREFIX: Final = "tahoe "
"""``bench.sh``'s last line: ``tahoe put_MBps=… get_MBps=… size_MiB=… … ttfb_ms=… …``."""

Say = Callable[[str], None]


class TahoeError(Exception):
    """The Tahoe grid could not be run or measured; the message says what to look at."""


@dataclass(frozen=True)
class TahoeFigures:
    """One ``bench.sh`` run: medians over its reps, as the script printed them."""

    size_mib: int
    put_MBps: float
    get_MBps: float
    ttfb_ms: float
    ttfb_first_ms: float
    client_hwm_mib: float
    storage_hwm_mib: float


def default_dir() -> Path | None:
    """``../shared/peers/tahoe`` beside this repository's checkout, if it is there."""
    repo = Path(__file__).resolve().parents[2]
    candidate = repo.parent / "shared" / "peers" / "tahoe"
    return candidate if is_tahoe_dir(candidate) else None


def is_tahoe_dir(directory: Path) -> bool:
    return all((directory / name).is_file() for name in SCRIPTS)


def parse_result(output: str) -> TahoeFigures:
    """The figures of ``bench.sh``'s output: its last line that starts with ``tahoe ``.

    Only ``key=value`` words are read; unknown keys are ignored so a newer script
    that prints more still parses, but every key used here must be present.
    """
    lines = [line for line in output.splitlines() if line.startswith(RESULT_PREFIX)]
    if not lines:
        raise TahoeError("bench.sh printed no result line (one starting with 'tahoe ')")
    pairs: dict[str, str] = {}
    for word in lines[-1].split()[1:]:
        key, sep, value = word.partition("=")
        if sep:
            pairs[key] = value
    fields = {
        "size_mib": "size_MiB",
        "put_MBps": "put_MBps",
        "get_MBps": "get_MBps",
        "ttfb_ms": "ttfb_ms",
        "ttfb_first_ms": "ttfb_first_ms",
        "client_hwm_mib": "client_hwm_MiB",
        "storage_hwm_mib": "storage_hwm_MiB",
    }
    missing = [key for key in fields.values() if key not in pairs]
    if missing:
        raise TahoeError(f"bench.sh's result line lacks {', '.join(missing)}: {lines[-1]!r}")
    try:
        size = int(pairs["size_MiB"])
        numbers = {name: float(pairs[key]) for name, key in fields.items() if name != "size_mib"}
    except ValueError as exc:
        raise TahoeError(f"bench.sh's result line has a value that is not a number: {exc}") from exc
    return TahoeFigures(size_mib=size, **numbers)


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _script(
    directory: Path, name: str, args: Sequence[str], env: dict[str, str], timeout: float
) -> str:
    """Run one of the grid's scripts; its stdout, or a :class:`TahoeError` with its output."""
    command = [str(directory / name), *args]
    try:
        done = subprocess.run(
            command,
            env=env,
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        raise TahoeError(f"{name} {' '.join(args)} took more than {timeout:.0f} s") from exc
    except OSError as exc:
        raise TahoeError(f"could not run {command[0]}: {exc}") from exc
    if done.returncode != 0:
        raise TahoeError(
            f"{name} {' '.join(args)} exited with {done.returncode}:\n"
            f"{_tail(done.stderr + done.stdout)}"
        )
    return done.stdout


@contextmanager
def grid(directory: Path, say: Say) -> Iterator[dict[str, str]]:
    """A running grid in a temporary ``GRID_DIR``; yields the environment for ``bench.sh``.

    ``down`` runs on every way out, including a failed or interrupted ``up`` (the
    script records each pid as it starts the process, so ``down`` finds them all).
    """
    with tempfile.TemporaryDirectory(prefix="storenode-bench-tahoe-") as tmp:
        env = os.environ | {"GRID_DIR": str(Path(tmp) / "grid")}
        try:
            say(f"starting a Tahoe-LAFS grid from {directory} (10 storage nodes, k=3 n=10)")
            _script(directory, "grid.sh", ["up"], env, GRID_UP_TIMEOUT_S)
            yield env
        except BaseException:
            try:
                _script(directory, "grid.sh", ["down"], env, GRID_DOWN_TIMEOUT_S)
            except TahoeError as exc:  # the first error is the one to report
                say(f"the Tahoe grid did not stop cleanly: {exc}")
            raise
        _script(directory, "grid.sh", ["down"], env, GRID_DOWN_TIMEOUT_S)


def bench_timeout(size_mib: int, reps: int) -> float:
    """Generous: Tahoe puts at ~20-40 MB/s here; a rep also writes and hashes the file."""
    return 120.0 + 2.0 * size_mib * reps


def run(
    directory: Path, sizes: Sequence[int], reps: int, say: Say | None = None
) -> dict[int, TahoeFigures]:
    """Bring a grid up, run ``bench.sh`` once per size, bring it down."""
    if not is_tahoe_dir(directory):
        raise TahoeError(f"{directory} has no grid.sh and bench.sh: pass the Tahoe peer folder")
    say = say or _stderr
    results: dict[int, TahoeFigures] = {}
    with grid(directory, say) as env:
        for size in sizes:
            say(f"Tahoe-LAFS: {size} MiB, {reps} rep(s)")
            run_env = env | {
                "SIZE": str(size),
                "REPS": str(reps),
                "TTFB_REPS": str(TTFB_REPS),
                "RANGE_KIB": str(RANGE_KIB),
            }
            out = _script(directory, "bench.sh", [], run_env, bench_timeout(size, reps))
            for line in out.splitlines():
                if line.startswith(("rep ", "put_MBps")):
                    say(f"Tahoe-LAFS {line}")
            figures = parse_result(out)
            if figures.size_mib != size:
                raise TahoeError(f"asked bench.sh for {size} MiB, it measured {figures.size_mib}")
            results[size] = figures
    return results


def _stderr(message: str) -> None:
    print(f"bench e2e: {message}", file=sys.stderr, flush=True)
