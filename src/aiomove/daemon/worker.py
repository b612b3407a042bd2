"""One claimed job, run to an outcome: plan, retrieve what is missing, record, reconcile.

1. What is already here: the job's receipts whose files still exist (a SIGKILL can leave a file
   without its receipt: it is requested again and lands on the same layout path).
2. Plan (STUDY jobs): the studies (a STUDY-level C-FIND when the job names an accession
   number or patient), then per study an IMAGE-level C-FIND listing its instances. Nothing
   received yet: one STUDY-level C-MOVE; some: IMAGE-level C-MOVEs of the missing instances,
   per series (PS3.4 C.4.2.2.1). A peer that cannot list instances gets a STUDY-level C-MOVE.
   Other levels: one C-MOVE of the job's keys.
3. Every association (C-FIND or C-MOVE) holds a slot of the peer's shared limit
   (`JobStore.acquire_slot`), renewed with the job's heartbeat; a slot that could not be
   renewed (its lease expired and another daemon took it) stops the job at once [slot.lost]
   and reschedules it, so that the limit is never exceeded. Received instances become
   receipts in batches as they land (file sizes stat'ed in a worker thread).
4. Outcome: complete (every listed instance has a receipt, or the C-MOVE reported success and
   everything it counted arrived) -> succeeded; otherwise a classified failure
   (`aiomove.daemon.retry`): transient -> rescheduled with backoff, permanent -> failed.
   A job cancelled or paused (seen on the heartbeat) or lost (its lease taken over) stops at
   once: the C-MOVE is left with C-CANCEL. Store writes that must survive a stop are shielded
   but bounded by `store_timeout` [job.store_timeout].

asyncio only (the job store is SQLAlchemy async).
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread
import structlog
from pydicom import Dataset

from aiomove.daemon import retry
from aiomove.daemon.config import DaemonConfig, PeerConfig
from aiomove.daemon.jobs import Job, JobState, Progress, Receipt
from aiomove.daemon.metrics import Metrics
from aiomove.daemon.specs import identifier
from aiomove.errors import AssociationRejected, NoAcceptedContext, StatusError
from aiomove.find import find_all
from aiomove.log import get_logger
from aiomove.movescu import Received
from aiomove.proto import uids
from aiomove.proto.pdu import RejectResult
from aiomove.retrieve import RetrieveResult, RetrieveSession

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from aiomove.association import Peer
    from aiomove.daemon.store import JobStore

log = get_logger("aiomove.daemon")

#: SOP Instance UIDs per IMAGE-level C-MOVE request (bounded identifier size).
UIDS_PER_MOVE = 500
#: Receipts written per batch, and the longest a receipt waits in memory (seconds).
RECEIPT_BATCH = 64
RECEIPT_DELAY = 0.5
#: Waiting for a slot of the shared per-PACS limit: first and longest pause (seconds).
SLOT_POLL = (0.1, 1.0)
#: Pauses before retrying a C-MOVE association rejected transiently (see `_move`).
MOVE_REJECTED_DELAYS = (0.2, 0.5, 1.0)


@contextmanager
def shielded_write(timeout: float, write: str, **fields: object) -> Iterator[None]:
    """A job-store write protected from cancellation (a half-done write is neither written nor
    kept) but bounded by `timeout` (`store_timeout`): a hung database must not block a drain
    forever. A write that takes longer is abandoned [job.store_timeout]."""
    with anyio.CancelScope(shield=True), anyio.move_on_after(timeout) as scope:
        yield
    if scope.cancelled_caught:
        log.error("job.store_timeout", write=write, timeout=timeout, **fields)


class JobFailed(Exception):
    """Ends a job's retrieve with a classified failure."""

    def __init__(self, failure: retry.Failure) -> None:
        self.failure = failure
        super().__init__(failure.message)


@dataclass
class Instance:
    sop_instance_uid: str
    series_uid: str


@dataclass
class Runtime:
    """What every job of one daemon shares."""

    config: DaemonConfig
    store: JobStore
    session: RetrieveSession
    metrics: Metrics
    owner: str
    rng: random.Random = field(default_factory=random.Random)


