"""The job store: jobs, leases, receipts and per-peer slots in SQLite or PostgreSQL.

asyncio only (SQLAlchemy's async engine). Every method is safe to call concurrently from many
tasks, processes and machines. Each is a short sequence of single SQL statements, each atomic on
its own and conditional on the row's current state (owner, state, lease), so the statements run
in autocommit mode: one round trip each, no multi-statement transactions, no lock held between
statements, and a crash between two of them leaves a consistent database.

* claim: one `UPDATE jobs ... WHERE id = (SELECT id ... ORDER BY priority DESC, id LIMIT 1
  FOR UPDATE SKIP LOCKED) RETURNING ...`. PostgreSQL: concurrent claimers skip each other's
  locked rows instead of waiting or taking the same one. SQLite (no SKIP LOCKED): the UPDATE
  takes the database's single write lock when it starts (busy timeout between processes), and
  within a process writers queue on an anyio lock rather than on SQLite's sleeping busy loop.
* leases: a claimed job carries an owner and an expiry; heartbeats extend it. Expired RUNNING
  jobs are put back to QUEUED (or FAILED once attempts are used up) by claim(): at most once per
  REAP_INTERVAL per store, and whenever a claim finds nothing, so idle workers take over a
  crashed worker's job as soon as its lease expires.
* slots (the per-peer association limit across all daemons): one row per (peer, slot_index) for
  slot_index < limit; acquiring takes a free or expired row with one UPDATE (the same SKIP
  LOCKED / write lock rules as claim) and stamps it with a fresh token. A crashed holder's slot
  is free again when its lease expires.
* time: PostgreSQL uses the server's clock (`now()`), so daemons on machines whose clocks differ
  agree on lease expiry; SQLite (one machine) uses this process's UTC clock, read once per
  statement inside the writer lock (store_sql.Times).
* the hot paths (claim, heartbeat, finish, slots) run statements built once (store_sql).
"""

from __future__ import annotations

import builtins
import json
import time
import uuid
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from contextlib import asynccontextmanager, nullcontext
from datetime import UTC, datetime
from typing import Any

import anyio
from sqlalchemy import Row, Update, case, func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from aiomove.daemon.jobs import ACTIVE_STATES, Job, JobSpec, JobState, Progress, Receipt
from aiomove.daemon.schema import ACTIVE_SQL, jobs, receipts, slots
from aiomove.daemon.store_engine import autocommit, make_engine, migrate
from aiomove.daemon.store_sql import HotStatements, progress_params
from aiomove.log import get_logger

__all__ = ["JobStore", "open_store"]

log = get_logger(__name__)

#: Rows per INSERT when recording receipts (SQLite allows 32766 bound parameters).
RECEIPT_BATCH = 500
#: Seconds between recoveries of expired leases by a busy claimer (see claim()).
REAP_INTERVAL = 1.0
#: The unique index's own predicate, so that both planners use that partial index.
_IS_ACTIVE = text(ACTIVE_SQL)


async def open_store(url: str, *, pool_size: int = 10) -> JobStore:
    """Open the store at `url` ("sqlite+aiosqlite:///path.db" or "postgresql+asyncpg://...")
    and migrate it to the newest schema (Alembic; safe when many daemons start at once)."""
    engine = make_engine(url, pool_size=pool_size)
    try:
        await migrate(engine)
    except BaseException:
        await engine.dispose()
        raise
    return JobStore(engine)


