"""How much we trust each peer, from what it did on the wire. No clock inside:
callers pass ``now`` (trio's clock in the shell).

A peer starts at 0. Each protocol violation (a frame that fails
authentication, a malformed or oversized message, a forged handshake) costs
``VIOLATION_PENALTY``; a peer at or below ``BAN_SCORE`` is banned for
``BAN_SECONDS``, and its score heals by ``HEAL_PER_SECOND`` back toward 0.
Being slow or busy is not a violation.
"""

from __future__ import annotations

from dataclasses import dataclass

VIOLATION_PENALTY = 10.0
BAN_SCORE = -25.0  # three violations in quick succession
BAN_SECONDS = 600.0
HEAL_PER_SECOND = 0.01


@dataclass
class _Entry:
    score: float = 0.0
    at: float = 0.0
    banned_until: float = 0.0
    violations: int = 0


class PeerScores:
    """Scores keyed by a peer's public key."""

    def __init__(self) -> None:
        self._peers: dict[bytes, _Entry] = {}

    def _entry(self, peer: bytes, now: float) -> _Entry:
        e = self._peers.setdefault(peer, _Entry(at=now))
        if e.score < 0:
            e.score = min(0.0, e.score + (now - e.at) * HEAL_PER_SECOND)
        e.at = now
        return e

    def violation(self, peer: bytes, now: float) -> bool:
        """Count one protocol violation; True if the peer is now banned."""
        e = self._entry(peer, now)
        e.violations += 1
        e.score -= VIOLATION_PENALTY
        if e.score <= BAN_SCORE:
            e.banned_until = now + BAN_SECONDS
        return e.banned_until > now

    def score(self, peer: bytes, now: float) -> float:
        return self._entry(peer, now).score if peer in self._peers else 0.0

    def violations(self, peer: bytes) -> int:
        e = self._peers.get(peer)
        return e.violations if e else 0

    def is_banned(self, peer: bytes, now: float) -> bool:
        e = self._peers.get(peer)
        return e is not None and e.banned_until > now
