"""An established association: DIMSE messages in and out over a `Link`, and `connect()`.

The same `Association` class serves both roles; `connect()` makes a requestor one and
`aiomove.server` an acceptor one. Sending fragments to the peer's maximum PDU length
(PS3.8 D.1); receiving hands data sets on as a stream of chunks, never whole.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import ssl
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import anyio
import anyio.abc
from anyio.streams.tls import TLSAttribute

from aiomove.errors import (
    AcseTimeout,
    AssociationAborted,
    AssociationRejected,
    AssociationRequestFailed,
    ConnectError,
    ConnectTimeout,
    DataRateTooLow,
    DataSetTooLarge,
    DimseTimeout,
    ReadError,
    ReleaseFailed,
    RemoteProtocolError,
    WriteError,
)
from aiomove.log import get_logger
from aiomove.proto import uids
from aiomove.proto.connection import DEFAULT_MAX_PDU_LENGTH, Connection, Role
from aiomove.proto.dimse import CEchoRQ, CEchoRSP, DimseMessage, encode_command
from aiomove.proto.events import (
    Aborted,
    AssociationAccepted,
    PDataReceived,
    ReleaseConfirmed,
    ReleaseRequested,
)
from aiomove.proto.events import (
    AssociationRejected as RejectedEvent,
)
from aiomove.proto.fsm import State
from aiomove.proto.negotiation import (
    AcceptedContext,
    accepted_contexts,
    build_contexts,
    find_context,
)
from aiomove.proto.pdata import (
    CommandReceived,
    DataReceived,
    DimseAssembler,
    Fragmenter,
    fragment,
)
from aiomove.proto.pdu import (
    AAssociateAC,
    AAssociateRQ,
    ImplementationClassUID,
    ImplementationVersionName,
    MaximumLength,
    RoleSelection,
    UserItem,
)
from aiomove.proto.status import Status
from aiomove.tls import describe_error
from aiomove.transport import Link

if TYPE_CHECKING:
    from pydicom import Dataset

    from aiomove.find import FindOperation
    from aiomove.move import MoveOperation

log = get_logger("aiomove.association")

#: The uncompressed transfer syntaxes every DICOM implementation understands.
UNCOMPRESSED = (uids.EXPLICIT_VR_LE, uids.IMPLICIT_VR_LE, uids.EXPLICIT_VR_BE)

_assoc_ids = itertools.count(1)

#: Data PDVs are written to the socket in batches of about this many bytes (one write per
#: 16 KiB PDU costs ~40% of the throughput); memory stays bounded by it.
SEND_BATCH = 256 * 1024

DimseEvent = CommandReceived | DataReceived


@dataclass(frozen=True, slots=True)
class Peer:
    """A remote application entity: where it listens, its AE title, and how to reach it.

    `ssl_context`: connect with DICOM TLS (PS3.15 Annex B); `connect()`'s own argument wins.
    """

    host: str
    port: int
    ae_title: str = "ANY-SCP"
    ssl_context: ssl.SSLContext | None = field(default=None, compare=False, repr=False)

    def __str__(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds, None = wait forever. DCMTK's `-to`, `-ta` and `-td`.

    `acse` also bounds the PS3.8 ARTIM timer (waiting for A-ASSOCIATE-RQ, for the peer to close).
    """

    connect: float | None = 30.0
    acse: float = 30.0
    dimse: float | None = None
    write: float | None = 60.0

    @property
    def send(self) -> float | None:
        """Bound on one write: the DIMSE timeout if set, else `write` (DCMTK's `-ts`)."""
        return self.dimse if self.dimse is not None else self.write


def local_user_items(
    max_pdu_length: int, roles: Sequence[RoleSelection] = ()
) -> tuple[UserItem, ...]:
    """The user-information sub-items aiomove sends in A-ASSOCIATE-RQ and -AC (PS3.7 D.3.3)."""
    return (
        MaximumLength(max_pdu_length),
        ImplementationClassUID(uids.IMPLEMENTATION_CLASS_UID),
        *roles,
        ImplementationVersionName(uids.IMPLEMENTATION_VERSION_NAME),
    )


