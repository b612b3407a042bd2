"""Concurrent retrieves sharing one Storage SCP: `RetrieveSession` and `retrieve()`.

A session owns one listener (one port) and runs any number of C-MOVE retrieves at once, to one
or many peers, never more than `per_peer_limit` associations to the same peer at a time (PACS
administrators cap this). Every incoming C-STORE is attributed to the C-MOVE that caused it:

1. by Move Originator AE Title and Message ID (0000,1030/1031), `aiomove.attribution`'s rule:
   the session numbers the C-MOVE requests of all its associations from one counter, so the
   Message ID names one retrieve; a Message ID naming none makes the C-STORE not ours;
2. fallback for sources that omit them: the only retrieve running for that peer's AE title
   (the calling AE of the storage association), else the retrieve whose query matches the
   stored object's Patient ID / Study / Series / SOP Instance UIDs (read back from the file);
3. otherwise the instance is kept and counted as unattributed in the session.

Each retrieve ends with a reconciliation: expected (the source's completed + warning count,
or the UIDs an IMAGE-level query names) vs received vs failed vs duplicates, after waiting, up
to `linger` seconds, for instances a source reported before delivering (Orthanc answers
Success before its C-STOREs arrive).
"""

from __future__ import annotations

import itertools
import ssl
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pydicom
from pydicom import Dataset

from aiomove.association import Peer, Timeouts, connect
from aiomove.attribution import owners
from aiomove.log import get_logger
from aiomove.move import MoveResponse
from aiomove.movescu import DEFAULT_PROPOSED, Received
from aiomove.proto import uids
from aiomove.proto.connection import DEFAULT_MAX_PDU_LENGTH
from aiomove.server import ActiveAssociations, serve
from aiomove.storage import FileSink, StoreRequest, StoreResult, storage_config
from aiomove.transfer import Prefer

log = get_logger("aiomove.retrieve")

