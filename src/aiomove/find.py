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

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from types import TracebackType

import anyio
from pydicom import Dataset

from aiomove.association import UNCOMPRESSED, Association, Peer, Timeouts, connect
from aiomove.errors import AiomoveError, AssociationAborted, RemoteProtocolError, StatusError
from aiomove.proto import uids
from aiomove.proto.connection import DEFAULT_MAX_PDU_LENGTH
from aiomove.proto.dimse import CCancelRQ, CFindRQ, CFindRSP, Priority
from aiomove.proto.status import Status
from aiomove.query import decode_identifier, encode_identifier

#: PS3.4 K.6.1.1.2 Modality Worklist Information Model - FIND (findscu's `-W`).
MODALITY_WORKLIST_FIND = "1.2.840.10008.5.1.4.31"

#: How long a C-CANCEL may take to produce the final response before we abort.
CANCEL_TIMEOUT = 30.0
#: `find_all()`'s default (`connect()`'s).
DEFAULT_TIMEOUTS = Timeouts()
#: Bound on one response identifier: a match is a handful of attributes, not an image.
MAX_IDENTIFIER = 16 << 20


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


class FindOperation:
    """One outstanding C-FIND request on an association: iterate its responses."""

    def __init__(
        self,
        assoc: Association,
        identifier: Dataset | bytes,
        *,
        model: str = uids.STUDY_ROOT_QR_FIND,
        priority: int = Priority.MEDIUM,
    ) -> None:
        self.assoc = assoc
        self.identifier = identifier
        self.model = model
        self.priority = priority
        self.context = assoc.context_for(model)
        self.message_id = 0
        self.final: FindResponse | None = None
        self.responses = 0
        self.matches = 0
        self.cancelled = False
        self._started = False

    async def __aenter__(self) -> FindOperation:
        await self.start()
        return self

    async def start(self) -> None:
        """Send the C-FIND-RQ and its identifier (PS3.7 §9.1.2.1)."""
        if self._started:
            return
        self._started = True
        self.message_id = self.assoc.next_message_id()
        data = (
            self.identifier
            if isinstance(self.identifier, bytes)
            else encode_identifier(self.identifier, self.context.transfer_syntax)
        )
        request = CFindRQ(
            message_id=self.message_id,
            affected_sop_class_uid=self.model,
            priority=self.priority,
        )
        await self.assoc.send(request, self.context.context_id, data)
        self.assoc.log.info("c_find.sent", message_id=self.message_id, model=self.model)

    def __aiter__(self) -> AsyncIterator[FindResponse]:
        return self

    async def __anext__(self) -> FindResponse:
        if self.final is not None:
            raise StopAsyncIteration
        return await self.next_response()

    async def next_response(self) -> FindResponse:
        """Wait for the next C-FIND-RSP of this request (DIMSE timeout applies)."""
        await self.start()
        got = await self.assoc.receive_command()
        if got is None:
            raise AssociationAborted("peer released the association during C-FIND")
        msg = got.message
        if isinstance(msg, CFindRSP) and msg.message_id_being_responded_to == self.message_id:
            return self._record(msg, await self._read_identifier(msg))
        # One request is outstanding: anything else is the peer's error. Waiting on would hang
        # (DCMTK stops too); abort, as `MoveOperation` does.
        await self.assoc.abort()
        detail = getattr(msg, "message_id_being_responded_to", None)
        raise RemoteProtocolError(
            f"unexpected {type(msg).__name__} (responding to {detail}) while waiting for "
            f"C-FIND-RSP to message {self.message_id}"
        )

    async def _read_identifier(self, msg: CFindRSP) -> bytes | None:
        # Read whatever data set is announced, even on a final response (some SCPs send one):
        # left unread it would be taken for the next command.
        if not msg.has_dataset:
            return None
        return await self.assoc.read_dataset(MAX_IDENTIFIER)

    def _decode(self, raw: bytes) -> Dataset | None:
        try:
            ds = decode_identifier(raw, self.context.transfer_syntax)
            list(ds)  # parse now: a garbled identifier shows here, not in the caller
            return ds
        except Exception as exc:  # pydicom raises many kinds on garbage
            self.assoc.log.warning("c_find.bad_identifier", error=str(exc))
            return None

    def _record(self, msg: CFindRSP, raw: bytes | None) -> FindResponse:
        self.responses += 1
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

    async def cancel(self) -> None:
        """Send C-CANCEL-RQ for this request (once); responses keep coming until the final."""
        if self.cancelled or self.final is not None or not self._started:
            return
        self.cancelled = True
        ctx = self.context.context_id
        await self.assoc.send(CCancelRQ(message_id_being_responded_to=self.message_id), ctx)
        self.assoc.log.info("c_find.cancel_sent", message_id=self.message_id)

    async def drain(self, limit: float) -> None:
        """After `cancel()`: read to the final response within `limit` seconds, else abort.

        PS3.7 §9.3.2.3 gives the SCP no deadline; DCMTK would wait forever.
        """
        with anyio.CancelScope(shield=True):
            try:
                with anyio.fail_after(limit):
                    await self.cancel()
                    while self.final is None:
                        await self.next_response()
            except (AiomoveError, TimeoutError) as error:
                self.assoc.log.warning("c_find.cancel_failed", error=repr(error))
                await self.assoc.abort()
                raise AssociationAborted(
                    f"no final C-FIND-RSP within {limit} s of C-CANCEL; association aborted"
                ) from error

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.final is not None or not self._started or not self.assoc.is_established:
            return
        # Abandoned before the final response: C-CANCEL, then drain to the final response,
        # bounded (the peer may ignore C-CANCEL).
        limit = min(CANCEL_TIMEOUT, self.assoc.timeouts.acse)
        self.assoc.log.warning("c_find.cancelling", message_id=self.message_id, within=limit)
        try:
            await self.drain(limit)
        except AssociationAborted:
            if exc_type is None:
                raise  # a clean exit (break) learns that the association is gone


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