class Association:
    """One established association, either role. Not safe for two concurrent receivers."""

    def __init__(
        self,
        link: Link,
        *,
        request: AAssociateRQ,
        accept: AAssociateAC,
        contexts: tuple[AcceptedContext, ...],
        timeouts: Timeouts,
        peer: str,
    ) -> None:
        self.link = link
        self.request = request
        self.accept = accept
        self.contexts = contexts
        self.timeouts = timeouts
        self.peer = peer
        self.id = next(_assoc_ids)
        self._assembler = DimseAssembler()
        self._pending: deque[DimseEvent] = deque()
        #: Message IDs for our requests; a retrieve session shares one counter across its
        #: associations so that (Move Originator AE, Message ID) names one C-MOVE session-wide.
        self.message_ids: Iterator[int] = itertools.count(1)
        self._send_lock = anyio.Lock()
        self.log = log.bind(assoc_id=self.id, peer=peer)

    # --- identity ------------------------------------------------------------------------

    @property
    def is_requestor(self) -> bool:
        return self.link.conn.role is Role.REQUESTOR

    @property
    def local_ae_title(self) -> str:
        rq = self.request
        return rq.calling_ae_title if self.is_requestor else rq.called_ae_title

    @property
    def peer_ae_title(self) -> str:
        rq = self.request
        return rq.called_ae_title if self.is_requestor else rq.calling_ae_title

    @property
    def state(self) -> State:
        """The PS3.8 state of the underlying connection (a property: mypy must not narrow it)."""
        return self.link.conn.state

    @property
    def is_established(self) -> bool:
        return self.link.conn.state is State.STA6 and not self.link.closed

    @property
    def ignore_pending_datasets(self) -> bool:
        """movescu's `-pi` (True) / `-pr` (False): see `DimseAssembler`."""
        return self._assembler.ignore_pending_datasets

    @ignore_pending_datasets.setter
    def ignore_pending_datasets(self, value: bool) -> None:
        self._assembler.ignore_pending_datasets = value

    def next_message_id(self) -> int:
        """PS3.7 §9.1.1.1.1: unique among outstanding messages; 1..65535, wrapping."""
        return (next(self.message_ids) - 1) % 0xFFFF + 1

    def context_for(
        self, abstract_syntax: str, transfer_syntax: str | None = None
    ) -> AcceptedContext:
        return find_context(self.contexts, abstract_syntax, transfer_syntax)

    # --- sending -------------------------------------------------------------------------

    async def send(
        self, message: DimseMessage, context_id: int, dataset: bytes | memoryview | None = None
    ) -> None:
        """Send a command set and, if given, its data set, fragmented to the peer's limit."""
        max_len = self.link.conn.peer_max_pdu_length
        conn = self.link.conn
        async with self._send_lock:
            for pdv in fragment(
                context_id, encode_command(message), is_command=True, max_pdu_length=max_len
            ):
                conn.send_pdv(pdv.context_id, True, pdv.is_last, pdv.data, self.link.now())
            await self.link.flush()
            if dataset is not None:
                queued = 0
                for pdv in fragment(context_id, dataset, is_command=False, max_pdu_length=max_len):
                    conn.send_pdv(pdv.context_id, False, pdv.is_last, pdv.data, self.link.now())
                    queued += len(pdv.data)
                    if queued >= SEND_BATCH or pdv.is_last:  # few, large writes; bounded
                        await self.link.flush()
                        queued = 0

    async def send_stream(
        self,
        message: DimseMessage,
        context_id: int,
        chunks: AsyncIterable[bytes | bytearray | memoryview],
    ) -> None:
        """Send a command set and a data set of unknown size from `chunks`, in bounded memory
        (a 2 GiB C-STORE never sits in memory): PDVs cut by `Fragmenter`, written in batches."""
        max_len = self.link.conn.peer_max_pdu_length
        conn = self.link.conn
        fragmenter = Fragmenter(context_id, max_pdu_length=max_len)
        async with self._send_lock:
            for pdv in fragment(
                context_id, encode_command(message), is_command=True, max_pdu_length=max_len
            ):
                conn.send_pdv(pdv.context_id, True, pdv.is_last, pdv.data, self.link.now())
            queued = 0
            async for chunk in chunks:
                for pdv in fragmenter.feed(chunk):
                    conn.send_pdv(pdv.context_id, False, False, pdv.data, self.link.now())
                    queued += len(pdv.data)
                if queued >= SEND_BATCH:
                    await self.link.flush()
                    queued = 0
            for pdv in fragmenter.finish():
                conn.send_pdv(pdv.context_id, False, True, pdv.data, self.link.now())
            await self.link.flush()

    # --- receiving -----------------------------------------------------------------------

    async def receive(self, timeout: float | None = None) -> DimseEvent | None:
        """The next DIMSE-level event: a whole command set, or one chunk of a data set.

        Returns None when the peer released the association (answered here, as PS3.8 asks).
        Raises `AssociationAborted` when the peer aborted or the connection dropped, and
        `DimseTimeout` when nothing arrives within `timeout` (default: the DIMSE timeout).
        """
        if timeout is None:
            timeout = self.timeouts.dimse
        while not self._pending:
            event = await self.link.next_event(timeout, DimseTimeout)
            if isinstance(event, PDataReceived):
                await self._feed(event)
            elif isinstance(event, ReleaseRequested):
                self.link.conn.release_response(self.link.now())
                await self.link.flush()
                self.log.debug("association.released_by_peer")
                return None
            elif isinstance(event, Aborted):
                raise _aborted(event)
            else:
                await self.abort()
                raise RemoteProtocolError(f"unexpected {type(event).__name__} during data transfer")
        return self._pending.popleft()

    async def _feed(self, event: PDataReceived) -> None:
        try:
            for pdv in event.pdvs:
                self._pending.extend(self._assembler.feed(pdv))
        except RemoteProtocolError as exc:
            self.log.warning("association.dimse_protocol_error", error=str(exc))
            await self.abort()
            raise

    async def receive_command(self, timeout: float | None = None) -> CommandReceived | None:
        """The next command set; data set chunks still queued are an error here."""
        event = await self.receive(timeout)
        if event is None or isinstance(event, CommandReceived):
            return event
        await self.abort()
        raise RemoteProtocolError("data set fragment where a command set was expected")

    #: Limits on every data set `iter_dataset` reads (an acceptor sets them from its config):
    #: the largest size in bytes (None: none) and the slowest rate in bytes/s (0: none).
    max_data_set_size: int | None = None
    min_rate: float = 0.0

    async def iter_dataset(
        self,
        timeout: float | None = None,
        *,
        limit: int | None = None,
        min_rate: float | None = None,
    ) -> AsyncGenerator[memoryview | bytes, None]:
        """Yield the chunks of the data set that follows the last command, until its last one.

        Raises DataSetTooLarge beyond `limit` bytes (at most `max_data_set_size`), and
        DataRateTooLow when the data set arrives slower than `min_rate` bytes/s (None: the
        association's `min_rate`; 0: none) after an allowance of `timeout`: each byte earns
        the peer 1/min_rate s, so a fast sender may pause (a PACS reading its archive) while
        a trickling one runs out of credit. The pace only shortens the wait of each read,
        which is bounded anyway: no extra timer or layer per PDU.
        """
        if timeout is None:
            timeout = self.timeouts.dimse
        if limit is None or (self.max_data_set_size is not None and limit > self.max_data_set_size):
            limit = self.max_data_set_size
        rate = self.min_rate if min_rate is None else min_rate
        allowance = timeout if rate > 0 else None
        start = self.link.now()
        deadline = math.inf if allowance is None else start + allowance
        received = 0
        while True:
            wait = timeout
            if allowance is not None:
                wait = min(allowance, deadline - self.link.now())
            try:
                event = await self.receive(wait)
            except DimseTimeout as exc:
                if self.link.now() >= deadline:
                    raise DataRateTooLow(f"data set slower than {rate} bytes/s", rate) from exc
                raise
            if not isinstance(event, DataReceived):
                await self.abort()
                raise RemoteProtocolError("expected a data set fragment")
            received += len(event.data)
            if limit is not None and received > limit:
                raise DataSetTooLarge(f"data set larger than {limit} bytes", limit)
            if allowance is not None:
                deadline = start + allowance + received / rate
            yield event.data
            if event.is_last:
                return

    async def read_dataset(self, limit: int = 1 << 24, timeout: float | None = None) -> bytes:
        """A whole (small) data set in memory, e.g. a C-FIND identifier; bounded by `limit`."""
        buf = bytearray()
        async for chunk in self.iter_dataset(timeout):
            buf += chunk
            if len(buf) > limit:
                await self.abort()
                raise RemoteProtocolError(f"data set larger than {limit} bytes")
        return bytes(buf)

    # --- services ------------------------------------------------------------------------

    async def echo(self, timeout: float | None = None) -> Status:
        """C-ECHO (PS3.7 §9.1.5): the peer's status for a Verification request."""
        ctx = self.context_for(uids.VERIFICATION)
        message_id = self.next_message_id()
        await self.send(CEchoRQ(message_id=message_id), ctx.context_id)
        while True:
            got = await self.receive_command(timeout)
            if got is None:
                raise AssociationAborted("peer released the association during C-ECHO")
            rsp = got.message
            if isinstance(rsp, CEchoRSP) and rsp.message_id_being_responded_to == message_id:
                return Status(rsp.status)
            # One request outstanding: anything else is the peer's error (DCMTK aborts too).
            await self.abort()
            raise RemoteProtocolError(
                f"unexpected {type(rsp).__name__} while waiting for C-ECHO-RSP to {message_id}"
            )

    def move(
        self,
        identifier: Dataset | bytes,
        destination: str,
        *,
        model: str = uids.STUDY_ROOT_QR_MOVE,
        priority: int = 0,
    ) -> MoveOperation:
        """C-MOVE: `async with assoc.move(query, "DEST") as responses: async for rsp in ...`.

        `identifier` is a pydicom Dataset (encoded in the context's transfer syntax) or bytes
        already encoded. Leaving the block early sends C-CANCEL (see `aiomove.move`).
        """
        from aiomove.move import MoveOperation

        return MoveOperation(self, identifier, destination, model=model, priority=priority)

    def find(
        self,
        identifier: Dataset | bytes,
        *,
        model: str = uids.STUDY_ROOT_QR_FIND,
        priority: int = 0,
    ) -> FindOperation:
        """C-FIND: `async with assoc.find(query) as responses: async for rsp in responses: ...`.

        `identifier` is a pydicom Dataset (encoded in the context's transfer syntax) or bytes
        already encoded. Leaving the block early sends C-CANCEL (see `aiomove.find`).
        """
        from aiomove.find import FindOperation

        return FindOperation(self, identifier, model=model, priority=priority)

    # --- ending --------------------------------------------------------------------------

    async def release(self) -> None:
        """A-RELEASE (PS3.8 §7.2), handling a release collision; A-ABORT if the peer stalls."""
        conn = self.link.conn
        if self.link.closed:
            return
        if self.state is not State.STA6:
            # The peer released first (answered in receive()) or we are already ending:
            # nothing to request; wait (ARTIM-bounded) for the transport to close.
            with contextlib.suppress(AssociationAborted, AcseTimeout):
                while not self.link.closed:
                    await self.link.next_event(self.timeouts.acse, AcseTimeout)
            await self.link.close()
            return
        conn.release(self.link.now())
        await self.link.flush()
        try:
            while not self.link.closed:
                event = await self.link.next_event(self.timeouts.acse, AcseTimeout)
                if isinstance(event, ReleaseRequested) and conn.state is State.STA9:
                    conn.release_response(self.link.now())  # AR-9: requestor answers first
                elif isinstance(event, ReleaseConfirmed) and conn.state is State.STA12:
                    conn.release_response(self.link.now())  # AR-4 after the collision
                elif isinstance(event, Aborted):
                    # movescu: "Association Release Failed" (exit 67)
                    raise ReleaseFailed(f"A-RELEASE answered with A-ABORT: {_aborted(event)}")
                elif isinstance(event, ReleaseConfirmed):
                    pass
                # P-DATA while awaiting A-RELEASE-RP (AR-6) is dropped: nobody waits for it.
                await self.link.flush()
        except AcseTimeout as exc:
            self.log.warning("association.release_timeout")
            await self.abort()
            raise ReleaseFailed(f"no A-RELEASE-RP within {self.timeouts.acse} s") from exc
        except AssociationAborted:
            if conn.state is not State.STA1:
                raise
        self.log.debug("association.released")

    async def abort(self) -> None:
        """A-ABORT (service-user source) and close, bounded and shielded from cancellation."""
        with anyio.CancelScope(shield=True), anyio.move_on_after(self.timeouts.acse):
            conn = self.link.conn
            if not self.link.closed and conn.state not in (State.STA1, State.STA13):
                conn.abort(self.link.now())
                self.log.debug("association.aborted_locally")
                # the peer may be gone already; we are closing anyway
                with contextlib.suppress(Exception):
                    await self.link.flush()
            await self.link.close()


