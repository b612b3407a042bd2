"""`serve()`: an association acceptor on one TCP listener, many associations at once.

Each incoming connection runs in its own task (anyio's listener gives one per connection) and
everything that can go wrong in it is caught there: a failing association never takes the
listener down. Requests are dispatched by DIMSE message type to small async handlers; C-ECHO
is answered by default.

Admission, in the order a connection meets it (log events in brackets):

1. At TCP accept, before a byte is read or a TLS handshake starts: more than
   `max_connections` connections open -> closed at once [connection.refused_overload]; an
   address outside `allowed_networks`, or denied by the hosts_access(5) `access` policy ->
   closed at once, as TCP wrappers do [connection.denied].
2. On the A-ASSOCIATE-RQ (PS3.8 Table 9-21): `max_associations` associations already
   running -> rejected-transient, service-provider (presentation), local-limit-exceeded
   [association.limit_exceeded]; a calling AE title not in `calling_ae_titles` ->
   rejected-permanent, service-user, calling-AE-title-not-recognized [association.rejected].
3. While established: nothing received for `idle_timeout` seconds (or the DIMSE timeout when
   shorter) -> A-ABORT [association.idle_timeout]. Every read is bounded per PDU, not per byte,
   so a peer trickling a PDU one byte at a time is cut at the same deadline.
4. Every data set any handler reads (`Association.iter_dataset`), even one drained for a
   request we do not support: beyond `max_data_set_size` bytes -> A-ABORT
   [dimse.data_set_too_large]; slower than `min_rate` bytes/s after an allowance of the
   DIMSE/idle timeout -> A-ABORT [dimse.data_set_too_slow]. A handler may log these under
   its own name (the C-STORE handler: c_store.too_large, c_store.too_slow); each is logged
   once.
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import ssl
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final

import anyio
import anyio.abc
from anyio.abc import SocketAttribute
from anyio.streams.tls import TLSListener

from aiomove.accesscontrol import AccessPolicy, check, normal_address
from aiomove.association import UNCOMPRESSED, Association, Timeouts, local_user_items
from aiomove.errors import (
    AcseTimeout,
    AiomoveError,
    DataRateTooLow,
    DataSetRefused,
    DimseTimeout,
)
from aiomove.log import get_logger
from aiomove.proto import uids
from aiomove.proto.connection import DEFAULT_MAX_PDU_LENGTH, Connection, Role
from aiomove.proto.dimse import CEchoRQ, CEchoRSP, DimseMessage, make_response
from aiomove.proto.events import AssociationRequested
from aiomove.proto.negotiation import negotiate
from aiomove.proto.pdu import (
    DICOM_APPLICATION_CONTEXT,
    AAssociateAC,
    AAssociateRJ,
    AAssociateRQ,
    RejectResult,
    RejectSource,
    RoleSelection,
)
from aiomove.tls import describe_error
from aiomove.transport import Link

log = get_logger("aiomove.server")

#: A request handler: it owns the rest of the exchange (reading the data set, answering).
Handler = Callable[[Association, int, DimseMessage], Awaitable[None]]

_conn_ids = itertools.count(1)

#: PS3.7 C.5.1 / Annex C: "Unrecognized operation" for requests we have no handler for.
UNRECOGNIZED_OPERATION = 0x0211

#: Simultaneous associations by default: far more than a C-MOVE SCU's sources open at once,
#: and it bounds memory (each storing association holds up to 1 MiB of write buffer).
DEFAULT_MAX_ASSOCIATIONS: Final = 64
#: Seconds an established association may stay silent (DCMTK's storescp waits forever).
DEFAULT_IDLE_TIMEOUT: Final = 300.0
#: Largest data set accepted by default: well above any single image or multi-frame object
#: seen in practice (a 2 GiB instance is tested), far below a lying 4 GiB+ stream.
DEFAULT_MAX_DATA_SET_SIZE: Final = 8 << 30
#: Slowest acceptable data set (bytes/s), after an allowance of the DIMSE/idle timeout.
DEFAULT_MIN_RATE: Final = 1024

#: PS3.8 Table 9-21: rejected-transient, service-provider (presentation), local-limit-exceeded.
LIMIT_EXCEEDED_RJ: Final = AAssociateRJ(
    RejectResult.TRANSIENT, RejectSource.SERVICE_PROVIDER_PRESENTATION, 2
)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


async def handle_echo(assoc: Association, context_id: int, request: DimseMessage) -> None:
    """C-ECHO SCP (PS3.7 §9.3.5): always Success."""
    assert isinstance(request, CEchoRQ)
    assoc.log.info("c_echo.received", message_id=request.message_id)
    await assoc.send(
        CEchoRSP(message_id_being_responded_to=request.message_id, status=0), context_id
    )


class ActiveAssociations:
    """The associations a server is running now: wait for a condition, or end them all.

    The C-MOVE side uses it to linger after the final response until the storage
    associations are gone (bounded), then abort the stragglers: movescu can hang there.
    """

    def __init__(self) -> None:
        self._active: dict[int, Association] = {}
        self._changed = anyio.Event()
        self.total = 0

    def __len__(self) -> int:
        return len(self._active)

    def notify(self) -> None:
        """Wake whoever waits in `wait_for` (an association came or went, an instance landed)."""
        self._changed.set()
        self._changed = anyio.Event()

    def add(self, assoc: Association) -> None:
        self._active[assoc.id] = assoc
        self.total += 1
        self.notify()

    def discard(self, assoc: Association) -> None:
        if self._active.pop(assoc.id, None) is not None:
            self.notify()

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Return once `predicate()` holds; re-checked on every `notify()`. No polling."""
        while not predicate():
            await self._changed.wait()

    async def abort_all(self) -> int:
        """A-ABORT every association still open; how many there were."""
        stragglers = list(self._active.values())
        for assoc in stragglers:
            assoc.log.warning("association.aborted_after_linger")
            await assoc.abort()
        return len(stragglers)


