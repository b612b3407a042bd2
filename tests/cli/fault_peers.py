"""Q/R peers (C-MOVE SCPs) that misbehave on purpose, on real loopback sockets.

No real peer can be made to produce these faults, so the movescu-oracle tests
(tests/cli/test_move_oracle.py) run DCMTK movescu and `aiomove move` against the very same
double and compare what they do. Each peer runs in the caller's anyio task group:

    peer = FaultPeer(Fault.WRONG_MESSAGE_ID)
    port = await tg.start(serve_fault_peer, peer)

Faults after association set-up are built from aiomove's own `serve()` with a C-MOVE handler
(and, where the fault is in the upper layer, a step down to the association's `Link`); faults
in association set-up are plain TCP (the A-ASSOCIATE-RQ is read and never answered properly).
What the peer saw (C-CANCELs, stores) is recorded on the `FaultPeer` for the tests to check.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio
import anyio.abc
from pydicom.uid import generate_uid

from aiomove.association import UNCOMPRESSED, Association, Peer, Timeouts, connect
from aiomove.errors import AiomoveError, DimseTimeout
from aiomove.proto import uids
from aiomove.proto.dimse import (
    CCancelRQ,
    CEchoRQ,
    CMoveRQ,
    CMoveRSP,
    CStoreRQ,
    CStoreRSP,
    DimseMessage,
    make_response,
)
from aiomove.proto.events import Aborted, ReleaseRequested
from aiomove.server import AcceptorConfig, Handler, handle_echo, serve
from tests.store_util import CT_IMAGE, encode, make_dataset

LOOPBACK = "127.0.0.1"
#: PS3.4 C.4.2.1.5: Pending, "sub-operations are continuing".
PENDING = 0xFF00
#: The A-ABORT PDU (PS3.8 §9.3.8, Table 9-26): type 07H, length 4, source 0 (DICOM UL
#: service-user, so the reason is not significant and sent as 00H).
A_ABORT_PDU = bytes.fromhex("07 00 00000004 00 00 00 00")
#: Bound on reading one A-ASSOCIATE-RQ (its PDU length field is not to be trusted).
MAX_RQ_LENGTH = 1 << 16


class Fault(enum.Enum):
    """What the peer does wrong."""

    #: Answers C-MOVE-RQ with a final C-MOVE-RSP whose Message ID Being Responded To
    #: (0000,0120) names another message (PS3.7 §9.3.4.2 says it must equal the request's).
    WRONG_MESSAGE_ID = enum.auto()
    #: Two pending C-MOVE-RSPs whose Command Data Set Type says "data set present", with no
    #: data set sent (PS3.4 C.4.2.1.4: pending responses carry none), then a final Success.
    PENDING_FLAG_WITHOUT_DATA_SET = enum.auto()
    #: Final Success, then A-ABORT in reply to the requestor's A-RELEASE-RQ (PS3.8 §7.2
    #: expects A-RELEASE-RP).
    ABORT_ON_RELEASE = enum.auto()
    #: Stores one CT instance on `destination_port` with a Move Originator AE Title that is not
    #: the requestor's and a Move Originator Message ID never sent, then a final Success
    #: counting 0 completed (that store was not this move's).
    FOREIGN_ORIGINATOR = enum.auto()
    #: Pending responses every `pending_interval` seconds for `pending_for` seconds whatever
    #: C-CANCEL-RQs arrive (PS3.7 §9.3.2.3 allows it to finish), then a final Success.
    IGNORE_CANCEL = enum.auto()
    #: Reads the A-ASSOCIATE-RQ and closes the TCP connection without a word.
    CLOSE_ON_REQUEST = enum.auto()
    #: Reads the A-ASSOCIATE-RQ and answers with A-ABORT instead of A-ASSOCIATE-AC/RJ.
    ABORT_ON_REQUEST = enum.auto()


#: The faults that happen before an association exists: plain TCP peers.
SETUP_FAULTS = frozenset({Fault.CLOSE_ON_REQUEST, Fault.ABORT_ON_REQUEST})


@dataclass
class FaultPeer:
    """One misbehaving peer: its fault, its settings, and what it saw."""

    fault: Fault
    ae_title: str = "FAULTY"
    #: FOREIGN_ORIGINATOR: the `+P` port of the run in progress (set before each run).
    destination_port: int | None = None
    foreign_originator: str = "SOMEONE-ELSE"
    pending_interval: float = 0.2
    pending_for: float = 2.0
    #: What happened, for the tests' own checks (the fault really occurred).
    moves: int = 0
    cancels: int = 0
    releases_aborted: int = 0
    requests_dropped: int = 0
    #: FOREIGN_ORIGINATOR: (SOP Instance UID, C-STORE-RSP status or -1) of each store.
    stored: list[tuple[str, int]] = field(default_factory=list)
    #: IGNORE_CANCEL: requestors that waited for the final response / that left before it.
    finals_after_pending: int = 0
    left_before_final: int = 0
    _changed: anyio.Event | None = field(default=None, repr=False)

    def notify(self) -> None:
        """Wake `wait_for()`: a request or a connection was handled to its end."""
        event, self._changed = self._changed, None
        if event is not None:
            event.set()

    async def wait_for(self, condition: Callable[[], bool]) -> None:
        """Until `condition()` holds, re-checked each time a handler ends (no polling)."""
        while not condition():
            if self._changed is None:
                self._changed = anyio.Event()
            await self._changed.wait()


async def serve_fault_peer(
    peer: FaultPeer, *, task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED
) -> None:
    """Serve `peer` on a loopback port the OS chooses (reported through `task_status`) until
    cancelled."""
    if peer.fault in SETUP_FAULTS:
        await _serve_raw(peer, task_status)
        return
    config = AcceptorConfig(
        ae_title=peer.ae_title,
        contexts={
            uids.STUDY_ROOT_QR_MOVE: UNCOMPRESSED,
            uids.STUDY_ROOT_QR_FIND: UNCOMPRESSED,
            uids.PATIENT_ROOT_QR_MOVE: UNCOMPRESSED,
            uids.PATIENT_ROOT_QR_FIND: UNCOMPRESSED,
        },
        handlers={CMoveRQ: _move_handler(peer), CEchoRQ: handle_echo},
        timeouts=Timeouts(acse=10.0, dimse=30.0),
    )
    await serve(config, LOOPBACK, 0, task_status=task_status)


# --- faults in association set-up (PS3.8 §9.3.2) -----------------------------------------


async def _serve_raw(peer: FaultPeer, task_status: anyio.abc.TaskStatus[int]) -> None:
    listener = await anyio.create_tcp_listener(local_host=LOOPBACK, local_port=0)
    async with listener:
        task_status.started(listener.extra(anyio.abc.SocketAttribute.local_port))

        async def handle(stream: anyio.abc.SocketStream) -> None:
            try:
                async with stream:
                    await _read_pdu(stream)
                    peer.requests_dropped += 1
                    if peer.fault is Fault.ABORT_ON_REQUEST:
                        await stream.send(A_ABORT_PDU)
                        await _await_eof(stream)  # the requestor closes after A-ABORT (AA-3)
            finally:
                peer.notify()

        await listener.serve(handle)


async def _read_pdu(stream: anyio.abc.ByteStream) -> bytes:
    """One whole PDU: the 6-byte header (type, reserved, 32-bit length) and its body."""
    data = b""
    with anyio.fail_after(10):  # the requestor sends its A-ASSOCIATE-RQ at once
        while len(data) < 6 or len(data) < 6 + _body_length(data):
            data += await stream.receive()
    return data


def _body_length(header: bytes) -> int:
    length: int = struct.unpack_from(">I", header, 2)[0]
    return min(length, MAX_RQ_LENGTH)


async def _await_eof(stream: anyio.abc.ByteStream) -> None:
    with anyio.move_on_after(10):
        try:
            while await stream.receive():
                pass
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass


# --- faults on an established association ------------------------------------------------


def _move_handler(peer: FaultPeer) -> Handler:
    """The C-MOVE-RQ handler for `peer.fault` (a `Handler` for aiomove's `serve()`)."""

    async def handle(assoc: Association, context_id: int, rq: DimseMessage) -> None:
        assert isinstance(rq, CMoveRQ)
        try:
            await _misbehave(peer, assoc, context_id, rq)
        finally:
            peer.notify()

    return handle


async def _misbehave(peer: FaultPeer, assoc: Association, context_id: int, rq: CMoveRQ) -> None:
    """Read the identifier (whatever is asked is "moved"), then commit `peer.fault`."""
    await assoc.read_dataset()  # the identifier: these peers move whatever is asked
    peer.moves += 1
    fault = peer.fault
    if fault is Fault.WRONG_MESSAGE_ID:
        wrong = rq.message_id % 0xFFFF + 1  # any other ID in 1..65535
        await assoc.send(final(rq, 0, message_id_being_responded_to=wrong), context_id)
    elif fault is Fault.PENDING_FLAG_WITHOUT_DATA_SET:
        for done in range(2):
            await assoc.send(pending(rq, 2 - done, done, has_dataset=True), context_id)
        await assoc.send(final(rq, 2), context_id)
    elif fault is Fault.ABORT_ON_RELEASE:
        await assoc.send(final(rq, 0), context_id)
        await _abort_on_release(peer, assoc)
    elif fault is Fault.FOREIGN_ORIGINATOR:
        await _store_as_someone_else(peer, rq)
        await assoc.send(final(rq, 0), context_id)  # that store was not this move's
    elif fault is Fault.IGNORE_CANCEL:
        await _pending_despite_cancel(peer, assoc, context_id, rq)
    else:  # pragma: no cover - SETUP_FAULTS never get here
        raise AssertionError(fault)


def pending(rq: CMoveRQ, remaining: int, completed: int, **fields: object) -> CMoveRSP:
    """A pending C-MOVE-RSP with its sub-operation counters (PS3.4 C.4.2.1.4)."""
    return make_response(
        rq,
        PENDING,
        number_of_remaining_suboperations=remaining,
        number_of_completed_suboperations=completed,
        number_of_failed_suboperations=0,
        number_of_warning_suboperations=0,
        **fields,
    )


def final(rq: CMoveRQ, completed: int, **fields: object) -> CMoveRSP:
    """A final Success C-MOVE-RSP (no remaining count: PS3.4 C.4.2.1.4)."""
    return make_response(
        rq,
        0x0000,
        number_of_completed_suboperations=completed,
        number_of_failed_suboperations=0,
        number_of_warning_suboperations=0,
        **fields,
    )


async def _abort_on_release(peer: FaultPeer, assoc: Association) -> None:
    """Below the DIMSE layer: wait for the A-RELEASE-RQ and answer it with A-ABORT."""
    while True:
        event = await assoc.link.next_event(assoc.timeouts.dimse, DimseTimeout)
        if isinstance(event, ReleaseRequested):
            peer.releases_aborted += 1
            await assoc.abort()
            return
        if isinstance(event, Aborted):
            return
        # P-DATA here would be a new request; these tests send none after the first.


async def _store_as_someone_else(peer: FaultPeer, rq: CMoveRQ) -> None:
    """One C-STORE sub-operation that names a foreign move originator (PS3.7 §9.1.1.1)."""
    assert peer.destination_port is not None, "set destination_port before the run"
    uid = generate_uid()
    data = encode(make_dataset(uid, pixel_bytes=4096), uids.EXPLICIT_VR_LE)
    destination = Peer(LOOPBACK, peer.destination_port, rq.move_destination)
    try:
        async with connect(
            destination,
            ae_title=peer.ae_title,
            contexts=[(CT_IMAGE, (uids.EXPLICIT_VR_LE,))],
            timeouts=Timeouts(acse=10.0, dimse=30.0),
        ) as storage:
            context_id = storage.contexts[0].context_id
            store = CStoreRQ(
                message_id=storage.next_message_id(),
                affected_sop_class_uid=CT_IMAGE,
                affected_sop_instance_uid=uid,
                move_originator_ae_title=peer.foreign_originator,
                move_originator_message_id=rq.message_id % 0xFFFF + 100,  # never sent to us
            )
            await storage.send(store, context_id, data)
            got = await storage.receive_command()
            status = got.message.status if got and isinstance(got.message, CStoreRSP) else -1
            peer.stored.append((uid, status))
    except AiomoveError:
        peer.stored.append((uid, -1))


async def _pending_despite_cancel(
    peer: FaultPeer, assoc: Association, context_id: int, rq: CMoveRQ
) -> None:
    """Pending responses for `pending_for` seconds, C-CANCEL or not, then Success.

    Records whether the requestor waited for that final response or left before it.
    """
    deadline = anyio.current_time() + peer.pending_for
    try:
        while anyio.current_time() < deadline:
            await assoc.send(pending(rq, remaining=1000, completed=0), context_id)
            try:
                got = await assoc.receive_command(timeout=peer.pending_interval)
            except DimseTimeout:
                continue
            if got is None:  # released under a pending C-MOVE: gone all the same
                peer.left_before_final += 1
                return
            if isinstance(got.message, CCancelRQ):
                peer.cancels += 1
        await assoc.send(final(rq, 0), context_id)
    except AiomoveError:  # aborted (or the connection dropped) before the final response
        peer.left_before_final += 1
        raise
    peer.finals_after_pending += 1
