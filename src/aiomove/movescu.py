"""The movescu service: C-MOVE requests to one peer, with an embedded Storage SCP (`+P`).

Both sides run in one event loop: the storage listener serves incoming associations while the
C-MOVE association sends requests. Unlike DCMTK movescu, nothing here can hang once the final
C-MOVE response has arrived: storage associations get a bounded linger (`linger`), during which
we also wait for instances a source reported as completed but has not delivered yet (Orthanc
answers Success before its C-STOREs arrive), and are then aborted.

Attribution of an incoming C-STORE to a request: by Move Originator Message ID (0000,1031) and
AE title (0000,1030) when the source sends them (`aiomove.attribution`'s rule, shared with
`RetrieveSession`); otherwise to the request in progress (requests run one after the other on
the association, so there is exactly one).
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from pydicom import Dataset

from aiomove.association import Association, Peer, Timeouts, connect
from aiomove.attribution import owners
from aiomove.errors import AssociationAborted, ListenError
from aiomove.log import get_logger
from aiomove.move import MoveResponse
from aiomove.operation import CANCEL_TIMEOUT
from aiomove.proto import uids
from aiomove.proto.connection import DEFAULT_MAX_PDU_LENGTH
from aiomove.proto.status import Status
from aiomove.server import AcceptorConfig, ActiveAssociations, serve
from aiomove.storage import FileSink, StoreRequest, StoreResult, storage_config
from aiomove.transfer import Prefer

log = get_logger("aiomove.movescu")

#: movescu's default: all uncompressed syntaxes, explicit VR little endian (local order) first.
DEFAULT_PROPOSED = (uids.EXPLICIT_VR_LE, uids.EXPLICIT_VR_BE, uids.IMPLICIT_VR_LE)


@dataclass(frozen=True)
class MoveSettings:
    """Everything one `aiomove move` run needs (the CLI fills it from movescu's options)."""

    peer: Peer
    identifiers: Sequence[Dataset]
    ae_title: str = "MOVESCU"
    destination: str = "MOVESCU"
    model: str = uids.PATIENT_ROOT_QR_MOVE
    #: movescu also proposes the matching FIND model (unused; "a remnant of RSNA'93").
    find_model: str | None = uids.PATIENT_ROOT_QR_FIND
    proposed_transfer_syntaxes: tuple[str, ...] = DEFAULT_PROPOSED
    #: The embedded Storage SCP (`+P port`): where instances go, which syntaxes it prefers.
    #: `port` None = `--no-port` (a third-party move: no listener at all).
    port: int | None = None
    sink: FileSink | None = None
    prefer: Prefer = Prefer.UNCOMPRESSED
    listen_host: str | None = None
    timeouts: Timeouts = field(default_factory=Timeouts)
    max_pdu_length: int = DEFAULT_MAX_PDU_LENGTH
    priority: int = 0
    repeat: int = 1
    abort: bool = False
    cancel_after: int | None = None
    linger: float = 5.0
    #: movescu's -pr (True) / -pi (False, its default): see DimseAssembler.
    pending_read: bool = False
    #: DICOM TLS on the embedded Storage SCP (movescu's `+tls` with `+P`); the outgoing
    #: association's TLS is `peer.ssl_context`.
    storage_ssl_context: ssl.SSLContext | None = field(default=None, compare=False, repr=False)
    #: More `AcceptorConfig` fields for the embedded Storage SCP (access control, allow-lists,
    #: association limits: `options_security.security_settings()["acceptor"]`).
    acceptor_options: Mapping[str, Any] = field(default_factory=dict, compare=False)
    #: More `store_handler` arguments (e.g. `min_rate`: `security_settings()["handler"]`).
    handler_options: Mapping[str, Any] = field(default_factory=dict, compare=False)
    #: `--only-moved`: refuse (0x0124) C-STOREs that belong to none of our C-MOVE requests.
    only_moved: bool = False


@dataclass
class Received:
    """One instance that arrived on the Storage SCP."""

    sop_class_uid: str
    sop_instance_uid: str
    status: int
    path: str | None
    size: int


@dataclass
class RequestReport:
    """What one C-MOVE request did: responses, counters, instances received."""

    index: int
    query: dict[str, Any]
    message_id: int = 0
    responses: int = 0
    final: MoveResponse | None = None
    cancelled: bool = False
    failed_sop_instance_uids: tuple[str, ...] = ()
    received: list[Received] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    aborted_stragglers: int = 0

    @property
    def status(self) -> Status | None:
        return None if self.final is None else self.final.status

    @property
    def stored(self) -> int:
        return sum(1 for r in self.received if Status(r.status).is_success)

    def to_json(self) -> dict[str, Any]:
        final = self.final
        return {
            "index": self.index,
            "query": self.query,
            "message_id": self.message_id,
            "responses": self.responses,
            "status": None if final is None else f"0x{final.status.code:04X}",
            "status_text": None if final is None else str(final.status),
            "completed": None if final is None else final.completed,
            "failed": None if final is None else final.failed,
            "warning": None if final is None else final.warning,
            "remaining": None if final is None else final.remaining,
            "cancelled": self.cancelled,
            "failed_sop_instance_uids": list(self.failed_sop_instance_uids),
            "received": [vars(r) for r in self.received],
            "expected_not_received": self.missing,
            "storage_associations_aborted": self.aborted_stragglers,
        }


@dataclass
class MoveOutcome:
    """All requests of a run, in order (with --repeat, each repetition's requests)."""

    requests: list[RequestReport] = field(default_factory=list)
    released: bool = True
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": [r.to_json() for r in self.requests],
            "released": self.released,
            "error": self.error,
        }


