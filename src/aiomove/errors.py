"""aiomove's one error tree.

The CLI maps these to DCMTK's exit codes in one place (`aiomove.cli`). A DIMSE failure status
is data, not an exception; `raise_for_status()` on a response turns it into `StatusError`.
"""

from __future__ import annotations


class AiomoveError(Exception):
    """Base of every error aiomove raises on purpose."""


# --- protocol ------------------------------------------------------------------------------


class ProtocolError(AiomoveError):
    """A protocol rule was broken."""


class LocalProtocolError(ProtocolError):
    """This side misused the API (e.g. sent P-DATA before the association was accepted)."""


class RemoteProtocolError(ProtocolError):
    """The peer broke the protocol (malformed PDU, unexpected PDU, bad DIMSE command)."""


# --- association ---------------------------------------------------------------------------


class AssociationError(AiomoveError):
    """The association could not be set up or was lost."""


class AssociationRejected(AssociationError):
    """The peer (or its provider) answered A-ASSOCIATE-RJ. PS3.8 Table 9-21."""

    def __init__(self, result: int, source: int, reason: int) -> None:
        self.result = result
        self.source = source
        self.reason = reason
        kind = {1: "permanent", 2: "transient"}.get(result, f"result {result}")
        super().__init__(f"association rejected ({kind}, source {source}, reason {reason})")


class AssociationAborted(AssociationError):
    """The association ended with A-ABORT or A-P-ABORT (or the transport closed)."""

    def __init__(self, message: str, *, source: int | None = None, reason: int | None = None):
        self.source = source
        self.reason = reason
        super().__init__(message)


class AssociationRequestFailed(AssociationError):
    """The association could not be set up: the peer aborted, closed or broke the protocol
    before (or in) its A-ASSOCIATE-AC. DCMTK: "Association Request Failed" (exit 61)."""


class ReleaseFailed(AssociationError):
    """A-RELEASE got no answer in time (the association was then aborted)."""


class NoAcceptedContext(AssociationError):
    """No presentation context was accepted for what the caller wants to send."""


# --- transport -----------------------------------------------------------------------------


class TransportError(AiomoveError):
    """TCP level failure."""


class ConnectError(TransportError):
    """The TCP connection could not be opened (refused, unreachable, unknown host)."""


class ListenError(TransportError):
    """The local listener (Storage SCP port) could not be opened, e.g. address in use."""

    def __init__(self, message: str, cause: OSError | None = None) -> None:
        self.errno = None if cause is None else cause.errno
        super().__init__(message)


class ReadError(TransportError):
    """Reading from the peer failed."""


class WriteError(TransportError):
    """Writing to the peer failed."""


# --- timeouts (also builtin TimeoutError, so `except TimeoutError` works) -----------------


class AiomoveTimeout(AiomoveError, TimeoutError):
    """Base of aiomove's timeouts."""


class ConnectTimeout(AiomoveTimeout):
    """The TCP connection did not open in time (`-to`)."""


class AcseTimeout(AiomoveTimeout):
    """No association answer (or release answer) in time (`-ta`)."""


class DimseTimeout(AiomoveTimeout):
    """No DIMSE message from the peer in time (`-td`)."""


# --- DIMSE ---------------------------------------------------------------------------------


class DataSetRefused(AiomoveError):
    """An acceptor stopped reading a data set (the association is then aborted).

    `limit` is the limit broken; `logged` is set by a handler that already logged the
    refusal under its own event name (e.g. `c_store.too_large`), so it is logged once."""

    def __init__(self, message: str, limit: float) -> None:
        self.limit = limit
        self.logged = False
        super().__init__(message)


class DataSetTooLarge(DataSetRefused):
    """A data set grew beyond the acceptor's (or the handler's) size limit."""


class DataRateTooLow(DataSetRefused):
    """A data set arrived slower than the minimum rate (bytes/s), after its allowance."""


class StatusError(AiomoveError):
    """Raised by `raise_for_status()` for a failure, refused or cancel status."""

    def __init__(self, status: int, message: str = "") -> None:
        self.status = status
        super().__init__(message or f"DIMSE status 0x{status:04X}")
