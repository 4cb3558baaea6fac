"""``storenode demo``: code a small catalogue into a LevelDB store, lose chunks, get it all back.

The steps, each a function a test can drive on its own:

1. write a catalogue (:func:`storenode.testing.catalogue.write_catalogue`):
   a few synthesized WAV tracks and a larger random file;
2. :func:`store_work`: cut each work into stripes, encode each stripe with
   Reed–Solomon into n shards and store every shard as a chunk keyed by its
   Merkle root, keeping its signed :class:`~storenode.publish.Manifest`;
3. :func:`destroy_chunks`: delete n−k randomly chosen chunks of every stripe;
4. :func:`verify_work`: read the surviving chunks back (the store verifies each
   against its id), decode, check every stripe hash, the work's keccak256 (its
   CID) and every byte against the original file.

Later issues grow this into the full local-network demo.
"""

from __future__ import annotations

import hashlib
import random
import shutil
import tempfile
import time
import wave
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter
from typing import Protocol

import numpy as np
from rich.console import Console
from rich.table import Table
from rich.text import Text

from storenode.coding.errors import CodingError
from storenode.coding.kernel import backend_name
from storenode.coding.rs import ReedSolomon
from storenode.identity import Identity, keccak256
from storenode.publish import (
    Manifest,
    ManifestError,
    StripeEntry,
    StripeLengthError,
    encode_stripes,
    join_stripes,
    sign_manifest,
    stripe_size_for,
)
from storenode.store import (
    ChunkCorruptError,
    ChunkNotFoundError,
    ChunkStore,
    LevelDBChunkStore,
    StoreError,
)
from storenode.testing.catalogue import write_catalogue

STRIPE_SIZE = 1 << 20
K = 4
N = 12
SEED = 2024
CAPACITY = 1 << 30
MARKER = ".storenode-demo"

MEDIA_TYPES = {".wav": "audio/wav", ".flac": "audio/flac", ".mp3": "audio/mpeg"}
DEFAULT_MEDIA_TYPE = "application/octet-stream"


class DemoError(Exception):
    """Base of the errors of the demo."""


class WorkUnrecoverableError(DemoError):
    """Fewer than k intact chunks of a stripe are left."""


class WorkMismatchError(DemoError):
    """Decoded bytes differ from what the manifest or the original file says."""


class DemoParamsError(DemoError, ValueError):
    """The sizes asked for make no demo (no works, or stripes that do not split into k)."""


class WorkDirUnusableError(DemoError):
    """The folder given with --dir holds files the demo did not write."""


class ChunkReader(Protocol):
    """What reading a work back needs of a store: verified reads."""

    def get(self, chunk_id: bytes) -> bytes:
        """The chunk's bytes, verified against its id; ``ChunkNotFoundError`` or
        ``ChunkCorruptError`` otherwise."""
        ...


# -- the manifest ---------------------------------------------------------------

PUBLISHER = Identity.from_seed(keccak256(b"storenode demo publisher"))
"""The demo's publisher: a fixed key, so a run signs the same manifests every time."""


def media_type(path: Path) -> str:
    return MEDIA_TYPES.get(path.suffix.lower(), DEFAULT_MEDIA_TYPE)


# -- the steps -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Stored:
    manifest: Manifest
    seconds: float
    """Wall time to fingerprint, encode, hash and store the chunks."""


def store_work(
    path: Path, store: ChunkStore, rs: ReedSolomon, *, stripe_size: int = STRIPE_SIZE
) -> Stored:
    """Encode the file at ``path`` and put every chunk in ``store`` (one batch per stripe)."""
    if stripe_size <= 0 or stripe_size % rs.k:
        raise ValueError(f"a stripe of {stripe_size} bytes does not split into k={rs.k} blocks")
    data = path.read_bytes()
    stripe_size = stripe_size_for(rs.k, stripe_size, length=len(data))
    start = perf_counter()
    stripes = []
    for entry, shards in encode_stripes(data, k=rs.k, n=rs.n, stripe_size=stripe_size):
        store.put_many(zip(entry.chunk_ids, shards, strict=True))
        stripes.append(entry)
    manifest = sign_manifest(
        PUBLISHER,
        cid=keccak256(data),
        name=path.name,
        media_type=media_type(path),
        length=len(data),
        k=rs.k,
        n=rs.n,
        stripe_size=stripe_size,
        stripes=stripes,
        created=int(time.time()),
    )
    return Stored(manifest, perf_counter() - start)


@dataclass(frozen=True, slots=True)
class Destroyed:
    chunks: int
    data_chunks: int
    """How many of them were data (systematic) shards, which decoding must rebuild."""