def query_summary(ds: Dataset) -> dict[str, Any]:
    """The identifier's keys for the report (keywords -> string values)."""
    out: dict[str, Any] = {}
    for elem in ds:
        key = elem.keyword or str(elem.tag)
        value = elem.value
        out[key] = "" if value is None else str(value)
    return out


class _Collector:
    """Attributes incoming C-STOREs to the request that caused them."""

    def __init__(self, settings: MoveSettings, registry: ActiveAssociations) -> None:
        self.settings = settings
        self.registry = registry
        self.current: RequestReport | None = None
        self.by_message_id: dict[int, RequestReport] = {}
        self.unattributed: list[Received] = []

    def on_stored(self, request: StoreRequest, result: StoreResult) -> None:
        item = Received(
            request.sop_class_uid,
            request.sop_instance_uid,
            result.status,
            None if result.path is None else str(result.path),
            result.size,
        )
        report = self._report_for(request)
        (report.received if report is not None else self.unattributed).append(item)
        self.registry.notify()

    def accepts(self, request: StoreRequest) -> bool:
        """`--only-moved`: whether a C-STORE belongs to one of our C-MOVE requests."""
        return self._report_for(request) is not None

    def _report_for(self, request: StoreRequest) -> RequestReport | None:
        """By Move Originator (`aiomove.attribution`'s rule); naming no message ID: the
        request running."""
        found = owners(
            request,
            self.settings.ae_title,
            self.by_message_id,
            [] if self.current is None else [self.current],
            lambda _: self.settings.peer.ae_title,
        )
        return found[0] if found else None


async def _run_request(
    assoc: Association,
    settings: MoveSettings,
    report: RequestReport,
    identifier: Dataset,
    collector: _Collector,
) -> None:
    async with assoc.move(
        identifier, settings.destination, model=settings.model, priority=settings.priority
    ) as operation:
        report.message_id = operation.message_id
        collector.by_message_id[operation.message_id] = report
        with anyio.CancelScope() as waiting:
            async for rsp in operation:
                report.responses += 1
                if rsp.is_final:
                    report.final = rsp
                    report.failed_sop_instance_uids = rsp.failed_sop_instance_uids
                elif _cancel_due(settings, report):
                    await operation.cancel()
                    report.cancelled = True
                    # PS3.7 §9.3.2.3 sets the SCP no deadline: bound the wait by -ta, as for
                    # an abandoned request (MoveOperation.__aexit__).
                    limit = min(CANCEL_TIMEOUT, settings.timeouts.acse)
                    waiting.deadline = anyio.current_time() + limit
        if waiting.cancelled_caught:
            await assoc.abort()
            raise AssociationAborted(
                f"no final C-MOVE-RSP within {limit} s of C-CANCEL; association aborted"
            )


def _cancel_due(settings: MoveSettings, report: RequestReport) -> bool:
    after = settings.cancel_after
    return after is not None and not report.cancelled and report.responses >= after