@dataclass(frozen=True)
class AcceptorConfig:
    """What an acceptor agrees to. PS3.8 §9.3.3 / PS3.7 D.3.3.

    `contexts` maps abstract syntax -> transfer syntaxes in order of preference.
    `called_ae_titles`: if not empty, A-ASSOCIATE-RQs to any other AE title are rejected
    (PS3.8 Table 9-21: permanent, service-user, called-AE-title-not-recognized).
    """

    ae_title: str = "AIOMOVE"
    contexts: Mapping[str, Sequence[str]] = field(
        default_factory=lambda: {uids.VERIFICATION: UNCOMPRESSED}
    )
    scp_roles: frozenset[str] = frozenset()
    called_ae_titles: frozenset[str] = frozenset()
    max_pdu_length: int = DEFAULT_MAX_PDU_LENGTH
    timeouts: Timeouts = field(default_factory=lambda: Timeouts(dimse=300.0))
    handlers: Mapping[type, Handler] = field(default_factory=lambda: {CEchoRQ: handle_echo})
    #: Optional: keep track of the live associations (see `ActiveAssociations`).
    registry: ActiveAssociations | None = None
    #: DICOM TLS (PS3.15 Annex B) on every accepted connection; the handshake runs in the
    #: connection's own task, bounded by the ACSE timeout.
    ssl_context: ssl.SSLContext | None = None
    #: Associations running at once; one more is rejected (transient, local-limit-exceeded).
    max_associations: int = DEFAULT_MAX_ASSOCIATIONS
    #: TCP connections open at once, including those still to be rejected; beyond it a
    #: connection is closed unread. None: twice `max_associations`.
    max_connections: int | None = None
    #: Seconds an association may send nothing before it is aborted; the DIMSE timeout
    #: applies instead when it is shorter. None: only the DIMSE timeout.
    idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT
    #: Host access control (hosts.allow / hosts.deny, `+ac`); None: every host (`-ac`).
    access: AccessPolicy | None = None
    #: If not empty, only these calling AE titles may associate (PS3.8 Table 9-21 reason 3).
    calling_ae_titles: frozenset[str] = frozenset()
    #: If not empty, only connections from these networks are accepted.
    allowed_networks: tuple[Network, ...] = ()
    #: Largest data set read on an association (None: no limit); a handler may set less.
    max_data_set_size: int | None = DEFAULT_MAX_DATA_SET_SIZE
    #: Slowest data set (bytes/s, 0: none) after an allowance of the DIMSE/idle timeout.
    min_rate: float = DEFAULT_MIN_RATE

    @property
    def connection_limit(self) -> int:
        if self.max_connections is not None:
            return self.max_connections
        return 2 * self.max_associations

    @property
    def session_timeouts(self) -> Timeouts:
        """The timeouts of an established association: DIMSE waits bounded by the idle
        timeout (a stalled peer never holds its slot forever)."""
        dimse, idle = self.timeouts.dimse, self.idle_timeout
        if idle is None or (dimse is not None and dimse <= idle):
            return self.timeouts
        return replace(self.timeouts, dimse=idle)