def destroy_chunks(store: ChunkStore, manifest: Manifest, rng: random.Random) -> Destroyed:
    """Delete n−k chunks of every stripe, chosen by ``rng`` afresh for each stripe."""
    chunks = data_chunks = 0
    for entry in manifest.stripes:
        for index in rng.sample(range(manifest.n), manifest.n - manifest.k):
            if store.delete(entry.chunk_ids[index]):
                chunks += 1
                data_chunks += index < manifest.k
    return Destroyed(chunks, data_chunks)


def read_stripe(store: ChunkReader, rs: ReedSolomon, entry: StripeEntry, number: int) -> bytes:
    """Decode one stripe from the first k chunks the store gives back intact.

    Raises :class:`WorkUnrecoverableError` when fewer than k are left and
    :class:`WorkMismatchError` when the decoded stripe does not match its hash.
    """
    indices: list[int] = []
    shards: list[bytes] = []
    corrupt: list[str] = []
    for index, chunk_id in enumerate(entry.chunk_ids):
        if len(shards) == rs.k:
            break
        try:
            shards.append(store.get(chunk_id))  # verified against chunk_id
        except ChunkNotFoundError:
            continue
        except ChunkCorruptError:
            corrupt.append(f"shard {index}, chunk {chunk_id.hex()[:16]}…")
            continue
        indices.append(index)
    if len(shards) < rs.k:
        bad = f" (corrupt on disk: {', '.join(corrupt)})" if corrupt else ""
        raise WorkUnrecoverableError(
            f"stripe {number}: {len(shards)} intact chunks left, k={rs.k} needed{bad}"
        )
    stripe = rs.decode_stripe(indices, shards)
    if hashlib.sha256(stripe).digest() != entry.sha256:
        raise WorkMismatchError(f"stripe {number}: the decoded bytes do not match its hash")
    return stripe


def read_work(store: ChunkReader, manifest: Manifest) -> bytes:
    """The work's bytes, decoded from the store and checked against its CID."""
    rs = ReedSolomon(manifest.k, manifest.n)
    stripes = [read_stripe(store, rs, entry, i) for i, entry in enumerate(manifest.stripes)]
    try:
        data = join_stripes(stripes, manifest.length)
    except StripeLengthError as e:
        raise WorkMismatchError(str(e)) from None
    if keccak256(data) != manifest.cid:
        raise WorkMismatchError("the decoded bytes do not hash to the work's CID")
    return data


@dataclass(frozen=True, slots=True)
class Verified:
    """The outcome of reading a work back and comparing it with the original."""

    ok: bool
    problem: str | None
    chunks_read: int
    seconds: float
    """Wall time to read, decode and check the stripes and the CID."""


def verify_work(store: ChunkReader, manifest: Manifest, original: Path) -> Verified:
    """Read ``manifest``'s work back from ``store`` and compare every byte with ``original``.

    Never raises for damage: a lost, corrupt or wrong chunk gives ``ok=False``
    and a ``problem`` saying what was found.
    """
    reads = _CountingReader(store)
    start = perf_counter()
    try:
        data = read_work(reads, manifest)
    except (DemoError, CodingError, StoreError) as e:
        return Verified(False, str(e), reads.count, perf_counter() - start)
    seconds = perf_counter() - start
    problem = _compare(data, original.read_bytes())
    return Verified(problem is None, problem, reads.count, seconds)


def _compare(data: bytes, original: bytes) -> str | None:
    if data == original:
        return None
    if len(data) != len(original):
        return f"decoded {len(data)} bytes, the original file has {len(original)}"
    a, b = np.frombuffer(data, np.uint8), np.frombuffer(original, np.uint8)
    return f"byte {int(np.flatnonzero(a != b)[0])} differs from the original file"


class _CountingReader:
    """Reads through to a store, counting the chunks that came back intact."""

    def __init__(self, store: ChunkReader) -> None:
        self._store = store
        self.count = 0

    def get(self, chunk_id: bytes) -> bytes:
        data = self._store.get(chunk_id)
        self.count += 1
        return data


# -- the command -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DemoParams:
    seconds: float = 5.0
    tracks: int = 3
    random_mib: int = 24
    k: int = K
    n: int = N
    stripe_size: int = STRIPE_SIZE
    seed: int = SEED

    def __post_init__(self) -> None:
        if self.tracks < 0 or self.random_mib < 0 or self.tracks + self.random_mib == 0:
            raise DemoParamsError("the catalogue needs at least one track or a random file")
        if self.tracks and not self.seconds > 0:
            raise DemoParamsError(f"tracks of {self.seconds} s: give a length above 0")
        if self.stripe_size <= 0 or self.stripe_size % self.k:
            raise DemoParamsError(
                f"stripes of {self.stripe_size} bytes do not split into k={self.k} blocks"
            )