async def _linger(
    report: RequestReport, settings: MoveSettings, registry: ActiveAssociations
) -> None:
    """Wait (bounded) for the instances reported as completed and for storage to go quiet."""
    if settings.port is None:  # third-party move: nothing comes to us
        return
    final = report.final
    expected = 0
    # Only a move to ourselves brings the completed instances here (-aem OTHER does not).
    if final is not None and not report.cancelled and settings.destination == settings.ae_title:
        expected = (final.completed or 0) + (final.warning or 0)

    def settled() -> bool:
        return len(registry) == 0 and len(report.received) >= expected

    if not settled():
        log.info(
            "storage.linger",
            expected=expected,
            received=len(report.received),
            open_associations=len(registry),
            linger=settings.linger,
        )
    with anyio.move_on_after(settings.linger):
        await registry.wait_for(settled)
    if len(registry):
        report.aborted_stragglers = await registry.abort_all()


def _expected_uids(identifier: Dataset) -> list[str]:
    """At IMAGE level the request names its instances; we can tell which did not arrive."""
    if str(identifier.get("QueryRetrieveLevel", "")).strip().upper() != "IMAGE":
        return []
    value = identifier.get("SOPInstanceUID")
    if not value:
        return []
    return [str(v) for v in value] if not isinstance(value, str) else value.split("\\")


async def run_move(settings: MoveSettings, outcome: MoveOutcome | None = None) -> MoveOutcome:
    """Run every request (times `repeat`) on one association; storage served alongside.

    Errors come out as themselves, not wrapped in the task group's ExceptionGroup; what was
    done until then is in `outcome` (pass one in to keep it).
    """
    try:
        return await _run_move(settings, outcome if outcome is not None else MoveOutcome())
    except BaseExceptionGroup as group:
        raise _single(group) from None


def _single(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one error inside (nested) exception groups; the group itself if there are several."""
    while len(group.exceptions) == 1:
        inner = group.exceptions[0]
        if not isinstance(inner, BaseExceptionGroup):
            return inner
        group = inner
    return group


async def _run_move(settings: MoveSettings, outcome: MoveOutcome) -> MoveOutcome:
    registry = ActiveAssociations()
    async with anyio.create_task_group() as tg:
        collector = _Collector(settings, registry)
        if settings.port is not None and settings.sink is not None:
            storage = _storage_config(settings, registry, collector)
            try:
                port = await tg.start(serve, storage, settings.listen_host, settings.port)
            except OSError as exc:
                raise ListenError(
                    f"cannot listen on port {settings.port}: {exc.strerror or exc}", exc
                ) from exc
            log.info("storage.listening", port=port)
        contexts = [(settings.model, settings.proposed_transfer_syntaxes)]
        if settings.find_model is not None:
            contexts.append((settings.find_model, settings.proposed_transfer_syntaxes))
        async with connect(
            settings.peer,
            ae_title=settings.ae_title,
            contexts=contexts,
            max_pdu_length=settings.max_pdu_length,
            timeouts=settings.timeouts,
        ) as assoc:
            assoc.context_for(settings.model)  # NoAcceptedContext -> exit 66
            assoc.ignore_pending_datasets = not settings.pending_read
            for _ in range(settings.repeat):
                for identifier in settings.identifiers:
                    report = RequestReport(len(outcome.requests) + 1, query_summary(identifier))
                    outcome.requests.append(report)
                    collector.current = report
                    await _run_request(assoc, settings, report, identifier, collector)
                    await _linger(report, settings, registry)
                    received = {r.sop_instance_uid for r in report.received}
                    report.missing = [u for u in _expected_uids(identifier) if u not in received]
                    collector.current = None
            if settings.abort:
                outcome.released = False
                await assoc.abort()
        tg.cancel_scope.cancel()
    return outcome


def _storage_config(
    settings: MoveSettings, registry: ActiveAssociations, collector: _Collector
) -> AcceptorConfig:
    """The embedded Storage SCP: Verification + every Storage SOP class (movescu's list)."""
    assert settings.sink is not None
    return storage_config(
        settings.ae_title,
        settings.sink,
        settings.prefer,
        on_stored=collector.on_stored,
        accept=collector.accepts if settings.only_moved else None,
        max_pdu_length=settings.max_pdu_length,
        timeouts=settings.timeouts,
        registry=registry,
        ssl_context=settings.storage_ssl_context,
        **settings.handler_options,
        **settings.acceptor_options,
    )


def output_directory_problem(path: Path) -> str | None:
    """What is wrong with `-od`: "missing" (movescu exit 45), "unwritable" (exit 40), or None."""
    if not path.is_dir():
        return "missing"
    if not os.access(path, os.W_OK | os.X_OK):
        return "unwritable"
    return None