def _aborted(event: Aborted) -> AssociationAborted:
    who = "peer" if event.by_peer else "provider"
    detail = f": {event.detail}" if event.detail else ""
    return AssociationAborted(
        f"association aborted by {who} (source {event.source}, reason {event.reason}){detail}",
        source=event.source,
        reason=event.reason,
    )


async def _open_stream(
    peer: Peer,
    local_host: str | None,
    ssl_context: ssl.SSLContext | None,
    server_hostname: str | None,
) -> anyio.abc.ByteStream:
    """TCP, wrapped in TLS when asked. DICOM peers often close without TLS close_notify,
    so the stream is not "standard compatible" (a bare EOF is a normal end)."""
    if ssl_context is None:
        return await anyio.connect_tcp(peer.host, peer.port, local_host=local_host)
    stream = await anyio.connect_tcp(
        peer.host,
        peer.port,
        local_host=local_host,
        ssl_context=ssl_context,
        tls_hostname=server_hostname or peer.host,
        tls_standard_compatible=False,
    )
    log.debug(
        "tls.negotiated",
        peer=str(peer),
        version=stream.extra(TLSAttribute.tls_version, None),
        cipher=(stream.extra(TLSAttribute.cipher, None) or ("",))[0],
    )
    return stream


@asynccontextmanager
async def connect(
    peer: Peer,
    *,
    ae_title: str = "AIOMOVE",
    contexts: Sequence[tuple[str, Sequence[str]]] = ((uids.VERIFICATION, UNCOMPRESSED),),
    roles: Sequence[RoleSelection] = (),
    max_pdu_length: int = DEFAULT_MAX_PDU_LENGTH,
    timeouts: Timeouts = Timeouts(),
    local_host: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
) -> AsyncIterator[Association]:
    """Open an association to `peer` (IPv4 or IPv6), release it on exit, abort it on error.

    `contexts` are proposed in order with odd context IDs (PS3.8 §9.3.2.2). With
    `ssl_context` the connection is DICOM TLS (PS3.15 Annex B): the handshake is bounded by
    the connect timeout; `server_hostname` is sent as SNI and checked when the context asks
    for host name checking (default: the peer's host).
    """
    rq = AAssociateRQ(
        called_ae_title=peer.ae_title,
        calling_ae_title=ae_title,
        presentation_contexts=build_contexts(contexts),
        user_information=local_user_items(max_pdu_length, roles),
    )
    conn = Connection(Role.REQUESTOR, max_pdu_length=max_pdu_length, artim_timeout=timeouts.acse)
    conn.request_association(rq, anyio.current_time())
    log.debug("association.requesting", peer=str(peer), calling_ae=ae_title, contexts=len(contexts))
    try:
        with anyio.fail_after(timeouts.connect):
            stream = await _open_stream(
                peer, local_host, ssl_context or peer.ssl_context, server_hostname
            )
    except TimeoutError as exc:
        raise ConnectTimeout(f"no TCP connection to {peer} within {timeouts.connect} s") from exc
    except (ssl.SSLError, anyio.BrokenResourceError, anyio.EndOfStream) as exc:
        raise ConnectError(f"TLS handshake with {peer} failed: {describe_error(exc)}") from exc
    except OSError as exc:
        root: BaseException = exc
        while root.__cause__ is not None:  # anyio wraps the per-address errors
            root = root.__cause__
        code = getattr(root, "errno", None)
        reason = os.strerror(code) if isinstance(code, int) else str(root)
        raise ConnectError(f"cannot connect to {peer}: {reason}") from exc
    link = Link(stream, conn, timeouts.send)
    try:
        conn.transport_connected(link.now())
        await link.flush()
        event = await link.next_event(timeouts.acse, AcseTimeout)
    except (AssociationAborted, RemoteProtocolError, ReadError, WriteError) as exc:
        await link.close()
        raise AssociationRequestFailed(f"association request to {peer} failed: {exc}") from exc
    except BaseException:
        await link.close()
        raise
    if isinstance(event, RejectedEvent):
        await link.close()
        rj = event.rj
        raise AssociationRejected(rj.result, rj.source, rj.reason)
    if not isinstance(event, AssociationAccepted):
        await link.close()
        why = str(_aborted(event)) if isinstance(event, Aborted) else type(event).__name__
        raise AssociationRequestFailed(f"association request to {peer} failed: {why}")
    try:
        accepted = accepted_contexts(
            rq.presentation_contexts,
            event.ac.presentation_contexts,
            tuple(item for item in event.ac.user_information if isinstance(item, RoleSelection)),
            rq_roles=tuple(roles),
        )
    except RemoteProtocolError as exc:
        conn.abort(link.now())
        await link.flush()
        await link.close()
        raise AssociationRequestFailed(f"bad A-ASSOCIATE-AC from {peer}: {exc}") from exc
    assoc = Association(
        link, request=rq, accept=event.ac, contexts=accepted, timeouts=timeouts, peer=str(peer)
    )
    assoc.log.debug("association.accepted", contexts=len(accepted))
    try:
        yield assoc
    except BaseException:
        await assoc.abort()
        raise
    else:
        with anyio.CancelScope(shield=True):
            await assoc.release()
    finally:
        await link.close()
