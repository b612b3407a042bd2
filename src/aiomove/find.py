"""C-FIND SCU (PS3.4 Annex C.4.1, PS3.7 §9.1.2): one request, a stream of matches.

`Association.find()` returns a `FindOperation`, used as

    async with assoc.find(identifier, model=uids.STUDY_ROOT_QR_FIND) as responses:
        async for rsp in responses:
            ...  # rsp.status; rsp.identifier is a match while the status is pending

Each match comes as a pending response (0xFF00, or 0xFF01 when optional keys were not
supported) carrying its identifier (PS3.4 C.4.1.1.4); the final response has none. As for
C-MOVE (`aiomove.move`) this is an async context manager rather than an async generator, so
that no cancel scope is held across a `yield`: leaving the block before the final response
sends C-CANCEL (PS3.7 §9.3.2.3) and drains, bounded (by -ta, at most `CANCEL_TIMEOUT`) and
shielded, to the final response; if that does not come the association is aborted, and a block
left by `break` raises `AssociationAborted` (the association is no longer usable).

`find_all()` connects, queries and returns the matches, for callers that want a list.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from pydicom import Dataset

from aiomove.association import UNCOMPRESSED, Association, Peer, Timeouts, connect
from aiomove.errors import StatusError
from aiomove.operation import Operation
from aiomove.proto import uids
from aiomove.proto.connection import DEFAULT_MAX_PDU_LENGTH
from aiomove.proto.dimse import CFindRQ, CFindRSP, CMoveRSP, Priority
from aiomove.proto.status import Status
from aiomove.query import decode_identifier

#: PS3.4 K.6.1.1.2 Modality Worklist Information Model - FIND (findscu's `-W`).
MODALITY_WORKLIST_FIND = "1.2.840.10008.5.1.4.31"

#: `find_all()`'s default (`connect()`'s).
DEFAULT_TIMEOUTS = Timeouts()


@dataclass(frozen=True, slots=True)
class FindResponse:
    """One C-FIND-RSP (PS3.7 Table 9.3-4): a match while pending, the outcome when final.

    `raw` is the identifier as received (in `transfer_syntax`), e.g. for writing it to a file
    unchanged; `identifier` is it decoded (None when absent or undecodable).
    """

    status: Status
    message_id: int
    identifier: Dataset | None = None
    error_comment: str | None = None
    offending_element: tuple[int, ...] | None = None
    transfer_syntax: str = uids.EXPLICIT_VR_LE
    raw: bytes | None = field(default=None, repr=False, compare=False)

    @property
    def is_final(self) -> bool:
        return not self.status.is_pending

    @property
    def is_match(self) -> bool:
        """A pending response with an identifier: one matching entity (PS3.4 C.4.1.2.3)."""
        return self.status.is_pending and self.identifier is not None


class FindOperation(Operation[FindResponse]):
    """One outstanding C-FIND request on an association: iterate its responses."""

    kind = "c_find"
    response_name = "C-FIND-RSP"
    response_type = CFindRSP

    def __init__(
        self,
        assoc: Association,
        identifier: Dataset | bytes,
        *,
        model: str = uids.STUDY_ROOT_QR_FIND,
        priority: int = Priority.MEDIUM,
    ) -> None:
        super().__init__(assoc, identifier, model=model, priority=priority)
        self.matches = 0

    def _request(self) -> CFindRQ:
        return CFindRQ(
            message_id=self.message_id, affected_sop_class_uid=self.model, priority=self.priority
        )

    def _decode(self, raw: bytes) -> Dataset | None:
        try:
            ds = decode_identifier(raw, self.context.transfer_syntax)
            list(ds)  # parse now: a garbled identifier shows here, not in the caller
            return ds
        except Exception as exc:  # pydicom raises many kinds on garbage
            self.assoc.log.warning("c_find.bad_identifier", error=str(exc))
            return None

    def _record(self, msg: CFindRSP | CMoveRSP, raw: bytes | None) -> FindResponse:
        assert isinstance(msg, CFindRSP)
        status = Status(msg.status)
        rsp = FindResponse(
            status=status,
            message_id=self.message_id,
            identifier=None if raw is None else self._decode(raw),
            error_comment=msg.error_comment,
            offending_element=msg.offending_element,
            transfer_syntax=self.context.transfer_syntax,
            raw=raw,
        )
        if status.is_pending:
            if rsp.identifier is None:
                # PS3.4 C.4.1.1.4: every pending response carries a match.
                self.assoc.log.warning("c_find.pending_without_identifier", status=str(status))
            else:
                self.matches += 1
            self.assoc.log.debug("c_find.pending", message_id=self.message_id, n=self.responses)
        else:
            self.final = rsp
            self.assoc.log.info(
                "c_find.final",
                message_id=self.message_id,
                status=str(status),
                matches=self.matches,
                error_comment=msg.error_comment,
            )
        return rsp


async def find_all(
    peer: Peer,
    identifier: Dataset,
    *,
    ae_title: str = "AIOMOVE",
    model: str = uids.STUDY_ROOT_QR_FIND,
    timeouts: Timeouts = DEFAULT_TIMEOUTS,
    transfer_syntaxes: Sequence[str] = UNCOMPRESSED,
    max_pdu_length: int = DEFAULT_MAX_PDU_LENGTH,
    priority: int = Priority.MEDIUM,
    limit: int | None = None,
) -> list[Dataset]:
    """Connect to `peer`, send one C-FIND and return the matching identifiers, in order.

    With `limit`, stop after that many matches (C-CANCEL; the peer's Cancel status is
    expected then). A failure status from the peer raises `StatusError`, so that an empty
    list always means "no match".
    """
    matches: list[Dataset] = []
    async with (
        connect(
            peer,
            ae_title=ae_title,
            contexts=[(model, tuple(transfer_syntaxes))],
            max_pdu_length=max_pdu_length,
            timeouts=timeouts,
        ) as assoc,
        assoc.find(identifier, model=model, priority=priority) as responses,
    ):
        async for rsp in responses:
            if rsp.identifier is not None and rsp.status.is_pending:
                matches.append(rsp.identifier)
                if limit is not None and len(matches) >= limit:
                    break
    final = responses.final
    unasked_cancel = final is not None and final.status.is_cancel and not responses.cancelled
    if final is not None and (final.status.is_failure or unasked_cancel):
        raise StatusError(final.status.code, f"C-FIND failed: {final.status}")
    return matches