class Admission:
    """What one listener has admitted: open connections and running associations."""

    def __init__(self) -> None:
        self.connections = 0
        self.associations = 0


async def accept_association(
    stream: anyio.abc.ByteStream,
    config: AcceptorConfig,
    peer: str,
    admission: Admission | None = None,
) -> Association | None:
    """Run the acceptor's half of association establishment; None if it did not happen.

    With `admission`, an RQ beyond `config.max_associations` is rejected (transient) and
    an accepted association is counted there (the caller uncounts it when it ends).
    """
    conn = Connection(
        Role.ACCEPTOR, max_pdu_length=config.max_pdu_length, artim_timeout=config.timeouts.acse
    )
    link = Link(stream, conn, config.timeouts.send)
    conn.transport_connected(link.now())  # Evt5, AE-5: ARTIM runs until the RQ arrives
    # ARTIM bounds the wait for the RQ; the extra second lets it fire before our own guard.
    event = await link.next_event(config.timeouts.acse + 1.0, AcseTimeout)
    if not isinstance(event, AssociationRequested):
        log.info("association.not_requested", peer=peer, got=type(event).__name__)
        await link.close()
        return None
    rq = event.rq
    reason = _rejection_reason(rq, config)
    rj: AAssociateRJ | None = None
    if reason is not None:
        log.info("association.rejected", peer=peer, calling_ae=rq.calling_ae_title, reason=reason)
        rj = AAssociateRJ(RejectResult.PERMANENT, RejectSource.SERVICE_USER, reason)
    elif admission is not None and admission.associations >= config.max_associations:
        log.warning(
            "association.limit_exceeded",
            peer=peer,
            calling_ae=rq.calling_ae_title,
            limit=config.max_associations,
        )
        rj = LIMIT_EXCEEDED_RJ
    if rj is not None:
        conn.reject(rj, link.now())
        await link.flush()
        await _await_close(link, config)
        return None
    result = negotiate(
        rq.presentation_contexts,
        tuple(item for item in rq.user_information if isinstance(item, RoleSelection)),
        config.contexts,
        scp_roles=config.scp_roles,
    )
    ac = AAssociateAC(
        called_ae_title=rq.called_ae_title,
        calling_ae_title=rq.calling_ae_title,
        presentation_contexts=result.contexts,
        user_information=local_user_items(config.max_pdu_length, result.roles),
    )
    if admission is not None:
        admission.associations += 1  # before any await: the limit check above stays true
    try:
        conn.accept(ac, link.now())
        await link.flush()
    except BaseException:
        if admission is not None:
            admission.associations -= 1
        raise
    assoc = Association(
        link,
        request=rq,
        accept=ac,
        contexts=result.accepted,
        timeouts=config.session_timeouts,
        peer=peer,
    )
    assoc.max_data_set_size = config.max_data_set_size
    assoc.min_rate = config.min_rate
    assoc.log.info(
        "association.accepted", calling_ae=rq.calling_ae_title, contexts=len(result.accepted)
    )
    return assoc


