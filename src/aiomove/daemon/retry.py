"""Why a retrieve failed, and whether trying again can help.

Transient (the job goes back to the queue with exponential backoff, `RetryPolicy`):
- A-ASSOCIATE-RJ with result "rejected-transient" (PS3.8 Table 9-21, e.g. the PACS is busy);
- C-MOVE 0xA7xx "out of resources" (PS3.4 C.4.2.1.5), 0xFE00 cancelled by the peer, and an
  incomplete retrieve, e.g. after 0xB000 "sub-operations failed" (only the missing instances
  are requested again);
- timeouts, connection errors, aborted associations, a peer breaking the protocol, OSError,
  errors of the job store's database (it may be restarting).

Permanent (the job fails at once; `aiomove jobs retry` after fixing the cause):
- A-ASSOCIATE-RJ "rejected-permanent" (e.g. our AE title is not known);
- 0xA801 "move destination unknown", 0xA900 "identifier does not match SOP class", the 0xCxxx
  "unable to process" class and every other failure status (0x0122, 0x0124, ...);
- no accepted presentation context; nothing matching the job's keys; an unusable layout path.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from aiomove.errors import (
    AiomoveTimeout,
    AssociationError,
    AssociationRejected,
    NoAcceptedContext,
    RemoteProtocolError,
    StatusError,
    TransportError,
)
from aiomove.proto.pdu import RejectResult
from aiomove.proto.status import StatusCategory, category

#: The job store's database layers: their errors (a restarting database) pass.
_STORE_MODULES = frozenset({"sqlalchemy", "asyncpg", "aiosqlite", "sqlite3"})


class Kind(StrEnum):
    TRANSIENT = "transient"
    PERMANENT = "permanent"


@dataclass(frozen=True)
class Failure:
    """One classified failure: its kind, a one-line message, and a label for metrics."""

    kind: Kind
    message: str
    label: str  # "0xA801", "rejected_transient", "ConnectError", ...

    @property
    def transient(self) -> bool:
        return self.kind is Kind.TRANSIENT


#: Failure statuses worth another attempt: 0xA7xx "refused: out of resources" (PS3.4
#: C.4.2.1.5: 0xA701 / 0xA702 are its C-MOVE members; 0xA700 a general one).
_TRANSIENT_FAILURES = range(0xA700, 0xA800)


def status_kind(code: int) -> Kind:
    """The kind of a C-MOVE final status that is not success (PS3.4 C.4.2.1.5, PS3.7 C):
    cancel (the peer gave up, e.g. it is shutting down) and out-of-resources failures are
    transient; every other failure is permanent. A warning (0xB000 "sub-operations failed")
    is not a failure here: the instance reconciliation decides (incomplete -> transient)."""
    kind = category(code)
    if kind is StatusCategory.CANCEL:
        return Kind.TRANSIENT
    if kind is StatusCategory.FAILURE and code in _TRANSIENT_FAILURES:
        return Kind.TRANSIENT
    return Kind.PERMANENT


def for_status(code: int, message: str = "") -> Failure:
    label = f"0x{code:04X}"
    return Failure(status_kind(code), message or f"C-MOVE status {label}", label)


def for_exception(exc: BaseException) -> Failure:
    """Classify an exception from a C-FIND or C-MOVE association."""
    message = (str(exc) or type(exc).__name__).splitlines()[0]
    if isinstance(exc, AssociationRejected):
        if exc.result == RejectResult.PERMANENT:
            return Failure(Kind.PERMANENT, message, "rejected_permanent")
        return Failure(Kind.TRANSIENT, message, "rejected_transient")
    if isinstance(exc, StatusError):
        return for_status(exc.status, message)
    if isinstance(exc, NoAcceptedContext):
        return Failure(Kind.PERMANENT, message, type(exc).__name__)
    transient = (
        AiomoveTimeout,
        TimeoutError,
        TransportError,
        AssociationError,
        RemoteProtocolError,
        OSError,
    )
    if isinstance(exc, transient) or type(exc).__module__.split(".")[0] in _STORE_MODULES:
        return Failure(Kind.TRANSIENT, message, type(exc).__name__)
    return Failure(Kind.PERMANENT, message, type(exc).__name__)


def permanent(message: str, label: str) -> Failure:
    return Failure(Kind.PERMANENT, message, label)


def transient(message: str, label: str) -> Failure:
    return Failure(Kind.TRANSIENT, message, label)
