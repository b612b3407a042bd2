"""C-MOVE SCU (PS3.4 Annex C.4.2, PS3.7 §9.1.4): one request, a stream of typed responses.

`Association.move()` returns a `MoveOperation`, used as

    async with assoc.move(identifier, "DEST") as responses:
        async for rsp in responses:
            ...  # rsp.status, rsp.remaining / completed / failed / warning

It is an async context manager rather than an async generator so that nothing holds a cancel
scope across a `yield`: leaving the block before the final response (break, exception,
cancellation) sends C-CANCEL (PS3.7 §9.3.2.3) and waits, bounded and shielded, for the final
response; if that does not come the association is aborted.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING

import anyio
from pydicom import Dataset

from aiomove.errors import AiomoveError, AssociationAborted, RemoteProtocolError
from aiomove.log import get_logger
from aiomove.proto import uids
from aiomove.proto.dimse import CCancelRQ, CMoveRQ, CMoveRSP, Priority
from aiomove.proto.status import Status
from aiomove.query import decode_identifier, encode_identifier

if TYPE_CHECKING:
    from aiomove.association import Association

log = get_logger("aiomove.move")

#: How long a C-CANCEL may take to produce the final response before we abort.
CANCEL_TIMEOUT = 30.0
#: Bound on a response identifier (Failed SOP Instance UID List can be long, not unbounded).
MAX_IDENTIFIER = 16 << 20


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


class MoveOperation:
    """One outstanding C-MOVE request on an association: iterate its responses."""

    def __init__(
        self,
        assoc: Association,
        identifier: Dataset | bytes,
        destination: str,
        *,
        model: str = uids.STUDY_ROOT_QR_MOVE,
        priority: int = Priority.MEDIUM,
    ) -> None:
        self.assoc = assoc
        self.identifier = identifier
        self.destination = destination
        self.model = model
        self.priority = priority
        self.context = assoc.context_for(model)
        self.message_id = 0
        self.final: MoveResponse | None = None
        self.responses = 0
        self.cancelled = False
        self._started = False

    async def __aenter__(self) -> MoveOperation:
        await self.start()
        return self

    async def start(self) -> None:
        """Send the C-MOVE-RQ and its identifier."""
        if self._started:
            return
        self._started = True
        self.message_id = self.assoc.next_message_id()
        data = (
            self.identifier
            if isinstance(self.identifier, bytes)
            else encode_identifier(self.identifier, self.context.transfer_syntax)
        )
        request = CMoveRQ(
            message_id=self.message_id,
            affected_sop_class_uid=self.model,
            move_destination=self.destination,
            priority=self.priority,
        )
        await self.assoc.send(request, self.context.context_id, data)
        self.assoc.log.info("c_move.sent", message_id=self.message_id, destination=self.destination)

    def __aiter__(self) -> AsyncIterator[MoveResponse]:
        return self

    async def __anext__(self) -> MoveResponse:
        if self.final is not None:
            raise StopAsyncIteration
        return await self.next_response()

    async def next_response(self) -> MoveResponse:
        """Wait for the next C-MOVE-RSP of this request (DIMSE timeout applies)."""
        await self.start()
        while True:
            got = await self.assoc.receive_command()
            if got is None:
                raise AssociationAborted("peer released the association during C-MOVE")
            msg = got.message
            if isinstance(msg, CMoveRSP) and msg.message_id_being_responded_to == self.message_id:
                return self._record(msg, await self._identifier(msg))
            # One request is outstanding: anything else is the peer's error. DCMTK stops too
            # ("Unexpected Response MsgId"); waiting on would hang.
            await self.assoc.abort()
            detail = getattr(msg, "message_id_being_responded_to", None)
            raise RemoteProtocolError(
                f"unexpected {type(msg).__name__} (responding to {detail}) while waiting for "
                f"C-MOVE-RSP to message {self.message_id}"
            )

    async def _identifier(self, msg: CMoveRSP) -> Dataset | None:
        if not msg.has_dataset:
            return None
        data = await self.assoc.read_dataset(MAX_IDENTIFIER)
        try:
            return decode_identifier(data, self.context.transfer_syntax)
        except Exception as exc:  # pydicom raises many kinds on garbage
            self.assoc.log.warning("c_move.bad_identifier", error=str(exc))
            return None

    def _record(self, msg: CMoveRSP, identifier: Dataset | None) -> MoveResponse:
        self.responses += 1
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

    async def cancel(self) -> None:
        """Send C-CANCEL-RQ for this request (once); responses keep coming until the final."""
        if self.cancelled or self.final is not None or not self._started:
            return
        self.cancelled = True
        ctx = self.context.context_id
        await self.assoc.send(CCancelRQ(message_id_being_responded_to=self.message_id), ctx)
        self.assoc.log.info("c_move.cancel_sent", message_id=self.message_id)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.final is not None or not self._started or not self.assoc.is_established:
            return
        # Abandoned before the final response: C-CANCEL, then drain to the final response,
        # bounded (the peer may ignore C-CANCEL; a second Ctrl-C ends the wait at once).
        limit = min(CANCEL_TIMEOUT, self.assoc.timeouts.acse)
        self.assoc.log.warning("c_move.cancelling", message_id=self.message_id, within=limit)
        with anyio.CancelScope(shield=True):
            try:
                with anyio.fail_after(limit):
                    await self.cancel()
                    while self.final is None:
                        await self.next_response()
            except (AiomoveError, TimeoutError) as error:
                self.assoc.log.warning("c_move.cancel_failed", error=repr(error))
                await self.assoc.abort()
