"""A small, reproducible test catalogue: synthesized tracks and a random file.

Each track is a short piece of music made of sums of sine tones: a melody that
walks a pentatonic scale over a bass line, every note shaped by an envelope,
written as 44.1 kHz 16-bit stereo PCM WAV with the stdlib :mod:`wave` module.
The same arguments always give the same files, so tests and the demo can
compare what they read back with what they wrote.
"""

from __future__ import annotations

import io
import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt

SAMPLE_RATE = 44_100
CHANNELS = 2
SAMPLE_WIDTH = 2  # bytes: 16-bit PCM

_PENTATONIC = (0, 3, 5, 7, 10)  # minor pentatonic, in semitones above the root
_HARMONICS = ((1.0, 1.0), (2.0, 0.45), (3.0, 0.2), (4.0, 0.08))  # (multiple, gain)

Signal = npt.NDArray[np.float64]


def track_seconds(seconds: float, tracks: int) -> list[float]:
    """The length of each track: spread from 0.8x to 1.2x ``seconds`` (5 s -> 4, 5, 6 s)."""
    if tracks == 1:
        return [seconds]
    return [seconds * (0.8 + 0.4 * i / (tracks - 1)) for i in range(tracks)]


def track_frames(seconds: float, sample_rate: int = SAMPLE_RATE) -> int:
    """How many frames (one sample per channel) a track of ``seconds`` holds."""
    return round(seconds * sample_rate)


def _frequency(midi_note: int) -> float:
    return float(440.0 * 2.0 ** ((midi_note - 69) / 12))


def _envelope(frames: int, sample_rate: int, *, attack: float, decay: float) -> Signal:
    """A fast linear attack, then an exponential decay, with a short release at the end."""
    t = np.arange(frames, dtype=np.float64) / sample_rate
    env: Signal = np.minimum(t / attack, 1.0) * np.exp(-np.maximum(t - attack, 0.0) / decay)
    release = min(frames, int(0.01 * sample_rate))
    if release:
        env[-release:] *= np.linspace(1.0, 0.0, release)
    return env


def _tone(midi_note: int, frames: int, sample_rate: int, *, decay: float) -> Signal:
    """One note: a few harmonics of its pitch under an envelope."""
    t = np.arange(frames, dtype=np.float64) / sample_rate
    f = _frequency(midi_note)
    out = np.zeros(frames)
    for mult, gain in _HARMONICS:
        out += gain * np.sin(2.0 * np.pi * f * mult * t)
    return out * _envelope(frames, sample_rate, attack=0.008, decay=decay)


def _melody(rng: np.random.Generator, steps: int, root: int) -> list[int]:
    """A random walk over two octaves of the pentatonic scale, starting on the root."""
    scale = [root + 12 * octave + s for octave in (0, 1) for s in _PENTATONIC]
    pos = 0
    notes = []
    for _ in range(steps):
        notes.append(scale[pos])
        pos = int(np.clip(pos + rng.choice([-2, -1, 1, 1, 2]), 0, len(scale) - 1))
    return notes


def _mix(seconds: float, seed: int, sample_rate: int) -> tuple[Signal, Signal]:
    """The left and right channels of a track, as floats in [-1, 1]."""
    rng = np.random.default_rng(seed)
    frames = track_frames(seconds, sample_rate)
    left, right = np.zeros(frames), np.zeros(frames)
    root = 57 + int(rng.integers(0, 7))  # around A3
    step = int(sample_rate * 60 / int(rng.integers(100, 140)) / 2)  # eighth notes
    for i, note in enumerate(_melody(rng, -(-frames // step), root + 12)):
        start = i * step
        n = min(frames - start, 2 * step)
        pan = float(rng.uniform(0.25, 0.75))
        tone = _tone(note, n, sample_rate, decay=0.18) * 0.5
        left[start : start + n] += tone * (1.0 - pan)
        right[start : start + n] += tone * pan
    bar = 8 * step
    for start in range(0, frames, bar):
        n = min(frames - start, bar)
        bass = _tone(root - 12, n, sample_rate, decay=0.6) * 0.4
        left[start : start + n] += bass
        right[start : start + n] += bass
    peak = max(float(np.abs(left).max()), float(np.abs(right).max()), 1e-9)
    return left * (0.8 / peak), right * (0.8 / peak)


def synth_track(seconds: float = 5.0, *, seed: int = 7, sample_rate: int = SAMPLE_RATE) -> bytes:
    """The bytes of a WAV file: ``seconds`` of synthesized stereo 16-bit music."""
    left, right = _mix(seconds, seed, sample_rate)
    pcm = np.empty(2 * left.shape[0], dtype="<i2")
    pcm[0::2] = np.round(left * 32767.0)
    pcm[1::2] = np.round(right * 32767.0)
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(CHANNELS)
        w.setsampwidth(SAMPLE_WIDTH)
        w.setframerate(sample_rate)
        w.writeframes(pcm.tobytes())
    return out.getvalue()


def random_bytes(size: int, *, seed: int = 7) -> bytes:
    """``size`` pseudo-random bytes, the same for the same seed."""
    return np.random.default_rng(seed).bytes(size)


def write_catalogue(
    directory: Path,
    *,
    seconds: float = 5.0,
    tracks: int = 3,
    random_mib: int = 24,
    seed: int = 7,
) -> list[Path]:
    """Write ``tracks`` WAV files and one random file of ``random_mib`` MiB into ``directory``.

    The tracks last :func:`track_seconds` (``seconds`` on average). Returns the
    paths written, tracks first; with ``random_mib=0`` there is no random file.
    """
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, length in enumerate(track_seconds(seconds, tracks), start=1):
        path = directory / f"track-{i:02d}.wav"
        path.write_bytes(synth_track(length, seed=seed * 1000 + i))
        paths.append(path)
    if random_mib > 0:
        path = directory / f"random-{random_mib}MiB.bin"
        path.write_bytes(random_bytes(random_mib << 20, seed=seed))
        paths.append(path)
    return paths
