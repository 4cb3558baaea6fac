"""Which files a publish covers, and what media type each one is.

``storenode publish PATH...`` takes files and folders. A file named on the
command line is a work whatever its type; a folder is a catalogue: every
audio file in it and in its sub-folders (by extension, :data:`AUDIO_TYPES`)
is a work, in sorted path order, hidden files and folders left out. A file
reached twice (named, and inside a named folder) is published once.

The media type comes from the extension: the audio types of
:data:`AUDIO_TYPES`, else :mod:`mimetypes`, else
``application/octet-stream``; it is what the gateway answers as
``Content-Type``, so a browser's ``<audio>`` element can play the work.
"""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from storenode.publish.errors import WorkPathError
from storenode.publish.manifest import MAX_NAME_LENGTH, MEDIA_TYPE_PATTERN

AUDIO_TYPES: Final[dict[str, str]] = {
    ".wav": "audio/wav",
    ".flac": "audio/flac",
    ".mp3": "audio/mpeg",
    ".ogg": "audio/ogg",
    ".opus": "audio/opus",
    ".m4a": "audio/mp4",
    ".aac": "audio/aac",
    ".aif": "audio/aiff",
    ".aiff": "audio/aiff",
}
"""The extensions (lowercase) a catalogue folder is searched for, and their media types."""
DEFAULT_MEDIA_TYPE: Final = "application/octet-stream"
NAME_LENGTH: Final = min(MAX_NAME_LENGTH, 200)
"""Characters of a file name kept as the work's name (the registry keeps 200 at most)."""

_MEDIA_TYPE = re.compile(MEDIA_TYPE_PATTERN)


@dataclass(frozen=True, slots=True)
class WorkFile:
    """One work to publish: its file, its name for display and its media type."""

    path: Path
    name: str
    media_type: str


def media_type_of(path: Path) -> str:
    """The media type of a file, from its extension (see the module docstring)."""
    suffix = path.suffix.lower()
    if suffix in AUDIO_TYPES:
        return AUDIO_TYPES[suffix]
    guessed, _ = mimetypes.guess_type(path.name, strict=False)
    if guessed is not None and _MEDIA_TYPE.match(guessed.lower()):
        return guessed.lower()
    return DEFAULT_MEDIA_TYPE


def work_name(path: Path) -> str:
    """The work's name: its file name, cut to :data:`NAME_LENGTH` characters."""
    return path.name[:NAME_LENGTH]


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def _audio_files(folder: Path) -> Iterator[Path]:
    for path in sorted(folder.rglob("*")):
        if path.suffix.lower() in AUDIO_TYPES and path.is_file() and not _hidden(path, folder):
            yield path


def discover_works(paths: Iterable[Path]) -> list[WorkFile]:
    """The works of these paths, in order; :class:`WorkPathError` for a path that is
    neither a file nor a folder, a folder without audio files, or an empty file."""
    seen: set[Path] = set()
    works: list[WorkFile] = []
    for given in paths:
        if given.is_dir():
            found = list(_audio_files(given))
            if not found:
                known = " ".join(sorted(AUDIO_TYPES))
                raise WorkPathError(
                    f"{given} holds no audio files ({known}): name the files to publish other types"
                )
        elif given.is_file():
            found = [given]
        else:
            raise WorkPathError(f"{given} is not a file or a folder: check the path")
        for path in found:
            real = path.resolve()
            if real in seen:
                continue
            seen.add(real)
            if path.stat().st_size == 0:
                raise WorkPathError(f"{path} is empty: a work has at least one byte")
            works.append(WorkFile(path, work_name(path), media_type_of(path)))
    return works


__all__ = [
    "AUDIO_TYPES",
    "DEFAULT_MEDIA_TYPE",
    "WorkFile",
    "discover_works",
    "media_type_of",
    "work_name",
]
