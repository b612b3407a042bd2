"""DIMSE status codes (PS3.7 Annex C, with the service-specific codes of PS3.4).

A status is data, not an exception: a C-MOVE-RSP that says "Move destination unknown" is a
perfectly well-formed message. `Status.raise_for_status()` turns failure and cancel into
`aiomove.errors.StatusError` for callers that want exceptions.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

from aiomove.errors import StatusError


class StatusCategory(enum.Enum):
    """PS3.7 Annex C status classes."""

    SUCCESS = "Success"
    WARNING = "Warning"
    FAILURE = "Failure"
    CANCEL = "Cancel"
    PENDING = "Pending"


# PS3.7 C.2-C.5 and the service tables of PS3.4 (C.4.1.1.4, C.4.2.1.5, C.4.3.1.4, B.2.3).
_WARNING_CODES: Final = frozenset({0x0001, 0x0107, 0x0116})
_PENDING_CODES: Final = frozenset({0xFF00, 0xFF01})
_CANCEL_CODE: Final = 0xFE00


def category(code: int) -> StatusCategory:
    """The category of a status code; anything not listed as otherwise is a failure.

    PS3.7 Annex C: 0x0000 success; 0x0001, 0x0107, 0x0116 and 0xBxxx warnings; 0xFE00
    cancel; 0xFF00/0xFF01 pending. Refused (0xA7xx, 0xA8xx...), error (0xA9xx, 0xCxxx) and the
    general failures (0x01xx, 0x02xx) all count as failure.
    """
    if code == 0x0000:
        return StatusCategory.SUCCESS
    if code in _WARNING_CODES or 0xB000 <= code <= 0xBFFF:
        return StatusCategory.WARNING
    if code == _CANCEL_CODE:
        return StatusCategory.CANCEL
    if code in _PENDING_CODES:
        return StatusCategory.PENDING
    return StatusCategory.FAILURE


# A name per well-known code. Some codes mean different things in different services
# (0xB000 is "coercion of data elements" for C-STORE, PS3.4 B.2.3); the Query/Retrieve
# meaning is used, since that is what aiomove mostly reports.
_DESCRIPTIONS: Final[dict[int, str]] = {
    0x0000: "Success",
    0x0001: "Requested optional attributes are not supported",
    0x0105: "No such attribute",
    0x0106: "Invalid attribute value",
    0x0107: "Attribute list error",
    0x0110: "Processing failure",
    0x0111: "Duplicate SOP instance",
    0x0112: "No such SOP instance",
    0x0113: "No such event type",
    0x0114: "No such argument",
    0x0115: "Invalid argument value",
    0x0116: "Attribute value out of range",
    0x0117: "Invalid object instance",
    0x0118: "No such SOP class",
    0x0119: "Class-instance conflict",
    0x0120: "Missing attribute",
    0x0121: "Missing attribute value",
    0x0122: "SOP class not supported",
    0x0123: "No such action",
    0x0124: "Not authorized",
    0x0210: "Duplicate invocation",
    0x0211: "Unrecognized operation",
    0x0212: "Mistyped argument",
    0x0213: "Resource limitation",
    0xA700: "Out of resources",
    0xA701: "Out of resources: unable to calculate number of matches",
    0xA702: "Out of resources: unable to perform sub-operations",
    0xA801: "Move destination unknown",
    0xA900: "Data set does not match SOP class",
    0xB000: "Sub-operations complete with failures",
    0xB006: "Elements discarded",
    0xB007: "Data set does not match SOP class",
    0xC000: "Cannot understand",
    0xFE00: "Cancel",
    0xFF00: "Pending",
    0xFF01: "Pending with warnings",
}

# Ranges PS3.4 defines by their high byte (C-STORE B.2.3, C-FIND C.4.1.1.4).
_RANGE_DESCRIPTIONS: Final = (
    (0xA700, 0xA7FF, "Out of resources"),
    (0xA900, 0xA9FF, "Data set does not match SOP class"),
    (0xC000, 0xCFFF, "Cannot understand"),
)


@dataclass(frozen=True, slots=True)
class Status:
    """A DIMSE status code (US, 0x0000-0xFFFF) with its PS3.7 Annex C meaning."""

    code: int

    def __post_init__(self) -> None:
        if not 0 <= self.code <= 0xFFFF:
            raise ValueError(f"status code out of range: {self.code!r}")

    @property
    def category(self) -> StatusCategory:
        return category(self.code)

    @property
    def is_success(self) -> bool:
        return self.category is StatusCategory.SUCCESS

    @property
    def is_warning(self) -> bool:
        return self.category is StatusCategory.WARNING

    @property
    def is_failure(self) -> bool:
        return self.category is StatusCategory.FAILURE

    @property
    def is_pending(self) -> bool:
        return self.category is StatusCategory.PENDING

    @property
    def is_cancel(self) -> bool:
        return self.category is StatusCategory.CANCEL

    @property
    def description(self) -> str:
        """A short name for well-known codes, "" for codes this table does not know."""
        known = _DESCRIPTIONS.get(self.code)
        if known is not None:
            return known
        for low, high, text in _RANGE_DESCRIPTIONS:
            if low <= self.code <= high:
                return text
        return ""

    def __str__(self) -> str:
        text = self.category.value
        if self.description and self.description != text:
            text = f"{text}: {self.description}"
        return f"0x{self.code:04X} ({text})"

    def raise_for_status(self) -> None:
        """Raise `StatusError` for a failure or cancel status; do nothing otherwise."""
        if self.category in (StatusCategory.FAILURE, StatusCategory.CANCEL):
            raise StatusError(self.code, str(self))
