"""Splitting DIMSE messages into PDVs and putting them back together.

PS3.8 §9.3.5 and Annex E: a message is a command set followed, optionally, by a data set;
each is carried in one or more Presentation Data Value items whose Message Control Header
says command/data and last/not-last. PS3.7 §8 (and §9.3.x) says the command comes first and
the data set, if announced by CommandDataSetType, follows on the same presentation context.

Memory is the point here: `fragment` hands out memoryview slices, `Fragmenter` holds at most
one PDV of a data set of unknown size, and `DimseAssembler` streams data PDVs straight through
(one event per PDV), so a 2 GB data set passes with O(max PDU) memory. Only command sets,
which are small, are accumulated, and only up to `MAX_COMMAND_SET_LENGTH`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Final

from aiomove.errors import LocalProtocolError, RemoteProtocolError
from aiomove.proto.dimse import CGetRSP, CMoveRSP, DimseMessage, decode_command
from aiomove.proto.pdu import PDV
from aiomove.proto.status import StatusCategory, category

#: PS3.8 §9.3.5.1: a PDV item costs 6 bytes of the P-DATA-TF variable field besides its
#: data: Item-length (4), Presentation-context-ID (1), Message Control Header (1).
PDV_OVERHEAD: Final = 6

#: Largest PDV data length used when the peer announced no limit (Maximum Length 0,
#: PS3.8 D.1). Unlimited is not a reason to build multi-gigabyte PDUs: 16 MiB keeps the
#: sender's and the receiver's buffers sane and is still far beyond any usual limit.
UNLIMITED_PDV_LENGTH: Final = 1 << 24

#: Bound on a reassembled command set. Real command sets are a few hundred bytes; this
#: only stops a peer from making us buffer without end.
MAX_COMMAND_SET_LENGTH: Final = 64 * 1024


class DimseProtocolError(RemoteProtocolError):
    """The peer's PDVs do not form a valid sequence of DIMSE messages (PS3.7 §8, PS3.8 E.2)."""


def max_pdv_data_length(max_pdu_length: int) -> int:
    """Largest PDV data that fits one P-DATA-TF whose variable field is at most `max_pdu_length`.

    0 means the peer set no limit (PS3.8 D.1); `UNLIMITED_PDV_LENGTH` is used instead.
    Values 1-6 leave no room for data and are refused.
    """
    if max_pdu_length == 0:
        return UNLIMITED_PDV_LENGTH
    if max_pdu_length <= PDV_OVERHEAD:
        raise LocalProtocolError(f"max PDU length {max_pdu_length} leaves no room for a PDV")
    return max_pdu_length - PDV_OVERHEAD


def fragment(
    context_id: int, data: bytes | memoryview, *, is_command: bool, max_pdu_length: int
) -> Iterator[PDV]:
    """PDVs carrying `data` in order, each fitting one P-DATA-TF of `max_pdu_length`.

    PDV data are memoryview slices of `data` (no copy): keep `data` unchanged until they are
    sent. Only the last PDV is flagged last; empty data gives one empty last PDV.
    """
    limit = max_pdv_data_length(max_pdu_length)
    view = memoryview(data).cast("B")
    total = len(view)
    start = 0
    while True:
        end = min(start + limit, total)
        yield PDV(context_id, is_command, end == total, view[start:end])
        if end == total:
            return
        start = end


class Fragmenter:
    """Cut a stream of chunks of unknown total size into PDVs (usually a data set).

    `feed` returns full-size PDVs, never flagged last; it always holds back at least one byte
    once anything was fed, so that `finish` has something to flag last (PS3.8 E.2). At most
    one PDV of data is held between calls. Emitted PDV data are `bytes` (copied from the
    chunks), so callers may reuse their chunk buffers.
    """

    def __init__(self, context_id: int, *, max_pdu_length: int, is_command: bool = False) -> None:
        self.context_id = context_id
        self.is_command = is_command
        self._limit = max_pdv_data_length(max_pdu_length)
        self._held = bytearray()
        self._finished = False

    def feed(self, chunk: bytes | bytearray | memoryview) -> list[PDV]:
        if self._finished:
            raise LocalProtocolError("Fragmenter.feed() after finish()")
        view = memoryview(chunk).cast("B")
        out: list[PDV] = []
        pos = 0
        while True:
            room = self._limit - len(self._held)
            if len(view) - pos <= room:  # everything left fits: hold it, it may be the end
                self._held += view[pos:]
                return out
            # More than a PDV's worth: one full PDV goes, and at least one byte stays behind.
            self._held += view[pos : pos + room]
            pos += room
            out.append(PDV(self.context_id, self.is_command, False, bytes(self._held)))
            self._held.clear()

    def finish(self) -> list[PDV]:
        """The last PDV (possibly empty if nothing was fed), flagged last."""
        if self._finished:
            raise LocalProtocolError("Fragmenter.finish() called twice")
        self._finished = True
        last = PDV(self.context_id, self.is_command, True, bytes(self._held))
        self._held.clear()
        return [last]


