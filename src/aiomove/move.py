"""C-MOVE SCU (PS3.4 Annex C.4.2, PS3.7 §9.1.4): one request, a stream of typed responses.

`Association.move()` returns a `MoveOperation`, used as

    async with assoc.move(identifier, "DEST") as responses:
        async for rsp in responses:
            ...  # rsp.status, rsp.remaining / completed / failed / warning

Leaving the block before the final response sends C-CANCEL and drains, bounded; the shared
machinery (and why it is not an async generator) is in `aiomove.operation`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydicom import Dataset

from aiomove.log import get_logger
from aiomove.operation import Operation
from aiomove.proto import uids
from aiomove.proto.dimse import CFindRSP, CMoveRQ, CMoveRSP, Priority
from aiomove.proto.status import Status
from aiomove.query import decode_identifier

if TYPE_CHECKING:
    from aiomove.association import Association

log = get_logger("aiomove.move")


@dataclass(frozen=True, slots=True)
class MoveResponse:
    """One C-MOVE-RSP (PS3.7 Table 9.3-6 / PS3.4 C.4.2.1.4)."""

    status: Status
    message_id: int
    remaining: int | None = None
    completed: int | None = None
    failed: int | None = None
    warning: int | None = None
    failed_sop_instance_uids: tuple[str, ...] = ()
    error_comment: str | None = None
    offending_element: tuple[int, ...] | None = None

    @property
    def is_final(self) -> bool:
        return not self.status.is_pending


def _failed_uids(ds: Dataset) -> tuple[str, ...]:
    """(0008,0058) Failed SOP Instance UID List, a multi-valued UI."""
    value = ds.get("FailedSOPInstanceUIDList")
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(v for v in value.split("\\") if v)
    return tuple(str(v) for v in value if v)


class MoveOperation(Operation[MoveResponse]):
    """One outstanding C-MOVE request on an association: iterate its responses."""

    kind = "c_move"
    response_name = "C-MOVE-RSP"
    response_type = CMoveRSP

    def __init__(
        self,
        assoc: Association,
        identifier: Dataset | bytes,
        destination: str,
        *,
        model: str = uids.STUDY_ROOT_QR_MOVE,
        priority: int = Priority.MEDIUM,
    ) -> None:
        super().__init__(assoc, identifier, model=model, priority=priority)
        self.destination = destination

    def _request(self) -> CMoveRQ:
        return CMoveRQ(
            message_id=self.message_id,
            affected_sop_class_uid=self.model,
            move_destination=self.destination,
            priority=self.priority,
        )

    def _identifier(self, raw: bytes | None) -> Dataset | None:
        if raw is None:
            return None
        try:
            return decode_identifier(raw, self.context.transfer_syntax)
        except Exception as exc:  # pydicom raises many kinds on garbage
            self.assoc.log.warning("c_move.bad_identifier", error=str(exc))
            return None

    def _record(self, msg: CFindRSP | CMoveRSP, raw: bytes | None) -> MoveResponse:
        assert isinstance(msg, CMoveRSP)
        identifier = self._identifier(raw)
        rsp = MoveResponse(
            status=Status(msg.status),
            message_id=self.message_id,
            remaining=msg.number_of_remaining_suboperations,
            completed=msg.number_of_completed_suboperations,
            failed=msg.number_of_failed_suboperations,
            warning=msg.number_of_warning_suboperations,
            failed_sop_instance_uids=_failed_uids(identifier) if identifier is not None else (),
            error_comment=msg.error_comment,
            offending_element=msg.offending_element,
        )
        event = "c_move.pending" if rsp.status.is_pending else "c_move.final"
        self.assoc.log.info(
            event,
            message_id=self.message_id,
            status=str(rsp.status),
            remaining=rsp.remaining,
            completed=rsp.completed,
            failed=rsp.failed,
            warning=rsp.warning,
        )
        if rsp.is_final:
            self.final = rsp
        return rsp
