"""What a `Connection` tells its user: the indication and confirmation primitives of PS3.8 §7.

Each is emitted by one of the PS3.8 §9.2.2 actions (named in its docstring). The connection
emits nothing for what the local user itself asked for (an A-ABORT request, for instance).
"""

from __future__ import annotations

from dataclasses import dataclass

from aiomove.proto.pdu import PDV, AAssociateAC, AAssociateRJ, AAssociateRQ

__all__ = [
    "Aborted",
    "AssociationAccepted",
    "AssociationRejected",
    "AssociationRequested",
    "ConnectionEvent",
    "PDataReceived",
    "ReleaseConfirmed",
    "ReleaseRequested",
]


@dataclass(frozen=True, slots=True)
class AssociationRequested:
    """A-ASSOCIATE indication (AE-6): the acceptor, now in Sta3, must accept() or reject()."""

    rq: AAssociateRQ


@dataclass(frozen=True, slots=True)
class AssociationAccepted:
    """A-ASSOCIATE confirmation, accepted (AE-3): the requestor is in Sta6."""

    ac: AAssociateAC


@dataclass(frozen=True, slots=True)
class AssociationRejected:
    """A-ASSOCIATE confirmation, rejected (AE-4, requestor).

    Also emitted by the acceptor when its service-provider rejects the request by itself
    (AE-6, e.g. protocol version not supported); `rj` is then what was sent.
    """

    rj: AAssociateRJ


@dataclass(frozen=True, slots=True)
class PDataReceived:
    """P-DATA indication (DT-2, AR-6): the PDVs of one P-DATA-TF PDU, in order.

    PDV data may be memoryviews into the received PDU; copy them to keep them.
    """

    pdvs: tuple[PDV, ...]


@dataclass(frozen=True, slots=True)
class ReleaseRequested:
    """A-RELEASE indication (AR-2; AR-8 with `collision=True`): answer with release_response().

    In a collision the acceptor (Sta10) must wait for ReleaseConfirmed before answering.
    """

    collision: bool


@dataclass(frozen=True, slots=True)
class ReleaseConfirmed:
    """A-RELEASE confirmation (AR-3, AR-10)."""


@dataclass(frozen=True, slots=True)
class Aborted:
    """A-ABORT indication (AA-3) or A-P-ABORT indication (AA-4, AA-8, and the end of a
    connection in Sta2: AA-1, AA-2, AA-5).

    `source` and `reason` are those of the A-ABORT PDU received (`by_peer=True`) or sent
    (PS3.8 Table 9-26); when no A-ABORT PDU was involved (transport closed, ARTIM expiry) they
    are SERVICE_PROVIDER (2) and NOT_SPECIFIED (0). `detail` says what happened, for a log.
    """

    source: int
    reason: int
    by_peer: bool
    detail: str


ConnectionEvent = (
    AssociationRequested
    | AssociationAccepted
    | AssociationRejected
    | PDataReceived
    | ReleaseRequested
    | ReleaseConfirmed
    | Aborted
)
