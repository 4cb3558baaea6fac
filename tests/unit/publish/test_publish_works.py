"""Which files a publish covers, and their media types."""

from __future__ import annotations

from pathlib import Path

import pytest

from storenode.publish.errors import WorkPathError
from storenode.publish.works import (
    AUDIO_TYPES,
    DEFAULT_MEDIA_TYPE,
    NAME_LENGTH,
    discover_works,
    media_type_of,
)


def touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("name", "media_type"),
    [
        ("a.wav", "audio/wav"),
        ("b.FLAC", "audio/flac"),
        ("c.mp3", "audio/mpeg"),
        ("d.ogg", "audio/ogg"),
        ("e.opus", "audio/opus"),
        ("f.m4a", "audio/mp4"),
        ("g.aac", "audio/aac"),
        ("h.aif", "audio/aiff"),
        ("i.aiff", "audio/aiff"),
        ("cover.png", "image/png"),
        ("notes.txt", "text/plain"),
        ("blob", DEFAULT_MEDIA_TYPE),
        ("x.unknownext", DEFAULT_MEDIA_TYPE),
    ],
)
def test_the_media_type_comes_from_the_extension(name: str, media_type: str) -> None:
    assert media_type_of(Path(name)) == media_type


def test_a_folder_is_a_catalogue_of_its_audio_files_in_sorted_order(tmp_path: Path) -> None:
    album = tmp_path / "album"
    touch(album / "02 second.flac")
    touch(album / "01 first.wav")
    touch(album / "disc 2" / "01 third.mp3")
    touch(album / "cover.jpg")
    touch(album / ".hidden.wav")
    touch(album / ".trash" / "old.wav")

    works = discover_works([album])

    assert [w.path.relative_to(album).as_posix() for w in works] == [
        "01 first.wav",
        "02 second.flac",
        "disc 2/01 third.mp3",
    ]
    assert [w.media_type for w in works] == ["audio/wav", "audio/flac", "audio/mpeg"]
    assert [w.name for w in works] == ["01 first.wav", "02 second.flac", "01 third.mp3"]


def test_a_file_named_is_a_work_whatever_its_type_and_counted_once(tmp_path: Path) -> None:
    album = tmp_path / "album"
    track = touch(album / "a.wav")
    booklet = touch(tmp_path / "booklet.pdf")

    works = discover_works([booklet, album, track])

    assert [w.path for w in works] == [booklet, track]
    assert works[0].media_type == "application/pdf"


def test_a_missing_path_an_empty_file_or_a_folder_without_audio_are_refused(
    tmp_path: Path,
) -> None:
    with pytest.raises(WorkPathError, match="not a file or a folder"):
        discover_works([tmp_path / "nope.wav"])
    with pytest.raises(WorkPathError, match="is empty"):
        discover_works([touch(tmp_path / "empty.wav", b"")])
    touch(tmp_path / "docs" / "readme.txt")
    with pytest.raises(WorkPathError, match="no audio files") as info:
        discover_works([tmp_path / "docs"])
    assert all(ext in str(info.value) for ext in AUDIO_TYPES)


def test_a_long_file_name_is_cut_to_what_the_registry_keeps(tmp_path: Path) -> None:
    name = "n" * 240 + ".wav"
    (work,) = discover_works([touch(tmp_path / name)])

    assert work.name == name[:NAME_LENGTH] and len(work.name) == 200