def _job(row: Row[Any]) -> Job:
    m = row._mapping
    spec = JobSpec(m["peer"], m["level"], json.loads(m["keys"]), m["priority"])
    progress = Progress(m["expected"], m["received"], m["failed"], m["bytes"])
    return Job(
        id=m["id"],
        spec=spec,
        state=JobState(m["state"]),
        attempts=m["attempts"],
        max_attempts=m["max_attempts"],
        not_before=m["not_before"],
        lease_owner=m["lease_owner"],
        lease_expires=m["lease_expires"],
        progress=progress,
        error=m["error"],
        error_kind=m["error_kind"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
    )


def _one_line(error: str | None) -> str | None:
    return None if error is None else " ".join(error.split())[:1000]


class JobStore:
    """Jobs, receipts and slots in one database (see the module docstring for the rules)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._auto = autocommit(engine)
        self.dialect = engine.dialect.name
        self._pg = self.dialect == "postgresql"
        self._sql = HotStatements(self._pg)
        self._t = self._sql.times
        # SQLite has one writer per file anyway: queue this process's writers here.
        self._serial: anyio.Lock | None = None if self._pg else anyio.Lock()
        self._slot_rows: set[tuple[str, int]] = set()
        self._last_reap = -REAP_INTERVAL

    async def close(self) -> None:
        await self.engine.dispose()

    # -- plumbing ---------------------------------------------------------------------------

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncConnection]:
        async with self._serial or nullcontext(), self._auto.connect() as conn:
            yield conn

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[AsyncConnection]:
        async with self._auto.connect() as conn:
            yield conn

    def _insert(self, table: Any) -> Any:
        return (postgresql.insert if self._pg else sqlite.insert)(table)

    async def _get(self, conn: AsyncConnection, job_id: int) -> Job | None:
        row = (await conn.execute(select(jobs).where(jobs.c.id == job_id))).first()
        return None if row is None else _job(row)

    # -- submitting and claiming ------------------------------------------------------------

    async def submit(self, spec: JobSpec, *, max_attempts: int = 5) -> tuple[Job, bool]:
        """Queue `spec`, or return the active job with the same dedup key (created=False).

        A duplicate submitted with a higher priority raises the existing job's priority.
        """
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        key = spec.dedup_key()
        now = self._t.now()
        insert = (
            self._insert(jobs)
            .values(
                peer=spec.peer,
                level=spec.level,
                keys=json.dumps(dict(sorted(spec.keys.items()))),
                dedup_key=key,
                priority=spec.priority,
                state=JobState.QUEUED.value,
                attempts=0,
                max_attempts=max_attempts,
                created_at=now,
                updated_at=now,
            )
            .on_conflict_do_nothing(index_elements=["dedup_key"], index_where=_IS_ACTIVE)
            .returning(*jobs.c)
        )
        raise_priority = (
            update(jobs)
            .where(jobs.c.dedup_key == key, _IS_ACTIVE)
            .values(
                priority=case(
                    (jobs.c.priority < spec.priority, spec.priority), else_=jobs.c.priority
                )
            )
            .returning(*jobs.c)
        )
        while True:
            async with self._write() as conn:
                row = (await conn.execute(insert, self._t.values())).first()
                if row is not None:
                    return _job(row), True
                row = (await conn.execute(raise_priority)).first()
            if row is not None:
                return _job(row), False
            # The duplicate finished between our two statements: try inserting again.

    async def claim(
        self, owner: str, *, lease: float, peers: Collection[str] | None = None
    ) -> Job | None:
        """Take the next job: highest priority first, then oldest; only QUEUED jobs that are
        due (not_before passed), for one of `peers` when given. Sets RUNNING, the lease, and
        counts an attempt. Expired leases are recovered too (see the module docstring)."""
        if peers is not None and not peers:
            return None
        reaped = time.monotonic() - self._last_reap >= REAP_INTERVAL
        if reaped:
            await self._reap()
        job = await self._claim_next(owner, lease, peers)
        if job is None and not reaped and await self._reap():
            job = await self._claim_next(owner, lease, peers)
        return job

    async def _claim_next(
        self, owner: str, lease: float, peers: Collection[str] | None
    ) -> Job | None:
        stmt = self._sql.claim[peers is not None]
        async with self._write() as conn:
            params: dict[str, Any] = {**self._t.values(lease=lease), "p_owner": owner}
            if peers is not None:
                params["p_peers"] = builtins.list(peers)
            row = (await conn.execute(stmt, params)).first()
        return None if row is None else _job(row)

    async def _reap(self) -> int:
        """RUNNING jobs whose lease expired go back to QUEUED (FAILED when out of attempts)."""
        self._last_reap = time.monotonic()
        async with self._write() as conn:
            rows = (await conn.execute(self._sql.reap, self._t.values())).all()
        for job_id, state in rows:
            log.warning("job_store.lease_expired", job_id=job_id, state=state)
        return len(rows)

    # -- the worker's side of a claimed job -------------------------------------------------

    async def heartbeat(
        self, job_id: int, owner: str, *, lease: float, progress: Progress | None = None
    ) -> JobState | None:
        """Extend our lease (and record progress). Returns the job's state: RUNNING, or
        PAUSED/CANCELLED when a user changed it (the worker should stop); None when the job is
        no longer ours (lease expired and recovered, or finished)."""
        with_progress = progress is not None
        params = {"p_job_id": job_id, "p_owner": owner, **progress_params(progress)}
        async with self._write() as conn:
            params.update(self._t.values(lease=lease))
            row = (await conn.execute(self._sql.heartbeat_running[with_progress], params)).first()
            if row is not None:
                return JobState.RUNNING
            row = (await conn.execute(self._sql.heartbeat_stopped[with_progress], params)).first()
        return None if row is None else JobState(row.state)

    async def finish(
        self,
        job_id: int,
        owner: str,
        state: JobState,
        *,
        error: str | None = None,
        error_kind: str | None = None,
        progress: Progress | None = None,
    ) -> bool:
        """End our claim with `state` (SUCCEEDED, FAILED, CANCELLED or PAUSED). False when the
        job is not ours; also False when a user paused or cancelled it meanwhile: their state
        stays, our lease is dropped and the progress recorded."""
        if state in (JobState.QUEUED, JobState.RUNNING):
            raise ValueError(f"finish() ends a claim; {state} is not an end state")
        params = {
            "p_job_id": job_id,
            "p_owner": owner,
            "p_state": state.value,
            "p_error": _one_line(error),
            "p_error_kind": error_kind,
            **progress_params(progress),
        }
        with_progress = progress is not None
        return await self._end_claim(self._sql.end_running[with_progress], params, with_progress)

    async def reschedule(
        self, job_id: int, owner: str, *, delay: float, error: str, error_kind: str = "transient"
    ) -> bool:
        """A transient failure: back to QUEUED, due after `delay` seconds; FAILED instead when
        the attempts are used up or `error_kind` is "permanent". Same return as finish()."""
        params = {
            "p_job_id": job_id,
            "p_owner": owner,
            "p_error": _one_line(error),
            "p_error_kind": error_kind,
        }
        stmt = self._sql.reschedule[error_kind == "permanent"]
        return await self._end_claim(stmt, params, False, delay=delay)

    async def _end_claim(
        self, running: Update, params: dict[str, Any], with_progress: bool, delay: float = 0.0
    ) -> bool:
        async with self._write() as conn:
            params.update(self._t.values(delay=delay))
            if (await conn.execute(running, params)).first() is not None:
                return True
            await conn.execute(self._sql.end_stopped[with_progress], params)
        return False

    async def release(self, owner: str) -> int:
        """Graceful shutdown: our RUNNING jobs go back to QUEUED (the interrupted attempt is
        not counted) and our slots are freed. Returns the number of jobs released."""
        ours = jobs.c.lease_owner == owner
        requeue = (
            update(jobs)
            .where(ours, jobs.c.state == JobState.RUNNING.value)
            .values(
                state=JobState.QUEUED.value,
                attempts=case((jobs.c.attempts > 0, jobs.c.attempts - 1), else_=0),
                lease_owner=None,
                lease_expires=None,
                updated_at=self._t.now(),
            )
            .returning(jobs.c.id)
        )
        async with self._write() as conn:
            released = len((await conn.execute(requeue, self._t.values())).all())
            # Jobs a user paused or cancelled under us keep their state, lose our lease.
            await conn.execute(
                update(jobs).where(ours).values(lease_owner=None, lease_expires=None)
            )
            await conn.execute(
                update(slots)
                .where(slots.c.owner == owner)
                .values(token=None, owner=None, lease_expires=None)
            )
        return released

    # -- receipts ---------------------------------------------------------------------------

    async def add_receipts(self, batch: Sequence[Receipt]) -> int:
        """Record received instances; a (job_id, sop_instance_uid) already recorded is left as
        it was. Returns how many rows were new."""
        added = 0
        for start in range(0, len(batch), RECEIPT_BATCH):
            now = datetime.now(UTC)
            rows = [
                {
                    "job_id": r.job_id,
                    "sop_instance_uid": r.sop_instance_uid,
                    "sop_class_uid": r.sop_class_uid,
                    "path": r.path,
                    "size": r.size,
                    "received_at": now,
                }
                for r in batch[start : start + RECEIPT_BATCH]
            ]
            stmt = (
                self._insert(receipts)
                .values(rows)
                .on_conflict_do_nothing(index_elements=["job_id", "sop_instance_uid"])
                .returning(receipts.c.sop_instance_uid)
            )
            async with self._write() as conn:
                added += len((await conn.execute(stmt)).all())
        return added

    async def receipts(self, job_id: int) -> builtins.list[Receipt]:
        """The instances recorded for `job_id`, in the order they were recorded."""
        stmt = (
            select(receipts)
            .where(receipts.c.job_id == job_id)
            .order_by(receipts.c.received_at, receipts.c.sop_instance_uid)
        )
        async with self._read() as conn:
            rows = (await conn.execute(stmt)).all()
        return [
            Receipt(r.job_id, r.sop_instance_uid, r.sop_class_uid, r.path, r.size) for r in rows
        ]

    async def received_uids(self, job_id: int) -> set[str]:
        """SOP Instance UIDs already received for `job_id` (not to be requested again)."""
        stmt = select(receipts.c.sop_instance_uid).where(receipts.c.job_id == job_id)
        async with self._read() as conn:
            return set((await conn.execute(stmt)).scalars())

    async def receipt_count(self, job_id: int) -> int:
        """How many instances are recorded for `job_id` (for reconciliation)."""
        stmt = select(func.count()).select_from(receipts).where(receipts.c.job_id == job_id)
        async with self._read() as conn:
            return int((await conn.execute(stmt)).scalar_one())

    # -- reading ----------------------------------------------------------------------------

    async def get(self, job_id: int) -> Job | None:
        async with self._read() as conn:
            return await self._get(conn, job_id)

    async def list(
        self, *, state: JobState | None = None, limit: int = 100, offset: int = 0
    ) -> builtins.list[Job]:
        """Jobs, newest first, optionally only those in `state`."""
        stmt = select(jobs).order_by(jobs.c.id.desc()).limit(limit).offset(offset)
        if state is not None:
            stmt = stmt.where(jobs.c.state == state.value)
        async with self._read() as conn:
            return [_job(row) for row in await conn.execute(stmt)]

    async def counts(self) -> dict[JobState, int]:
        """How many jobs are in each state (every state present, zero included)."""
        stmt = select(jobs.c.state, func.count()).group_by(jobs.c.state)
        async with self._read() as conn:
            found = {JobState(state): int(n) for state, n in await conn.execute(stmt)}
        return {state: found.get(state, 0) for state in JobState}

    # -- user actions -----------------------------------------------------------------------

    async def _transition(
        self, job_id: int, sources: Collection[JobState], values: Mapping[str, Any]
    ) -> Job | None:
        """Move `job_id` from one of `sources` with `values`; the job as it is afterwards (the
        unchanged job when it was in another state; None when there is no such job)."""
        stmt = (
            update(jobs)
            .where(jobs.c.id == job_id, jobs.c.state.in_([s.value for s in sources]))
            .values(**values, updated_at=self._t.now())
            .returning(*jobs.c)
        )
        async with self._write() as conn:
            row = (await conn.execute(stmt, self._t.values())).first()
            return _job(row) if row is not None else await self._get(conn, job_id)

    async def cancel(self, job_id: int) -> Job | None:
        """QUEUED, PAUSED or RUNNING -> CANCELLED. A running job keeps its lease owner, so the
        worker's next heartbeat returns CANCELLED."""
        values = {"state": JobState.CANCELLED.value, "not_before": None}
        return await self._transition(job_id, ACTIVE_STATES, values)

    async def pause(self, job_id: int) -> Job | None:
        """QUEUED or RUNNING -> PAUSED (a running worker learns it from its heartbeat)."""
        values = {"state": JobState.PAUSED.value}
        return await self._transition(job_id, (JobState.QUEUED, JobState.RUNNING), values)

    async def resume(self, job_id: int) -> Job | None:
        """PAUSED -> QUEUED, due now."""
        values = {
            "state": JobState.QUEUED.value,
            "not_before": None,
            "lease_owner": None,
            "lease_expires": None,
        }
        return await self._transition(job_id, (JobState.PAUSED,), values)

    async def retry(self, job_id: int) -> Job | None:
        """FAILED or CANCELLED -> QUEUED with its attempts reset. When another active job has
        the same dedup key, that job is returned and this one is left as it is."""
        values = {
            "state": JobState.QUEUED.value,
            "attempts": 0,
            "not_before": None,
            "lease_owner": None,
            "lease_expires": None,
            "error": None,
            "error_kind": None,
        }
        while True:
            job = await self.get(job_id)
            if job is None or job.state not in (JobState.FAILED, JobState.CANCELLED):
                return job
            try:
                return await self._transition(job_id, (JobState.FAILED, JobState.CANCELLED), values)
            except IntegrityError:
                twin = await self._active_twin(job.spec.dedup_key())
                if twin is not None:
                    return twin

    async def _active_twin(self, key: str) -> Job | None:
        stmt = select(jobs).where(jobs.c.dedup_key == key, _IS_ACTIVE)
        async with self._read() as conn:
            row = (await conn.execute(stmt)).first()
        return None if row is None else _job(row)

    # -- per-peer slots ---------------------------------------------------------------------

    async def acquire_slot(self, peer: str, limit: int, owner: str, *, lease: float) -> str | None:
        """Take one of `peer`'s `limit` slots for `lease` seconds: a token, or None when all are
        held. Every daemon sharing the database must use the same limit for a peer (each only
        takes slots below its own limit)."""
        if limit < 1:
            raise ValueError("a slot limit must be at least 1")
        await self._ensure_slots(peer, limit)
        token = uuid.uuid4().hex
        params = {"p_peer": peer, "p_limit": limit, "p_token": token, "p_owner": owner}
        async with self._write() as conn:
            params.update(self._t.values(lease=lease))
            row = (await conn.execute(self._sql.acquire_slot, params)).first()
        return None if row is None else token

    async def _ensure_slots(self, peer: str, limit: int) -> None:
        if (peer, limit) in self._slot_rows:
            return
        rows = [{"peer": peer, "slot_index": i} for i in range(limit)]
        stmt = self._insert(slots).values(rows).on_conflict_do_nothing()
        async with self._write() as conn:
            await conn.execute(stmt)
        self._slot_rows.add((peer, limit))

    async def renew_slot(self, token: str, *, lease: float) -> bool:
        """Extend a slot's lease; False when it expired and someone else took it."""
        async with self._write() as conn:
            params = {"p_token": token, **self._t.values(lease=lease)}
            return (await conn.execute(self._sql.renew_slot, params)).first() is not None

    async def release_slot(self, token: str) -> None:
        """Give a slot back (nothing happens when it is no longer ours)."""
        async with self._write() as conn:
            await conn.execute(self._sql.release_slot, {"p_token": token})

    async def slots_in_use(self) -> dict[str, int]:
        """Held (unexpired) slots per peer."""
        stmt = (
            select(slots.c.peer, func.count())
            .where(slots.c.token.is_not(None), slots.c.lease_expires >= self._t.now())
            .group_by(slots.c.peer)
        )
        async with self._read() as conn:
            return {peer: int(n) for peer, n in await conn.execute(stmt, self._t.values())}
