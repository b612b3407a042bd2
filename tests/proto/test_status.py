"""DIMSE status codes (PS3.7 Annex C)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiomove.errors import StatusError
from aiomove.proto.status import Status, StatusCategory, category

S = StatusCategory


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (0x0000, S.SUCCESS),
        (0x0001, S.WARNING),
        (0x0107, S.WARNING),
        (0x0116, S.WARNING),
        (0xB000, S.WARNING),
        (0xB006, S.WARNING),
        (0xB007, S.WARNING),
        (0xBFFF, S.WARNING),
        (0xFE00, S.CANCEL),
        (0xFF00, S.PENDING),
        (0xFF01, S.PENDING),
        (0x0002, S.FAILURE),
        (0x0106, S.FAILURE),
        (0x0110, S.FAILURE),
        (0x0122, S.FAILURE),
        (0x0124, S.FAILURE),
        (0x0210, S.FAILURE),
        (0x0213, S.FAILURE),
        (0xA000, S.FAILURE),
        (0xA700, S.FAILURE),
        (0xA801, S.FAILURE),
        (0xA900, S.FAILURE),
        (0xAFFF, S.FAILURE),
        (0xAFFF + 1, S.WARNING),  # 0xB000: the range edges
        (0xC000, S.FAILURE),
        (0xCFFF, S.FAILURE),
        (0xFE01, S.FAILURE),
        (0xFF02, S.FAILURE),
        (0xFFFF, S.FAILURE),
    ],
)
def test_category(code: int, expected: StatusCategory) -> None:
    assert category(code) is expected
    assert Status(code).category is expected


def test_category_agrees_with_pynetdicom() -> None:
    # pynetdicom's own tables (PS3.4 service statuses) as an independent reading of Annex C.
    from pynetdicom.status import code_to_category

    known = 0
    for code in range(0x10000):
        theirs = code_to_category(code)
        if theirs != "Unknown":
            known += 1
            assert category(code).value == theirs, hex(code)
    assert known > 1000  # the comparison really covered the ranges


@settings(deadline=None)  # CPU-bound; shared CI machines vary in speed
@given(st.integers(0, 0xFFFF))
def test_exactly_one_flag(code: int) -> None:
    status = Status(code)
    flags = {
        S.SUCCESS: status.is_success,
        S.WARNING: status.is_warning,
        S.FAILURE: status.is_failure,
        S.CANCEL: status.is_cancel,
        S.PENDING: status.is_pending,
    }
    assert [cat for cat, flag in flags.items() if flag] == [status.category]


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (0x0000, "0x0000 (Success)"),
        (0xA801, "0xA801 (Failure: Move destination unknown)"),
        (0xA700, "0xA700 (Failure: Out of resources)"),
        (0xA7FE, "0xA7FE (Failure: Out of resources)"),
        (0xA701, "0xA701 (Failure: Out of resources: unable to calculate number of matches)"),
        (0xA702, "0xA702 (Failure: Out of resources: unable to perform sub-operations)"),
        (0xA900, "0xA900 (Failure: Data set does not match SOP class)"),
        (0xA9A5, "0xA9A5 (Failure: Data set does not match SOP class)"),
        (0xC000, "0xC000 (Failure: Cannot understand)"),
        (0xC123, "0xC123 (Failure: Cannot understand)"),
        (0xB000, "0xB000 (Warning: Sub-operations complete with failures)"),
        (0xB006, "0xB006 (Warning: Elements discarded)"),
        (0xB007, "0xB007 (Warning: Data set does not match SOP class)"),
        (0xFE00, "0xFE00 (Cancel)"),
        (0xFF00, "0xFF00 (Pending)"),
        (0xFF01, "0xFF01 (Pending: Pending with warnings)"),
        (0x0110, "0x0110 (Failure: Processing failure)"),
        (0x0111, "0x0111 (Failure: Duplicate SOP instance)"),
        (0x0112, "0x0112 (Failure: No such SOP instance)"),
        (0x0117, "0x0117 (Failure: Invalid object instance)"),
        (0x0118, "0x0118 (Failure: No such SOP class)"),
        (0x0119, "0x0119 (Failure: Class-instance conflict)"),
        (0x0122, "0x0122 (Failure: SOP class not supported)"),
        (0x0124, "0x0124 (Failure: Not authorized)"),
        (0x0210, "0x0210 (Failure: Duplicate invocation)"),
        (0x0211, "0x0211 (Failure: Unrecognized operation)"),
        (0x0212, "0x0212 (Failure: Mistyped argument)"),
        (0x0213, "0x0213 (Failure: Resource limitation)"),
        (0x1234, "0x1234 (Failure)"),
        (0xB123, "0xB123 (Warning)"),
    ],
)
def test_str_and_description(code: int, text: str) -> None:
    assert str(Status(code)) == text


def test_unknown_code_has_empty_description() -> None:
    assert Status(0x1234).description == ""


@pytest.mark.parametrize("code", [0xA801, 0xC000, 0x0122, 0xFE00, 0x1234])
def test_raise_for_status_raises(code: int) -> None:
    with pytest.raises(StatusError) as info:
        Status(code).raise_for_status()
    assert info.value.status == code
    assert str(info.value) == str(Status(code))


@pytest.mark.parametrize("code", [0x0000, 0x0001, 0xB000, 0xFF00, 0xFF01])
def test_raise_for_status_passes(code: int) -> None:
    Status(code).raise_for_status()


@pytest.mark.parametrize("code", [-1, 0x10000])
def test_out_of_range(code: int) -> None:
    with pytest.raises(ValueError, match="out of range"):
        Status(code)


def test_status_is_a_frozen_value() -> None:
    assert Status(0xA801) == Status(0xA801)
    assert len({Status(1), Status(1), Status(2)}) == 2
