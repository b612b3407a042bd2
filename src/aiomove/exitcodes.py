"""DCMTK's exit codes shared by the commands, and the association-level part of the mapping.

Each command keeps its own table for what only it does (echoscu's 70, movescu's 68/69, ...);
the codes for setting up and closing an association are the same in every DCMTK tool.
"""

from __future__ import annotations

from aiomove.errors import (
    AcseTimeout,
    AssociationRejected,
    AssociationRequestFailed,
    ConnectError,
    ConnectTimeout,
    NoAcceptedContext,
    ReleaseFailed,
)

EXIT_OK = 0
EXIT_SYNTAX = 1
EXIT_CANNOT_NEGOTIATE_ASSOCIATION = 61
EXIT_NO_PRESENTATION_CONTEXT = 66
EXIT_CANNOT_CLOSE_ASSOCIATION = 67

#: Every way an association request can fail: DCMTK's "Association Request Failed".
_NOT_NEGOTIATED = (
    AssociationRejected,
    AssociationRequestFailed,
    ConnectError,
    ConnectTimeout,
    AcseTimeout,
)


def association_exit_code(exc: BaseException) -> int | None:
    """61 (cannot negotiate), 66 (no presentation context), 67 (cannot close), or None."""
    if isinstance(exc, NoAcceptedContext):
        return EXIT_NO_PRESENTATION_CONTEXT
    if isinstance(exc, ReleaseFailed):
        return EXIT_CANNOT_CLOSE_ASSOCIATION
    if isinstance(
        exc,
        AssociationRejected
        | AssociationRequestFailed
        | ConnectError
        | ConnectTimeout
        | AcseTimeout,
    ):
        return EXIT_CANNOT_NEGOTIATE_ASSOCIATION
    return None