#: The query keys that identify what a retrieve brings, by level (PS3.4 C.4.2.2.1).
_MATCH_KEYS = ("PatientID", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")


#: Called with each instance attributed to a retrieve, as it lands (before its C-STORE-RSP).
OnReceived = Callable[[Received], Awaitable[None] | None]


@dataclass
class RetrieveResult:
    """The reconciliation of one retrieve."""

    peer: Peer
    query: Dataset
    message_id: int = 0
    final: MoveResponse | None = None
    responses: int = 0
    received: list[Received] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    error: str | None = None
    on_received: OnReceived | None = field(default=None, repr=False, compare=False)
    #: The exception behind `error` (for callers that classify failures, e.g. the daemon).
    exception: Exception | None = field(default=None, repr=False, compare=False)

    @property
    def expected(self) -> int | None:
        """How many instances the source said it sent (completed + warning sub-operations)."""
        if self.final is None or self.final.completed is None:
            return None
        return self.final.completed + (self.final.warning or 0)

    @property
    def failed_sop_instance_uids(self) -> tuple[str, ...]:
        return () if self.final is None else self.final.failed_sop_instance_uids

    @property
    def complete(self) -> bool:
        """Success, and everything the source reported (or the query named) arrived."""
        if self.error is not None or self.final is None or not self.final.status.is_success:
            return False
        expected = self.expected
        return not self.missing and (expected is None or len(self.stored_uids) >= expected)

    @property
    def stored_uids(self) -> set[str]:
        return {r.sop_instance_uid for r in self.received if r.status == 0}

    def to_json(self) -> dict[str, Any]:
        final = self.final
        return {
            "peer": str(self.peer),
            "query": {e.keyword or str(e.tag): str(e.value) for e in self.query},
            "status": None if final is None else f"0x{final.status.code:04X}",
            "completed": None if final is None else final.completed,
            "failed": None if final is None else final.failed,
            "warning": None if final is None else final.warning,
            "expected": self.expected,
            "received": len(self.received),
            "duplicates": self.duplicates,
            "failed_sop_instance_uids": list(self.failed_sop_instance_uids),
            "expected_not_received": self.missing,
            "complete": self.complete,
            "error": self.error,
        }


class RetrieveSession:
    """One Storage SCP port, any number of concurrent retrieves (use `open_session()`)."""

    def __init__(
        self,
        *,
        sink: FileSink,
        ae_title: str = "AIOMOVE",
        per_peer_limit: int = 2,
        prefer: Prefer = Prefer.UNCOMPRESSED,
        proposed_transfer_syntaxes: tuple[str, ...] = DEFAULT_PROPOSED,
        timeouts: Timeouts | None = None,
        max_pdu_length: int = DEFAULT_MAX_PDU_LENGTH,
        linger: float = 5.0,
        only_moved: bool = False,
    ) -> None:
        self.sink = sink
        self.ae_title = ae_title
        self.per_peer_limit = per_peer_limit
        self.prefer = prefer
        self.proposed = proposed_transfer_syntaxes
        self.timeouts = timeouts or Timeouts()
        self.max_pdu_length = max_pdu_length
        self.linger = linger
        #: Refuse (0x0124) C-STOREs that belong to no outstanding retrieve (see `accepts`).
        self.only_moved = only_moved
        self.port = 0
        self.registry = ActiveAssociations()
        self.unattributed: list[Received] = []
        #: Highest number of simultaneous associations seen per peer (for tests, metrics).
        self.peak_associations: dict[str, int] = defaultdict(int)
        self._message_ids = itertools.count(1)
        self._limits: dict[str, anyio.Semaphore] = {}
        self._open: dict[str, int] = defaultdict(int)
        self._outstanding: dict[int, RetrieveResult] = {}
        self._seen: dict[int, set[str]] = {}

    # --- store attribution -------------------------------------------------------------

    async def _on_stored(self, request: StoreRequest, result: StoreResult) -> None:
        item = Received(
            request.sop_class_uid,
            request.sop_instance_uid,
            result.status,
            None if result.path is None else str(result.path),
            result.size,
        )
        candidates = self._owners(request)
        if request.move_originator_message_id is not None:
            target = candidates[0] if candidates else None
        else:
            target = await self._by_content(request, result, candidates)
        if target is None:
            self.unattributed.append(item)
            log.warning("c_store.unattributed", uid=request.sop_instance_uid)
        else:
            seen = self._seen[target.message_id]
            if request.sop_instance_uid in seen:
                target.duplicates.append(request.sop_instance_uid)
            seen.add(request.sop_instance_uid)
            target.received.append(item)
            if target.on_received is not None:
                pending = target.on_received(item)
                if pending is not None:
                    await pending
        self.registry.notify()

    def accepts(self, request: StoreRequest) -> bool:
        """Whether a C-STORE may belong to an outstanding retrieve (`only_moved`) by
        `aiomove.attribution`'s rule: it names one, or names no message ID while some retrieve
        is outstanding (sources that omit the fields; `_by_content` attributes those after
        the write)."""
        return bool(self._owners(request))

    def _owners(self, request: StoreRequest) -> list[RetrieveResult]:
        outstanding = self._outstanding
        return owners(
            request, self.ae_title, outstanding, outstanding.values(), lambda r: r.peer.ae_title
        )

    async def _by_content(
        self, request: StoreRequest, stored: StoreResult, candidates: list[RetrieveResult]
    ) -> RetrieveResult | None:
        """The documented fallback for sources that omit the Move Originator fields: of the
        `candidates`, the one the calling AE title names, else the one the content matches."""
        from_peer = [r for r in candidates if r.peer.ae_title == request.calling_ae_title]
        candidates = from_peer or candidates
        if len(candidates) == 1:
            return candidates[0]
        if not candidates or stored.path is None:
            return None
        keys = await anyio.to_thread.run_sync(_identity, stored.path)
        matches = [r for r in candidates if _query_matches(r.query, keys)]
        return matches[0] if len(matches) == 1 else None

    # --- retrieving --------------------------------------------------------------------

    def _limit(self, peer: Peer) -> anyio.Semaphore:
        key = f"{peer.ae_title}@{peer.host}:{peer.port}"
        if key not in self._limits:
            self._limits[key] = anyio.Semaphore(self.per_peer_limit)
        return self._limits[key]

    async def retrieve(
        self,
        peer: Peer,
        query: Dataset,
        *,
        model: str = uids.STUDY_ROOT_QR_MOVE,
        on_received: OnReceived | None = None,
    ) -> RetrieveResult:
        """One C-MOVE to this session's port; waits for a free slot for `peer` first.

        Never raises for the retrieve's own failures: they are in the result (`error`,
        `final.status`), so one bad study does not end a bulk run. `on_received` is called
        with each instance attributed to this retrieve as it lands (e.g. to record receipts).
        """
        result = RetrieveResult(peer, query, on_received=on_received)
        key = f"{peer.ae_title}@{peer.host}:{peer.port}"
        try:
            async with self._limit(peer):
                self._open[key] += 1
                self.peak_associations[key] = max(self.peak_associations[key], self._open[key])
                try:
                    await self._move(peer, query, model, result)
                except Exception as exc:  # reported, not raised: see the docstring
                    result.error = str(exc) or type(exc).__name__
                    result.exception = exc
                    log.warning("retrieve.failed", peer=str(peer), error=result.error)
                finally:
                    self._open[key] -= 1
            await self._settle(result)
        finally:  # also when cancelled: a long-lived session must not keep finished retrieves
            self._outstanding.pop(result.message_id, None)
            self._seen.pop(result.message_id, None)
        wanted = _named_instances(query)
        result.missing = sorted(wanted - result.stored_uids)
        return result

    async def _move(self, peer: Peer, query: Dataset, model: str, result: RetrieveResult) -> None:
        find_model = {
            uids.PATIENT_ROOT_QR_MOVE: uids.PATIENT_ROOT_QR_FIND,
            uids.STUDY_ROOT_QR_MOVE: uids.STUDY_ROOT_QR_FIND,
        }
        contexts = [(model, self.proposed)]
        if model in find_model:
            contexts.append((find_model[model], self.proposed))
        async with connect(
            peer,
            ae_title=self.ae_title,
            contexts=contexts,
            max_pdu_length=self.max_pdu_length,
            timeouts=self.timeouts,
        ) as assoc:
            assoc.message_ids = self._message_ids
            assoc.ignore_pending_datasets = True
            async with assoc.move(query, self.ae_title, model=model) as operation:
                result.message_id = operation.message_id
                self._outstanding[operation.message_id] = result
                self._seen[operation.message_id] = set()
                async for rsp in operation:
                    result.responses += 1
                    if rsp.is_final:
                        result.final = rsp

    async def _settle(self, result: RetrieveResult) -> None:
        """Wait, bounded by `linger`, for the instances the source reported as sent."""
        expected = result.expected or 0

        def arrived() -> bool:
            return len(result.received) >= expected

        if not arrived():
            log.info("retrieve.linger", expected=expected, received=len(result.received))
            with anyio.move_on_after(self.linger):
                await self.registry.wait_for(arrived)


def _identity(path: Path) -> dict[str, str]:
    """The identifying UIDs of a stored object (header only)."""
    ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=list(_MATCH_KEYS))
    return {key: str(ds.get(key, "")) for key in _MATCH_KEYS}