# --- reassembly -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CommandReceived:
    """A complete command set arrived and was decoded."""

    context_id: int
    message: DimseMessage


@dataclass(frozen=True, slots=True)
class DataReceived:
    """One PDV of the data set that belongs to the last command; `is_last` ends it."""

    context_id: int
    data: bytes | memoryview
    is_last: bool


AssemblerEvent = CommandReceived | DataReceived


class DimseAssembler:
    """Turn received PDVs into DIMSE events, enforcing the PS3.7 §8 / PS3.8 Annex E order.

    Rules (DimseProtocolError when broken):
    - command fragments share one context ID, total at most MAX_COMMAND_SET_LENGTH bytes, and
      are decoded when the last one arrives (DimseDecodeError if malformed);
    - no data PDV in the middle of a command set;
    - data PDVs only after a command whose CommandDataSetType announced a data set, and on
      that command's context ID;
    - such a command's data set must be complete (a last data PDV) before the next command.
    Whether a context ID was accepted at all is the association's business, not checked here.

    `ignore_pending_datasets` is movescu's `-pi` (its default): a *pending* C-MOVE/C-GET
    response that claims a data set is taken to have none (some SCPs set the flag and send
    nothing); the message is passed on with `has_dataset=False`. Without it (`-pr`) the data
    set is expected and read.
    """

    def __init__(self, *, ignore_pending_datasets: bool = False) -> None:
        self.ignore_pending_datasets = ignore_pending_datasets
        self._command_parts: list[bytes | memoryview] = []
        self._command_length = 0
        self._command_context: int | None = None  # context of a command set in progress
        self._data_context: int | None = None  # context whose data set is awaited

    @property
    def idle(self) -> bool:
        """True between messages: no command set or data set partly received."""
        return self._command_context is None and self._data_context is None

    @property
    def awaiting_data(self) -> bool:
        """True while the data set announced by the last command is incomplete."""
        return self._data_context is not None

    def feed(self, pdv: PDV) -> list[AssemblerEvent]:
        if pdv.is_command:
            return self._feed_command(pdv)
        return [self._feed_data(pdv)]

    def _feed_command(self, pdv: PDV) -> list[AssemblerEvent]:
        if self._data_context is not None:
            raise DimseProtocolError(
                f"command PDV on context {pdv.context_id} while the data set on context"
                f" {self._data_context} is incomplete"
            )
        if self._command_context is not None and pdv.context_id != self._command_context:
            raise DimseProtocolError(
                f"command fragment on context {pdv.context_id} interleaved with a command set"
                f" on context {self._command_context}"
            )
        # Each fragment counts its PDV item header too: empty fragments must not be free.
        self._command_length += len(pdv.data) + PDV_OVERHEAD
        if self._command_length > MAX_COMMAND_SET_LENGTH:
            raise DimseProtocolError(f"command set longer than {MAX_COMMAND_SET_LENGTH} bytes")
        self._command_context = pdv.context_id
        # Received PDV data may be views into a reused buffer: keep a copy while incomplete.
        self._command_parts.append(pdv.data if pdv.is_last else bytes(pdv.data))
        if not pdv.is_last:
            return []
        parts = self._command_parts
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        self._command_parts = []
        self._command_length = 0
        self._command_context = None
        message = decode_command(data)
        if self.ignore_pending_datasets and _pending_retrieve_response(message):
            message = replace(message, has_dataset=False)
        if message.has_dataset:
            self._data_context = pdv.context_id
        return [CommandReceived(pdv.context_id, message)]

    def _feed_data(self, pdv: PDV) -> DataReceived:
        if self._command_context is not None:
            raise DimseProtocolError("data PDV in the middle of a command set")
        if self._data_context is None:
            raise DimseProtocolError(
                f"data PDV on context {pdv.context_id} without a command announcing a data set"
            )
        if pdv.context_id != self._data_context:
            raise DimseProtocolError(
                f"data PDV on context {pdv.context_id}, expected {self._data_context}"
            )
        if pdv.is_last:
            self._data_context = None
        return DataReceived(pdv.context_id, pdv.data, pdv.is_last)


def _pending_retrieve_response(message: DimseMessage) -> bool:
    """A pending C-MOVE/C-GET response announcing a data set (PS3.4 C.4.2.1.4, C.4.3.1.4)."""
    return (
        isinstance(message, CMoveRSP | CGetRSP)
        and message.has_dataset
        and category(message.status) is StatusCategory.PENDING
    )