class JobRun:
    """One job on this worker (`await run.execute()`); `stop()` ends it early."""

    def __init__(self, rt: Runtime, job: Job) -> None:
        self.rt = rt
        self.job = job
        self.peer_config: PeerConfig | None = rt.config.peers.get(job.spec.peer)
        self.stop_reason: str | None = None  # cancelled|paused|lost|slot_lost|shutdown
        self.done = anyio.Event()
        self._scope = anyio.CancelScope()
        self._tokens: set[str] = set()
        self._pending: list[Receipt] = []
        self._flush_now = anyio.Event()
        self._have: set[str] = set()  # SOP Instance UIDs with a receipt (and a file)
        self._expected: int | None = None
        self._failed = 0
        self._bytes = 0

    # --- control -----------------------------------------------------------------------

    def stop(self, reason: str) -> None:
        """End the job now (C-CANCEL for a running C-MOVE); the caller records the state."""
        if self.stop_reason is None:
            self.stop_reason = reason
        self._scope.cancel()

    @property
    def progress(self) -> Progress:
        return Progress(self._expected, len(self._have), self._failed, self._bytes)

    async def execute(self) -> None:
        """Run the job and record its outcome in the store (never raises for job failures)."""
        spec = self.job.spec
        with structlog.contextvars.bound_contextvars(job_id=self.job.id, peer_name=spec.peer):
            log.info("job.started", level=spec.level, attempt=self.job.attempts)
            self.rt.metrics.busy.inc()
            try:
                failure = await self._run()
                await self._record(failure)
            except Exception as exc:  # the store is unreachable: the lease expires, and
                # the job is taken over (by this daemon or another) when it is back
                log.error("job.record_failed", error=str(exc), exc_type=type(exc).__name__)
            finally:
                self.rt.metrics.busy.dec()
                self.done.set()

    async def _run(self) -> retry.Failure | None:
        failure: retry.Failure | None = None
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._heartbeat)
            tg.start_soon(self._flusher)
            with self._scope:
                try:
                    await self._retrieve()
                except JobFailed as exc:
                    failure = exc.failure
                except Exception as exc:  # classified: a bad job must not end the daemon
                    failure = retry.for_exception(exc)
                    log.warning("job.error", error=failure.message, exc_type=type(exc).__name__)
            tg.cancel_scope.cancel()
        with shielded_write(self.rt.config.store_timeout, write="receipts"):
            await self._flush()
        if self._pending and failure is None:  # success needs every receipt recorded
            failure = retry.transient(f"{len(self._pending)} receipts not recorded", "receipts")
        return failure

    async def _record(self, failure: retry.Failure | None) -> None:
        store, metrics, owner = self.rt.store, self.rt.metrics, self.rt.owner
        job_id, peer = self.job.id, self.job.spec.peer
        if self.stop_reason == "slot_lost":  # still our job: back to the queue, with backoff
            failure = retry.transient("a slot of the peer's limit was lost", "slot_lost")
        with shielded_write(self.rt.config.store_timeout, write="outcome"):
            if self.stop_reason not in (None, "slot_lost"):
                # cancelled/paused: the user's state stays (finish drops our lease and records
                # the progress); lost: not ours any more; shutdown: released by the daemon
                log.info("job.stopped", reason=self.stop_reason, received=len(self._have))
                if self.stop_reason in ("cancelled", "paused"):
                    state = JobState(self.stop_reason)
                    await store.finish(job_id, owner, state, progress=self.progress)
                return
            if failure is None:
                done = await store.finish(job_id, owner, JobState.SUCCEEDED, progress=self.progress)
                metrics.finished.labels(state="succeeded").inc()
                log.info("job.succeeded", received=len(self._have), recorded=done)
                return
            metrics.errors.labels(peer=peer, status=failure.label, kind=failure.kind).inc()
            if failure.transient and self.job.attempts < self.job.max_attempts:
                delay = self.rt.config.retry.delay(self.job.attempts, self.rt.rng.random())
                await store.reschedule(
                    job_id, owner, delay=delay, error=failure.message, error_kind=failure.kind
                )
                metrics.retries.labels(peer=peer).inc()
                log.warning("job.retry", error=failure.message, status=failure.label, delay=delay)
                return
            await store.finish(
                job_id,
                owner,
                JobState.FAILED,
                error=failure.message,
                error_kind=failure.kind,
                progress=self.progress,
            )
            metrics.finished.labels(state="failed").inc()
            log.warning("job.failed", error=failure.message, status=failure.label)

    # --- background: lease, slots, receipts ---------------------------------------------

    async def _heartbeat(self) -> None:
        lease = self.rt.config.lease
        while True:
            await anyio.sleep(lease / 3)
            try:
                state = await self.rt.store.heartbeat(
                    self.job.id, self.rt.owner, lease=lease, progress=self.progress
                )
                lost = [
                    token
                    for token in list(self._tokens)
                    if not await self.rt.store.renew_slot(token, lease=lease)
                ]
            except Exception as exc:  # the database may come back before the lease ends
                log.warning("job.heartbeat_failed", error=str(exc))
                continue
            if lost and state is not None:
                # Someone else holds the slot now: going on would exceed the peer's limit.
                log.warning("slot.lost", slots=len(lost))
                self.stop("slot_lost")
            elif state is None:
                log.warning("job.lease_lost")
                self.stop("lost")
            elif state in (JobState.CANCELLED, JobState.PAUSED):
                self.stop(str(state))

    async def _flusher(self) -> None:
        while True:
            with anyio.move_on_after(RECEIPT_DELAY):
                await self._flush_now.wait()
            self._flush_now = anyio.Event()
            await self._flush()

    async def _flush(self) -> None:
        batch, self._pending = self._pending, []
        if not batch:
            return
        written = False
        try:
            with shielded_write(self.rt.config.store_timeout, write="receipts", count=len(batch)):
                # The receipt records the file as it is on disk (Part 10 header included):
                # stat'ed here, in a worker thread, not on the loop before the C-STORE-RSP.
                batch = await anyio.to_thread.run_sync(_file_sizes, batch)
                await self.rt.store.add_receipts(batch)
                written = True
        except Exception as exc:  # the files are on disk; a receipt already there is kept
            log.warning("job.receipts_failed", error=str(exc), count=len(batch))
        if not written:  # kept for the next attempt
            self._pending[:0] = batch

    def _on_received(self, item: Received) -> None:
        """Called by the session as each instance of this job lands (before its C-STORE-RSP)."""
        peer = self.job.spec.peer
        if item.status != 0 or item.path is None:
            self._failed += 1
            return
        # The data set's size for now; _flush puts in the file's.
        self._pending.append(
            Receipt(self.job.id, item.sop_instance_uid, item.sop_class_uid, item.path, item.size)
        )
        self._have.add(item.sop_instance_uid)
        self._bytes += item.size
        self.rt.metrics.instances.labels(peer=peer).inc()
        self.rt.metrics.bytes.labels(peer=peer).inc(item.size)
        if len(self._pending) >= RECEIPT_BATCH:
            self._flush_now.set()

    @asynccontextmanager
    async def _slot(self) -> AsyncIterator[None]:
        """One of the peer's `max_associations` slots, shared by every daemon (the store)."""
        config = self._peer_config()
        pause, waited = SLOT_POLL[0], False
        while True:
            token = await self.rt.store.acquire_slot(
                config.name, config.max_associations, self.rt.owner, lease=self.rt.config.lease
            )
            if token is not None:
                break
            if not waited:
                self.rt.metrics.slot_waits.labels(peer=config.name).inc()
                waited = True
            await anyio.sleep(pause * (0.5 + self.rt.rng.random()))
            pause = min(pause * 2, SLOT_POLL[1])
        self._tokens.add(token)
        gauge = self.rt.metrics.associations.labels(peer=config.name)
        gauge.inc()
        try:
            yield
        finally:
            gauge.dec()
            self._tokens.discard(token)
            # On timeout the slot's lease expires by itself.
            with shielded_write(self.rt.config.store_timeout, write="release_slot"):
                await self.rt.store.release_slot(token)

    # --- the retrieve --------------------------------------------------------------------

    def _peer_config(self) -> PeerConfig:
        if self.peer_config is None:
            message = f"peer {self.job.spec.peer!r} is not configured on this daemon"
            raise JobFailed(retry.permanent(message, "unknown_peer"))
        return self.peer_config

    async def _retrieve(self) -> None:
        config = self._peer_config()
        peer = config.peer()
        receipts = await self.rt.store.receipts(self.job.id)
        paths = {r.sop_instance_uid: Path(r.path) for r in receipts}
        existing = await anyio.to_thread.run_sync(_existing, paths)
        self._have = set(existing)
        self._bytes = sum(r.size for r in receipts if r.sop_instance_uid in existing)
        if len(existing) < len(receipts):
            log.info("job.receipts_without_files", count=len(receipts) - len(existing))
        spec = self.job.spec
        if spec.level != "STUDY":
            result = await self._move(peer, identifier(spec.level, spec.keys))
            self._check_move(result)
            self._check_complete_counts(result)
            return
        studies = await self._studies(peer)
        plans: list[tuple[str, str, list[Instance] | None]] = []
        for study_uid, patient_id in studies:
            plans.append((study_uid, patient_id, await self._plan(peer, study_uid)))
        listed = [i for _, _, instances in plans for i in instances or []]
        self._expected = len(listed) if all(p is not None for _, _, p in plans) else None
        for study_uid, patient_id, instances in plans:
            await self._retrieve_study(peer, study_uid, patient_id, instances)
        missing = [i.sop_instance_uid for i in listed if i.sop_instance_uid not in self._have]
        if missing:
            message = f"{len(missing)} of {len(listed)} instances not received"
            raise JobFailed(retry.transient(message, "incomplete"))

    async def _studies(self, peer: Peer) -> list[tuple[str, str]]:
        """(StudyInstanceUID, PatientID) of the job: given, or found by a STUDY C-FIND."""
        keys = dict(self.job.spec.keys)
        if "StudyInstanceUID" in keys:
            return [(keys["StudyInstanceUID"], keys.get("PatientID", ""))]
        query = identifier("STUDY", keys)
        query.StudyInstanceUID = ""
        query.PatientID = keys.get("PatientID", "")
        matches = await self._find(peer, query)
        found = {
            str(m.get("StudyInstanceUID", "")).strip(): str(m.get("PatientID", "") or "")
            for m in matches
        }
        found = {uid: pid for uid, pid in found.items() if uids.is_valid_uid(uid)}
        if not found:
            raise JobFailed(retry.permanent("no study matches the job's keys", "not_found"))
        return list(found.items())

    async def _find(self, peer: Peer, query: Dataset) -> list[Dataset]:
        config = self.rt.config
        async with self._slot():
            return await find_all(
                peer,
                query,
                ae_title=config.ae_title,
                model=uids.STUDY_ROOT_QR_FIND,
                timeouts=config.timeouts,
            )

    async def _plan(self, peer: Peer, study_uid: str) -> list[Instance] | None:
        """The study's instances (None: the peer cannot list them)."""
        query = Dataset()
        query.QueryRetrieveLevel = "IMAGE"
        query.StudyInstanceUID = study_uid
        query.SeriesInstanceUID = ""
        query.SOPInstanceUID = ""
        try:
            matches = await self._find(peer, query)
        except (StatusError, NoAcceptedContext) as exc:
            log.info("job.no_plan", study=study_uid, error=str(exc))
            return None
        instances: dict[str, Instance] = {}
        for match in matches:
            sop = str(match.get("SOPInstanceUID", "") or "").strip()
            series = str(match.get("SeriesInstanceUID", "") or "").strip()
            if uids.is_valid_uid(sop) and uids.is_valid_uid(series):
                instances.setdefault(sop, Instance(sop, series))
        return list(instances.values())

    async def _retrieve_study(
        self, peer: Peer, study_uid: str, patient_id: str, instances: list[Instance] | None
    ) -> None:
        if instances is not None and not instances:
            raise JobFailed(retry.permanent(f"study {study_uid} has no instances", "not_found"))
        missing = [i for i in instances or [] if i.sop_instance_uid not in self._have]
        if instances is not None and not missing:
            return
        for query in self._move_queries(study_uid, patient_id, instances, missing):
            result = await self._move(peer, query)
            self._check_move(result)
            if instances is None:
                self._check_complete_counts(result)

    def _move_queries(
        self,
        study_uid: str,
        patient_id: str,
        instances: list[Instance] | None,
        missing: list[Instance],
    ) -> Iterator[Dataset]:
        def base(level: str) -> Dataset:
            ds = Dataset()
            ds.QueryRetrieveLevel = level
            if self._peer_config().model == "patient":  # PS3.4 C.4.2.2.1: the patient's key
                ds.PatientID = patient_id
            ds.StudyInstanceUID = study_uid
            return ds

        if instances is None or len(missing) == len(instances):
            yield base("STUDY")
            return
        by_series: dict[str, list[str]] = {}
        for instance in missing:
            by_series.setdefault(instance.series_uid, []).append(instance.sop_instance_uid)
        for series, sops in by_series.items():
            for start in range(0, len(sops), UIDS_PER_MOVE):
                ds = base("IMAGE")
                ds.SeriesInstanceUID = series
                ds.SOPInstanceUID = sops[start : start + UIDS_PER_MOVE]
                yield ds

    async def _move(self, peer: Peer, query: Dataset) -> RetrieveResult:
        """One C-MOVE; a transient rejection right away is retried a few times within the
        attempt: the C-FIND association just before it may still be closing at a PACS that
        allows one association, and retrying the whole job would only race it again."""
        config = self._peer_config()
        for delay in (*MOVE_REJECTED_DELAYS, None):
            async with self._slot():
                result = await self.rt.session.retrieve(
                    peer, query, model=config.move_model, on_received=self._on_received
                )
            exc = result.exception
            transient = (
                isinstance(exc, AssociationRejected) and exc.result != RejectResult.PERMANENT
            )
            if not transient or delay is None:
                return result
            log.info("job.move_rejected_retry", delay=delay, error=str(exc))
            await anyio.sleep(delay)
        raise AssertionError("unreachable")  # the loop always returns

    def _check_move(self, result: RetrieveResult) -> None:
        """A failed C-MOVE ends the job with its classified failure."""
        if result.exception is not None:
            raise JobFailed(retry.for_exception(result.exception))
        if result.error is not None:
            raise JobFailed(retry.transient(result.error, "error"))
        final = result.final
        if final is None:
            raise JobFailed(retry.transient("no final C-MOVE response", "no_final"))
        if final.status.is_failure or final.status.is_cancel:
            message = f"C-MOVE {final.status}"
            raise JobFailed(retry.for_status(final.status.code, message))

    def _check_complete_counts(self, result: RetrieveResult) -> None:
        """Without an instance list: the source's counters are the reconciliation."""
        expected = result.expected
        self._expected = expected
        if expected == 0 and not result.received:
            raise JobFailed(retry.permanent("nothing matches the job's keys", "not_found"))
        if not result.complete:
            message = f"incomplete: {len(result.stored_uids)} of {expected} instances received"
            raise JobFailed(retry.transient(message, "incomplete"))


def _file_sizes(batch: list[Receipt]) -> list[Receipt]:
    """`batch` with each receipt's size that of its file (kept when the file cannot be read)."""
    out = []
    for receipt in batch:
        try:
            out.append(replace(receipt, size=os.stat(receipt.path).st_size))
        except OSError:
            out.append(receipt)
    return out


def _existing(paths: dict[str, Path]) -> set[str]:
    return {uid for uid, path in paths.items() if path.is_file()}
