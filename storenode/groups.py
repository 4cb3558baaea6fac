"""Exception groups, as a user should see them.

A trio nursery wraps what its tasks raise in an :class:`ExceptionGroup`; when
one task failed and the others were only cancelled because of it, the user
should see that one typed error (and its message), not a group.
"""

from __future__ import annotations


def leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    """The exceptions inside ``group`` and its nested groups, in order."""
    out: list[BaseException] = []
    for exc in group.exceptions:
        out.extend(leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return out


def single(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one exception inside ``group`` (however nested), or the group itself
    when several tasks failed on their own."""
    found = leaves(group)
    return found[0] if len(found) == 1 else group
