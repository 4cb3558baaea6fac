"""A nursery's exception group shows the user the one error behind it."""

from __future__ import annotations

from storenode.groups import leaves, single


def test_the_one_error_inside_nested_groups_comes_out_as_itself() -> None:
    error = ValueError("the host refused")
    group = BaseExceptionGroup("outer", [BaseExceptionGroup("inner", [error])])

    assert single(group) is error


def test_several_errors_stay_a_group_and_are_all_listed_in_order() -> None:
    a, b, c = OSError("a"), KeyError("b"), ValueError("c")
    group = BaseExceptionGroup("outer", [a, BaseExceptionGroup("inner", [b, c])])

    assert single(group) is group
    assert leaves(group) == [a, b, c]
