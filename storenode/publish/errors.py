"""The errors of ``storenode publish``: each message says what happened and what to do.

:class:`PublishInputError` and its subclasses are bad input (the command exits
2); every other :class:`PublishError` is a failure of the network or the
ledger (exit 1). A failure after the storage contracts were signed leaves the
journal behind, so running the same command again resumes where it stopped.
"""

from __future__ import annotations

from storenode.publish.placement import NotEnoughHostsError

RESUME_HINT = "run the same command again to resume"


class PublishError(Exception):
    """Base of the publish errors."""


class PublishInputError(PublishError):
    """A path, option or file that makes no publish."""


class WorkPathError(PublishInputError):
    """A path that is not there, not readable, empty, or a folder without audio files."""


class WorkOwnedError(PublishError):
    """The work is registered to another key: one fingerprint is registered once."""

    def __init__(self, cid: bytes, owner: bytes) -> None:
        super().__init__(
            f"work {cid.hex()} is already registered to 0x{owner.hex()}: only its owner can "
            "publish it (the registry keeps one owner per fingerprint)"
        )
        self.cid = cid
        self.owner = owner


class ChainMismatchError(PublishError):
    """The home's genesis file is not the chain its node follows."""


class TooFewHostsError(PublishError, NotEnoughHostsError):
    """Fewer usable hosts than shards per stripe (one shard of a stripe per host)."""

    def __init__(self, needed: int, available: int, detail: str) -> None:
        NotEnoughHostsError.__init__(self, needed, available)
        self.args = (
            f"this publish needs {needed} hosts (n={needed}: one shard of every stripe per "
            f"host) and {available} can take it{detail}: start more hosts (or bring back "
            "those that did not answer) and run the same command again, raise "
            "publish.max_price, or publish with a smaller --n",
        )


class BalanceTooLowError(PublishError):
    """The publisher cannot pay the escrow and fees of the contracts."""


class TxFailedError(PublishError):
    """A transaction of the publish was refused by the node or did not reach a block."""


class HostFailedError(PublishError):
    """A host of an opened contract stopped answering during the upload."""


class HostRefusedError(PublishError):
    """A host of an opened contract refused a chunk or the manifest."""


class JournalError(PublishError):
    """A publish journal that cannot be read."""


__all__ = [
    "RESUME_HINT",
    "BalanceTooLowError",
    "ChainMismatchError",
    "HostFailedError",
    "HostRefusedError",
    "JournalError",
    "PublishError",
    "PublishInputError",
    "TooFewHostsError",
    "TxFailedError",
    "WorkOwnedError",
    "WorkPathError",
]
