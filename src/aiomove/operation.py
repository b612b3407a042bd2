"""One outstanding Q/R request on an association and its stream of responses.

The machinery C-FIND (`aiomove.find`) and C-MOVE (`aiomove.move`) share: send the request and
its identifier, read responses to *this* message ID (anything else is a protocol error: one
request is outstanding, and waiting on would hang), C-CANCEL (PS3.7 §9.3.2.3) and a bounded
drain to the final response when the caller leaves early.

It is an async context manager and iterator rather than an async generator, so that no cancel
scope is held across a `yield`; leaving the block early (break, exception, cancellation)
cancels, shielded and bounded by `min(CANCEL_TIMEOUT, ACSE timeout)`, then aborts if the peer
never sends its final response.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import TracebackType
from typing import TYPE_CHECKING, ClassVar, Generic, Self, TypeVar

import anyio
from pydicom import Dataset

from aiomove.errors import AiomoveError, AssociationAborted, RemoteProtocolError
from aiomove.proto.dimse import CCancelRQ, CFindRSP, CMoveRSP, DimseMessage, Priority
from aiomove.query import encode_identifier

if TYPE_CHECKING:
    from aiomove.association import Association

#: How long a C-CANCEL may take to produce the final response before we abort.
CANCEL_TIMEOUT = 30.0
#: Bound on one response identifier (a match, or a Failed SOP Instance UID List).
MAX_IDENTIFIER = 16 << 20

R = TypeVar("R")  # the typed response


class Operation(Generic[R]):
    """Base of `FindOperation` and `MoveOperation`; subclasses build the request and record
    each response."""

    #: Log event prefix ("c_find", "c_move") and the response class that belongs to us.
    kind: ClassVar[str]
    response_name: ClassVar[str]  # "C-FIND-RSP", "C-MOVE-RSP", for messages
    response_type: ClassVar[type[CFindRSP] | type[CMoveRSP]]

    def __init__(
        self,
        assoc: Association,
        identifier: Dataset | bytes,
        *,
        model: str,
        priority: int = Priority.MEDIUM,
    ) -> None:
        self.assoc = assoc
        self.identifier = identifier
        self.model = model
        self.priority = priority
        self.context = assoc.context_for(model)
        self.message_id = 0
        self.final: R | None = None
        self.responses = 0
        self.cancelled = False
        self._started = False

    # --- what subclasses provide ---------------------------------------------------------

    def _request(self) -> DimseMessage:
        raise NotImplementedError

    def _record(self, msg: CFindRSP | CMoveRSP, raw: bytes | None) -> R:
        """Count and log one response; set `self.final` when it is the last."""
        raise NotImplementedError

    # --- the shared protocol ---------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def start(self) -> None:
        """Send the request and its identifier in the context's transfer syntax."""
        if self._started:
            return
        self._started = True
        self.message_id = self.assoc.next_message_id()
        data = (
            self.identifier
            if isinstance(self.identifier, bytes)
            else encode_identifier(self.identifier, self.context.transfer_syntax)
        )
        await self.assoc.send(self._request(), self.context.context_id, data)
        self.assoc.log.info(f"{self.kind}.sent", message_id=self.message_id, model=self.model)

    def __aiter__(self) -> AsyncIterator[R]:
        return self

    async def __anext__(self) -> R:
        if self.final is not None:
            raise StopAsyncIteration
        return await self.next_response()

    async def next_response(self) -> R:
        """Wait for the next response to this request (the DIMSE timeout applies)."""
        await self.start()
        got = await self.assoc.receive_command()
        if got is None:
            raise AssociationAborted(f"peer released the association during {self.kind}")
        msg = got.message
        if isinstance(msg, self.response_type) and (
            msg.message_id_being_responded_to == self.message_id
        ):
            # Read whatever data set is announced, even on a final response: left unread it
            # would be taken for the next command.
            raw = await self.assoc.read_dataset(MAX_IDENTIFIER) if msg.has_dataset else None
            self.responses += 1
            return self._record(msg, raw)
        await self.assoc.abort()  # DCMTK stops too ("Unexpected Response MsgId")
        detail = getattr(msg, "message_id_being_responded_to", None)
        raise RemoteProtocolError(
            f"unexpected {type(msg).__name__} (responding to {detail}) while waiting for "
            f"{self.response_name} to message {self.message_id}"
        )

    async def cancel(self) -> None:
        """Send C-CANCEL-RQ for this request (once); responses keep coming until the final."""
        if self.cancelled or self.final is not None or not self._started:
            return
        self.cancelled = True
        ctx = self.context.context_id
        await self.assoc.send(CCancelRQ(message_id_being_responded_to=self.message_id), ctx)
        self.assoc.log.info(f"{self.kind}.cancel_sent", message_id=self.message_id)

    async def drain(self, limit: float) -> None:
        """Cancel, then read to the final response within `limit` seconds, else abort.

        PS3.7 §9.3.2.3 gives the SCP no deadline; DCMTK would wait forever.
        """
        with anyio.CancelScope(shield=True):
            try:
                with anyio.fail_after(limit):
                    await self.cancel()
                    while self.final is None:
                        await self.next_response()
            except (AiomoveError, TimeoutError) as error:
                self.assoc.log.warning(f"{self.kind}.cancel_failed", error=repr(error))
                await self.assoc.abort()
                raise AssociationAborted(
                    f"no final {self.response_name} within {limit} s of C-CANCEL; "
                    "association aborted"
                ) from error

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.final is not None or not self._started or not self.assoc.is_established:
            return
        limit = min(CANCEL_TIMEOUT, self.assoc.timeouts.acse)
        self.assoc.log.warning(f"{self.kind}.cancelling", message_id=self.message_id, within=limit)
        try:
            await self.drain(limit)
        except AssociationAborted:
            if exc_type is None:
                raise  # a clean exit (break) learns that the association is gone