def _rejection_reason(rq: AAssociateRQ, config: AcceptorConfig) -> int | None:
    """PS3.8 Table 9-21 service-user reasons: 2 application context name not supported,
    3 calling AE title not recognized, 7 called AE title not recognized."""
    if rq.application_context != DICOM_APPLICATION_CONTEXT:
        return 2
    # The AC echoes both titles (PS3.8 §9.3.3); titles we cannot write back are refused.
    if not _printable_ascii(rq.calling_ae_title):
        return 3
    if not _printable_ascii(rq.called_ae_title):
        return 7
    if config.called_ae_titles and rq.called_ae_title not in config.called_ae_titles:
        return 7
    if config.calling_ae_titles and rq.calling_ae_title not in config.calling_ae_titles:
        return 3
    return None


def _printable_ascii(title: str) -> bool:
    return title.isascii() and title.isprintable() and "\\" not in title


async def _await_close(link: Link, config: AcceptorConfig) -> None:
    """Sta13: wait (ARTIM-bounded) for the peer to close after our RJ/RP/A-ABORT."""
    try:
        while not link.closed:
            await link.next_event(config.timeouts.acse + 1.0, AcseTimeout)
    except AiomoveError:
        pass
    finally:
        await link.close()


async def run_association(assoc: Association, config: AcceptorConfig) -> None:
    """Dispatch requests until the peer releases or aborts, or stays idle too long."""
    while True:
        got = await assoc.receive_command()
        if got is None:  # A-RELEASE answered
            await _await_close(assoc.link, config)
            return
        handler = config.handlers.get(type(got.message))
        if handler is None:
            await _refuse(assoc, got.context_id, got.message)
        else:
            await handler(assoc, got.context_id, got.message)


async def _refuse(assoc: Association, context_id: int, request: DimseMessage) -> None:
    """Answer a request we have no handler for with 0x0211, draining any data set first."""
    assoc.log.warning("dimse.unsupported_request", message=type(request).__name__)
    if getattr(request, "has_dataset", False):  # bounded and paced like any data set
        chunks = assoc.iter_dataset()
        async with contextlib.aclosing(chunks):
            async for _ in chunks:
                pass
    response = make_response(request, UNRECOGNIZED_OPERATION)
    if response is None:  # e.g. C-CANCEL: no response defined
        return
    await assoc.send(response, context_id)


def _remote(stream: anyio.TypedAttributeProvider) -> tuple[str, str] | None:
    """("host:port", host) of a socket stream's peer; None if it is not a socket."""
    address = stream.extra(SocketAttribute.remote_address, None)
    if isinstance(address, tuple):
        return f"{address[0]}:{address[1]}", str(address[0])
    return None


def _peer_name(stream: anyio.TypedAttributeProvider) -> tuple[str, str | None]:
    """("host:port" or "conn-N", the host's address if it is a socket)."""
    return _remote(stream) or (f"conn-{next(_conn_ids)}", None)


async def handle_connection(
    stream: anyio.abc.ByteStream, config: AcceptorConfig, admission: Admission | None = None
) -> None:
    """Everything one connection does, with every failure contained here."""
    peer, _ = _peer_name(stream)
    assoc: Association | None = None
    try:
        assoc = await accept_association(stream, config, peer, admission)
        if assoc is not None:
            if config.registry is not None:
                config.registry.add(assoc)
            await run_association(assoc, config)
    except DataSetRefused as exc:
        if not exc.logged:
            slow = isinstance(exc, DataRateTooLow)
            event = "dimse.data_set_too_slow" if slow else "dimse.data_set_too_large"
            log.warning(event, peer=peer, limit=exc.limit)
        if assoc is not None:
            await assoc.abort()
    except DimseTimeout:
        log.info("association.idle_timeout", peer=peer)
        if assoc is not None:
            await assoc.abort()
    except AiomoveError as exc:
        log.info("association.ended", peer=peer, error=str(exc))
        if assoc is not None:
            await assoc.abort()
    except Exception:
        log.exception("association.crashed", peer=peer)
        if assoc is not None:
            await assoc.abort()
    finally:
        with anyio.CancelScope(shield=True):
            await stream.aclose()
        if assoc is not None and admission is not None:
            admission.associations -= 1
        if assoc is not None and config.registry is not None:
            config.registry.discard(assoc)