@dataclass(frozen=True, slots=True)
class WorkReport:
    stored: Stored
    destroyed: Destroyed
    verified: Verified

    @property
    def manifest(self) -> Manifest:
        return self.stored.manifest


def run_demo(
    workdir: str | None = None,
    keep: bool = False,
    *,
    seconds: float = 5.0,
    tracks: int = 3,
    random_mib: int = 24,
    k: int = K,
    n: int = N,
    stripe_size: int = STRIPE_SIZE,
    seed: int = SEED,
    console: Console | None = None,
) -> int:
    """Run the demo in ``workdir`` (a temporary folder if None); 0 if every byte verified.

    The keywords shrink or reshape the run (for tests); the CLI uses the defaults.
    """
    out = console or _console(stderr=False)
    err = _console(stderr=True)
    try:
        rs = ReedSolomon(k, n)
        params = DemoParams(seconds, tracks, random_mib, k, n, stripe_size, seed)
        with _work_folder(workdir, keep) as folder:
            reports = _run(folder, rs, params, out)
    except (DemoError, ManifestError, StoreError, CodingError, OSError) as e:
        _say(err, f"storenode demo: {e}")
        return 1
    rc = _verdict(reports, params, out, err)
    if keep:
        _say(out, f"kept the catalogue and the store in {folder}")
    return rc


def _console(*, stderr: bool) -> Console:
    """A console for the demo's output; 120 columns when it is not a terminal (logs, pipes)."""
    console = Console(stderr=stderr, highlight=False)
    if not console.is_terminal:
        console.width = max(console.width, 120)
    return console