def _values(value: Any) -> set[str]:
    if value is None or value == "":
        return set()
    if isinstance(value, str):
        return {v for v in value.split("\\") if v}
    return {str(v) for v in value}


def _query_matches(query: Dataset, keys: dict[str, str]) -> bool:
    """Whether an object with `keys` is one the query asks for (its unique keys agree)."""
    for key in _MATCH_KEYS:
        wanted = _values(query.get(key))
        if wanted and keys.get(key) not in wanted:
            return False
    return True


def _named_instances(query: Dataset) -> set[str]:
    """At IMAGE level the query names its instances; what must arrive."""
    if str(query.get("QueryRetrieveLevel", "")).strip().upper() != "IMAGE":
        return set()
    return _values(query.get("SOPInstanceUID"))


@asynccontextmanager
async def open_session(
    sink: FileSink,
    *,
    port: int = 0,
    host: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
    storage_options: Mapping[str, Any] | None = None,
    **options: Any,
) -> AsyncIterator[RetrieveSession]:
    """A `RetrieveSession` with its Storage SCP listening (`session.port`; 0 = OS-chosen).

    `ssl_context` makes the Storage SCP accept DICOM TLS only (outgoing TLS is per `Peer`).
    `storage_options` are more `storage_config` arguments: `min_rate` and `AcceptorConfig`
    fields (access control, allow-lists, limits; see `options_security.security_settings`).
    Options are `RetrieveSession`'s (ae_title, per_peer_limit, prefer, timeouts, linger,
    only_moved, ...).
    """
    session = RetrieveSession(sink=sink, **options)
    config = storage_config(
        session.ae_title,
        sink,
        session.prefer,
        on_stored=session._on_stored,
        accept=session.accepts if session.only_moved else None,
        max_pdu_length=session.max_pdu_length,
        timeouts=session.timeouts,
        registry=session.registry,
        ssl_context=ssl_context,
        **(storage_options or {}),
    )
    async with anyio.create_task_group() as tg:
        session.port = await tg.start(serve, config, host, port)
        try:
            yield session
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(session.timeouts.acse):
                await session.registry.abort_all()
            tg.cancel_scope.cancel()


async def retrieve(
    peer: Peer,
    queries: Dataset | Sequence[Dataset],
    *,
    sink: FileSink,
    port: int = 0,
    model: str = uids.STUDY_ROOT_QR_MOVE,
    **options: Any,
) -> list[RetrieveResult]:
    """Retrieve every query from `peer` into `sink`, concurrently (per-peer limit applies)."""
    batch = [queries] if isinstance(queries, Dataset) else list(queries)
    results: list[RetrieveResult | None] = [None] * len(batch)
    async with open_session(sink, port=port, **options) as session:

        async def one(index: int, query: Dataset) -> None:
            results[index] = await session.retrieve(peer, query, model=model)

        async with anyio.create_task_group() as tg:
            for index, query in enumerate(batch):
                tg.start_soon(one, index, query)
    return [r for r in results if r is not None]