async def admit(
    stream: anyio.TypedAttributeProvider, config: AcceptorConfig, admission: Admission
) -> bool:
    """The checks made at TCP accept (see the module docstring); False: close unread.

    The caller has counted the connection in `admission.connections` already.
    """
    peer, host = _peer_name(stream)
    if admission.connections > config.connection_limit:
        log.warning("connection.refused_overload", peer=peer, limit=config.connection_limit)
        return False
    if not (config.allowed_networks or config.access):
        return True
    if host is None:  # not a socket: nothing to check against, so nothing is allowed
        log.warning("connection.denied", peer=peer, reason="no address")
        return False
    if config.allowed_networks:
        address = normal_address(host)
        if not any(address in network for network in config.allowed_networks):
            log.warning("connection.denied", peer=peer, reason="network")
            return False
    if config.access is not None:
        decision = await check(config.access, host)
        if not decision.allowed:
            log.warning(
                "connection.denied",
                peer=peer,
                reason="hosts_access",
                daemon=config.access.daemon,
                rule=decision.rule,
            )
            return False
    return True


class DicomTLSListener(TLSListener):
    """anyio's TLSListener, but a failed handshake is one structured log line, not a
    traceback: a scanner or a peer with the wrong certificate is routine on a network."""

    @staticmethod
    async def handle_handshake_error(exc: BaseException, stream: anyio.abc.AnyByteStream) -> None:
        remote = _remote(stream)  # before closing
        await anyio.aclose_forcefully(stream)
        if isinstance(exc, anyio.get_cancelled_exc_class()) or not isinstance(exc, Exception):
            raise exc
        peer = remote[0] if remote is not None else None
        log.warning("tls.handshake_failed", peer=peer, reason=describe_error(exc))


class GatedListener(anyio.abc.Listener[Any]):
    """A TCP listener whose connections pass `admit()` before their handler (and before a
    TLS handshake, when a TLSListener wraps this one)."""

    def __init__(
        self, inner: anyio.abc.Listener[Any], config: AcceptorConfig, admission: Admission
    ) -> None:
        self.inner = inner
        self.config = config
        self.admission = admission

    async def serve(
        self,
        handler: Callable[[Any], Any],
        task_group: anyio.abc.TaskGroup | None = None,
    ) -> None:
        admission = self.admission

        async def gated(stream: anyio.abc.ByteStream) -> None:
            admission.connections += 1
            try:
                try:
                    admitted = await admit(stream, self.config, admission)
                except Exception:  # never let a check take the listener down; deny instead
                    log.exception("connection.admission_failed")
                    admitted = False
                if admitted:
                    await handler(stream)
            finally:
                admission.connections -= 1
                with anyio.CancelScope(shield=True):
                    await stream.aclose()

        await self.inner.serve(gated, task_group)

    async def aclose(self) -> None:
        await self.inner.aclose()

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        return self.inner.extra_attributes


async def serve(
    config: AcceptorConfig | None = None,
    host: str | None = None,
    port: int = 0,
    *,
    task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Accept associations until cancelled; reports the bound port through `task_status`.

    `host` None listens on every interface (IPv4 and IPv6); port 0 lets the OS choose.
    Use with `port = await task_group.start(serve, config)`.
    """
    config = config or AcceptorConfig()
    tcp = await anyio.create_tcp_listener(local_host=host, local_port=port)
    admission = Admission()
    listener: anyio.abc.Listener[Any] = GatedListener(tcp, config, admission)
    if config.ssl_context is not None:
        listener = DicomTLSListener(
            listener,
            config.ssl_context,
            standard_compatible=False,
            handshake_timeout=config.timeouts.acse,
        )
    async with listener:
        bound = tcp.extra(SocketAttribute.local_port)
        log.info("server.listening", port=bound, ae_title=config.ae_title)
        task_status.started(bound)

        async def handler(stream: anyio.abc.ByteStream) -> None:
            await handle_connection(stream, config, admission)

        await listener.serve(handler)