def _run(folder: Path, rs: ReedSolomon, params: DemoParams, out: Console) -> list[WorkReport]:
    _say(
        out,
        ("storenode demo", "bold"),
        f": Reed–Solomon k={rs.k} n={rs.n} over {_size(params.stripe_size)} stripes, "
        f"GF(2^8) kernel {backend_name()}",
    )
    paths = _step_catalogue(folder / "catalogue", params, out)
    total = sum(p.stat().st_size for p in paths)
    capacity = max(CAPACITY, 2 * total * rs.n // rs.k)
    with LevelDBChunkStore(folder / "store", capacity=capacity) as store:
        stored = _step_store(paths, store, rs, params.stripe_size, out)
        destroyed = _step_destroy(stored, store, random.Random(params.seed), out)
        verified = [verify_work(store, s.manifest, p) for s, p in zip(stored, paths, strict=True)]
        _say(
            out,
            f"4. read back the {rs.k} chunks left of every stripe, decoded, "
            "checked stripe hashes, CIDs and every byte",
        )
        reports = [WorkReport(*r) for r in zip(stored, destroyed, verified, strict=True)]
        out.print(_table(reports))
        _say(
            out,
            f"kernel {backend_name()} · k={rs.k} n={rs.n} · the store holds "
            f"{store.chunk_count} chunks, {store.used_bytes:,} bytes ({_size(store.used_bytes)}) "
            f"of {_size(store.capacity)}",
        )
    return reports


def _step_catalogue(directory: Path, params: DemoParams, out: Console) -> list[Path]:
    paths = write_catalogue(
        directory, seconds=params.seconds, tracks=params.tracks, random_mib=params.random_mib
    )
    total = sum(p.stat().st_size for p in paths)
    _say(out, f"1. wrote a catalogue of {len(paths)} works ({_size(total)}) to {directory}")
    grid = Table.grid(padding=(0, 2))
    for p in paths:
        grid.add_row("", Text(p.name), media_type(p), _describe(p), f"{p.stat().st_size:,} bytes")
    grid.columns[-1].justify = "right"
    out.print(grid)
    return paths


def _step_store(
    paths: Sequence[Path],
    store: LevelDBChunkStore,
    rs: ReedSolomon,
    stripe_size: int,
    out: Console,
) -> list[Stored]:
    folder = store.path
    stored = [store_work(p, store, rs, stripe_size=stripe_size) for p in paths]
    stripes = sum(len(s.manifest.stripes) for s in stored)
    chunks = sum(s.manifest.chunk_count for s in stored)
    _say(
        out,
        f"2. encoded {stripes} stripes into {chunks} chunks, "
        f"stored under their Merkle roots in {folder}",
    )
    grid = Table.grid(padding=(0, 2))
    for s in stored:
        grid.add_row("", Text(s.manifest.name), f"CID (keccak256) {s.manifest.cid.hex()}")
    out.print(grid)
    return stored


def _step_destroy(
    stored: Sequence[Stored], store: ChunkStore, rng: random.Random, out: Console
) -> list[Destroyed]:
    destroyed = [destroy_chunks(store, s.manifest, rng) for s in stored]
    m = stored[0].manifest
    _say(
        out,
        f"3. destroyed {m.n - m.k} of the {m.n} chunks of every stripe, chosen at random: "
        f"{sum(d.chunks for d in destroyed)} chunks, "
        f"{sum(d.data_chunks for d in destroyed)} of them data chunks",
    )
    return destroyed


def _describe(path: Path) -> str:
    """A few words on a file: the format of a WAV track, else nothing."""
    if media_type(path) != "audio/wav":
        return ""
    with wave.open(str(path), "rb") as w:
        rate, frames = w.getframerate(), w.getnframes()
        channels, bits = w.getnchannels(), 8 * w.getsampwidth()
    layout = {1: "mono", 2: "stereo"}.get(channels, f"{channels} channels")
    return f"{frames / rate:.1f} s, {rate / 1000:g} kHz {bits}-bit {layout} PCM"


def _verdict(reports: Sequence[WorkReport], params: DemoParams, out: Console, err: Console) -> int:
    failed = [r for r in reports if not r.verified.ok]
    if not failed:
        _say(
            out,
            (f"all {len(reports)} works verified", "bold green"),
            f": every byte came back after losing {params.n - params.k} of the {params.n} "
            "chunks of every stripe",
        )
        return 0
    _say(
        err,
        f"storenode demo: {len(failed)} of {len(reports)} works did not verify "
        "(run with --keep to inspect the store):",
    )
    for r in failed:
        _say(err, f"  {r.manifest.name}: {r.verified.problem}")
    return 1


def _table(reports: Sequence[WorkReport]) -> Table:
    table = Table(title="the catalogue, round trip", title_justify="left", title_style="bold")
    table.add_column("work", no_wrap=True)
    headers = (
        "bytes",
        "stripes",
        "chunks\nstored",
        "chunks\ndestroyed",
        "chunks\nread",
        "encode\n+store",
        "decode",
        "MB/s\nenc/dec",
    )
    for header in headers:
        table.add_column(header, justify="right", no_wrap=True)
    table.add_column("verified", justify="center")
    for r in reports:
        m, s, v = r.manifest, r.stored, r.verified
        table.add_row(
            Text(m.name),
            f"{m.length:,}",
            str(len(m.stripes)),
            str(m.chunk_count),
            str(r.destroyed.chunks),
            str(v.chunks_read),
            f"{s.seconds:.3f} s",
            f"{v.seconds:.3f} s",
            f"{_rate(m.length, s.seconds)} / {_rate(m.length, v.seconds)}",
            Text("✓", style="green") if v.ok else Text("✗", style="bold red"),
        )
    return table


def _say(console: Console, *parts: str | tuple[str, str]) -> None:
    """Print one line: plain strings, or (text, style) pairs; never parsed as markup."""
    console.print(Text.assemble(*parts), soft_wrap=True)


def _rate(size: int, seconds: float) -> str:
    return f"{size / seconds / 1e6:.0f}" if seconds > 0 else "-"


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


# -- the work folder ---------------------------------------------------------------

_PARTS = ("catalogue", "store")


@contextmanager
def _work_folder(workdir: str | None, keep: bool) -> Iterator[Path]:
    """The folder to work in; removed afterwards (only what the demo wrote) unless ``keep``."""
    if workdir is None:
        folder, made = Path(tempfile.mkdtemp(prefix="storenode-demo-")), True
    else:
        folder = Path(workdir)
        made = not folder.exists()
        _prepare(folder)
    try:
        yield folder
    finally:
        if not keep and made:
            shutil.rmtree(folder, ignore_errors=True)
        elif not keep:
            _clean(folder)


def _prepare(folder: Path) -> None:
    """Make ``folder`` ready: clear what an earlier demo left, refuse anything else."""
    folder.mkdir(parents=True, exist_ok=True)
    ours = (folder / MARKER).exists()
    for part in _PARTS:
        if (folder / part).exists() and not ours:
            raise WorkDirUnusableError(
                f"{folder / part} exists and was not written by storenode demo: "
                "pick another --dir, or an empty or new folder"
            )
    _clean(folder)
    (folder / MARKER).write_text("written by storenode demo; safe to delete\n")


def _clean(folder: Path) -> None:
    for part in _PARTS:
        shutil.rmtree(folder / part, ignore_errors=True)
    (folder / MARKER).unlink(missing_ok=True)
