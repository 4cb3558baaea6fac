"""Typed errors of the DHT core. Every one is a :class:`DhtError`.

The DHT service (the trio shell) translates them at its boundary:

* :class:`SenderMismatchError` — the request's ``sender`` is not the peer the
  wire handshake authenticated: answer ``UNAUTHORIZED`` and score the peer down.
* :class:`RequestUnknownError` — a struct that is not a DHT request was handed
  to :meth:`DhtNode.handle_request`: a bug in the service's dispatch.
* :class:`ReplyUnexpectedError` — a peer answered a lookup request with the
  wrong reply type: treat as a failed request (the core already counted it).
* :class:`RecordInvalidError` — a record failed validation; ``.reason`` is one
  of :class:`RecordRejection`. The core drops and counts such records itself,
  so the service normally sees this only from :meth:`DhtNode.publish`-style
  calls with bad arguments.
* :class:`LookupStateError` — an event a lookup cannot accept in its state (a
  reply from a contact that was never asked, or asked twice): a bug in the
  service.
"""

from __future__ import annotations

import enum


class DhtError(Exception):
    """Base of every error raised by :mod:`storenode.dht`."""


class RecordRejection(enum.StrEnum):
    """Why a record was refused. The value is what ``Stored.reason`` carries and
    the key under which :attr:`DhtNode.dropped` counts it."""

    BAD_SIGNATURE = "bad-signature"
    """The signature does not verify under ``owner`` (forged or tampered)."""
    BAD_OWNER = "bad-owner"
    """``owner`` is not an Ed25519 public key."""
    OVERSIZED = "oversized"
    """``key``, ``value`` or ``ttl`` outside their bounds."""
    EXPIRED = "expired"
    """``created + ttl <= now``."""
    FUTURE = "future"
    """``created`` is more than the allowed clock skew after ``now``."""
    KEY_MISMATCH = "key-mismatch"
    """A FIND_VALUE reply carried a record for another key than the one asked."""
    BAD_PROVIDER = "bad-provider"
    """A provider record whose value is not a contact of its owner."""


class RecordInvalidError(DhtError, ValueError):
    """A record that fails validation; it is never stored."""

    def __init__(self, reason: RecordRejection, detail: str = "") -> None:
        self.reason = reason
        super().__init__(f"record refused ({reason.value}){': ' + detail if detail else ''}")


class SenderMismatchError(DhtError):
    """A request's ``sender.key`` differs from the key the peer authenticated with."""

    def __init__(self) -> None:
        super().__init__("the request's sender is not the authenticated peer")


class RequestUnknownError(DhtError, TypeError):
    """An object handed to the core as a request is not one of the DHT requests."""


class ReplyUnexpectedError(DhtError):
    """A peer answered a lookup request with a reply of the wrong type."""


class LookupStateError(DhtError):
    """An event that the lookup's state does not allow."""
