"""Job store semantics, the same suite on SQLite and PostgreSQL (`store_url`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import anyio
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from aiomove.daemon.jobs import Job, JobSpec, JobState, Progress, Receipt
from aiomove.daemon.schema import metadata
from aiomove.daemon.store import RECEIPT_BATCH, JobStore, open_store
from aiomove.daemon.store_engine import SCRIPT_LOCATION, make_engine

pytestmark = pytest.mark.anyio

T = TypeVar("T")


def study(uid: str, peer: str = "pacs", priority: int = 0) -> JobSpec:
    return JobSpec(peer, "STUDY", {"StudyInstanceUID": uid}, priority)


async def claim_one(store: JobStore, owner: str = "w1", lease: float = 60.0) -> Job:
    job = await store.claim(owner, lease=lease)
    assert job is not None
    return job


# -- JobSpec (no database) -----------------------------------------------------------------


def test_dedup_key_ignores_key_order_and_priority() -> None:
    a = JobSpec("pacs", "SERIES", {"StudyInstanceUID": "1", "SeriesInstanceUID": "2"}, 1)
    b = JobSpec("pacs", "SERIES", {"SeriesInstanceUID": "2", "StudyInstanceUID": "1"}, 9)
    assert a.dedup_key() == b.dedup_key()
    assert a.dedup_key() != JobSpec("other", "SERIES", dict(a.keys)).dedup_key()
    assert a.dedup_key() != JobSpec("pacs", "STUDY", dict(a.keys)).dedup_key()
    # Values that contain separators cannot make two different specs collide.
    assert study("1|2").dedup_key() != JobSpec("pacs|STUDY", "STUDY", {"x": "2"}).dedup_key()


def test_jobspec_validates_and_copies_keys() -> None:
    with pytest.raises(ValueError, match="level"):
        JobSpec("pacs", "WHATEVER", {})
    with pytest.raises(ValueError, match="peer"):
        JobSpec("", "STUDY", {})
    keys = {"StudyInstanceUID": "1"}
    spec = JobSpec("pacs", "STUDY", keys)
    keys["StudyInstanceUID"] = "2"
    assert spec.keys == {"StudyInstanceUID": "1"}


# -- schema and migrations -----------------------------------------------------------------


async def test_migrated_schema_matches_metadata(store_url: str) -> None:
    first = await open_store(store_url)
    await first.close()
    store = await open_store(store_url)  # a second open finds the database at head
    try:
        async with store.engine.connect() as conn:
            diffs = await conn.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), metadata)
            )
            version = await conn.exec_driver_sql("SELECT version_num FROM alembic_version")
            assert version.scalars().all() == ["0001"]
    finally:
        await store.close()
    assert diffs == []


async def test_migration_downgrades_and_upgrades_again(store_url: str) -> None:
    store = await open_store(store_url)
    await store.submit(study("1"))
    await store.close()

    def tables(sync: Any) -> set[str]:
        return set(inspect(sync).get_table_names()) - {"alembic_version"}

    engine = make_engine(store_url)
    try:
        async with engine.begin() as conn:
            assert await conn.run_sync(tables) == {"jobs", "receipts", "slots"}
            await conn.run_sync(lambda sync: _alembic(sync, "downgrade", "base"))
            assert await conn.run_sync(tables) == set()
    finally:
        await engine.dispose()
    store = await open_store(store_url)  # migrates again
    try:
        assert (await store.submit(study("1")))[1]  # an empty, working store
    finally:
        await store.close()


def _alembic(connection: Any, action: str, target: str) -> None:
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    config.attributes["connection"] = connection
    getattr(command, action)(config, target)


async def test_concurrent_opens_migrate_once(store_url: str) -> None:
    stores: list[JobStore] = []

    async def opener() -> None:
        stores.append(await open_store(store_url))

    with anyio.fail_after(120):  # a deadlock would be a failure, not a hung run
        async with anyio.create_task_group() as tg:
            for _ in range(4):
                tg.start_soon(opener)
    try:
        job, created = await stores[0].submit(study("1"))
        assert created
        assert await stores[3].get(job.id) == job
    finally:
        for s in stores:
            await s.close()


# -- submit and dedup ----------------------------------------------------------------------


async def test_submit_and_get_round_trip(store: JobStore) -> None:
    spec = JobSpec("pacs", "SERIES", {"StudyInstanceUID": "1.2", "SeriesInstanceUID": "1.2.3"}, 7)
    job, created = await store.submit(spec, max_attempts=3)
    assert created
    assert job.spec == spec
    assert (job.state, job.attempts, job.max_attempts) == (JobState.QUEUED, 0, 3)
    assert job.progress == Progress()
    assert job.lease_owner is None
    assert job.not_before is None
    assert job.error is None
    assert job.created_at.tzinfo is not None
    assert job.created_at.utcoffset() == UTC.utcoffset(None)
    assert await store.get(job.id) == job
    assert await store.get(job.id + 1000) is None


async def test_same_study_twice_is_one_job(store: JobStore) -> None:
    job, created = await store.submit(study("1"))
    again, created_again = await store.submit(study("1"))
    assert created
    assert not created_again
    assert again.id == job.id
    # A duplicate with a higher priority raises the job's priority, never lowers it.
    higher, _ = await store.submit(study("1", priority=5))
    lower, _ = await store.submit(study("1", priority=1))
    assert (higher.id, higher.spec.priority, lower.spec.priority) == (job.id, 5, 5)
    # Another peer or study is another job.
    assert (await store.submit(study("1", peer="other")))[1]
    assert (await store.submit(study("2")))[1]
    # Running and paused jobs are active too; a finished one is not.
    claimed = await claim_one(store)
    assert claimed.id == job.id
    assert (await store.submit(study("1")))[0].id == job.id
    assert await store.finish(job.id, "w1", JobState.SUCCEEDED)
    fresh, created = await store.submit(study("1"))
    assert created
    assert fresh.id != job.id


async def test_concurrent_duplicate_submits_make_one_job(store: JobStore) -> None:
    results: list[tuple[Job, bool]] = []

    async def submit() -> None:
        results.append(await store.submit(study("1")))

    async with anyio.create_task_group() as tg:
        for _ in range(10):
            tg.start_soon(submit)
    assert len({job.id for job, _ in results}) == 1
    assert sum(created for _, created in results) == 1


# -- claim ---------------------------------------------------------------------------------


async def test_claim_takes_highest_priority_then_oldest(store: JobStore) -> None:
    low, _ = await store.submit(study("low", priority=0))
    high_old, _ = await store.submit(study("high-old", priority=5))
    high_new, _ = await store.submit(study("high-new", priority=5))
    mid, _ = await store.submit(study("mid", priority=2))
    order = [(await claim_one(store)).id for _ in range(4)]
    assert order == [high_old.id, high_new.id, mid.id, low.id]
    assert await store.claim("w1", lease=60) is None


async def test_claim_sets_lease_and_counts_attempt(store: JobStore) -> None:
    await store.submit(study("1"))
    job = await claim_one(store, "worker-a", lease=60)
    assert (job.state, job.attempts, job.lease_owner) == (JobState.RUNNING, 1, "worker-a")
    assert job.lease_expires is not None
    assert 50 < (job.lease_expires - job.updated_at).total_seconds() <= 60


async def test_claim_only_for_given_peers(store: JobStore) -> None:
    a, _ = await store.submit(study("1", peer="a", priority=9))
    b, _ = await store.submit(study("2", peer="b"))
    assert await store.claim("w1", lease=60, peers=[]) is None
    got = await store.claim("w1", lease=60, peers={"b", "c"})
    assert got is not None
    assert got.id == b.id
    assert await store.claim("w1", lease=60, peers=["b"]) is None
    got = await store.claim("w1", lease=60, peers=["a"])
    assert got is not None
    assert got.id == a.id


async def test_paused_and_cancelled_jobs_are_not_claimed(store: JobStore) -> None:
    paused, _ = await store.submit(study("1"))
    cancelled, _ = await store.submit(study("2"))
    await store.pause(paused.id)
    await store.cancel(cancelled.id)
    assert await store.claim("w1", lease=60) is None
    await store.resume(paused.id)
    assert (await claim_one(store)).id == paused.id


# -- the worker's side ---------------------------------------------------------------------


async def test_heartbeat_extends_lease_and_records_progress(store: JobStore) -> None:
    await store.submit(study("1"))
    job = await claim_one(store, lease=5)
    state = await store.heartbeat(job.id, "w1", lease=600, progress=Progress(10, 4, 1, 4096))
    assert state is JobState.RUNNING
    now = await store.get(job.id)
    assert now is not None
    assert now.lease_expires is not None
    assert job.lease_expires is not None
    assert now.lease_expires > job.lease_expires
    assert now.progress == Progress(10, 4, 1, 4096)
    assert await store.heartbeat(job.id, "someone-else", lease=600) is None


async def test_heartbeat_reports_pause_and_cancel(store: JobStore) -> None:
    await store.submit(study("1"))
    job = await claim_one(store)
    paused = await store.pause(job.id)
    assert paused is not None
    assert paused.state is JobState.PAUSED
    assert await store.heartbeat(job.id, "w1", lease=60) is JobState.PAUSED
    cancelled = await store.cancel(job.id)
    assert cancelled is not None
    assert cancelled.state is JobState.CANCELLED
    assert await store.heartbeat(job.id, "w1", lease=60) is JobState.CANCELLED
    # The worker stops; its finish keeps the user's state but drops the lease.
    assert not await store.finish(job.id, "w1", JobState.SUCCEEDED, progress=Progress(2, 2))
    after = await store.get(job.id)
    assert after is not None
    assert (after.state, after.lease_owner, after.progress) == (
        JobState.CANCELLED,
        None,
        Progress(2, 2),
    )
    assert await store.heartbeat(job.id, "w1", lease=60) is None


async def test_finish_records_outcome_and_only_for_owner(store: JobStore) -> None:
    await store.submit(study("1"))
    job = await claim_one(store)
    assert not await store.finish(job.id, "intruder", JobState.SUCCEEDED)
    with pytest.raises(ValueError, match="end state"):
        await store.finish(job.id, "w1", JobState.QUEUED)
    assert await store.finish(
        job.id, "w1", JobState.FAILED, error="C-MOVE refused:\n0xA801", error_kind="permanent"
    )
    done = await store.get(job.id)
    assert done is not None
    assert (done.state, done.error, done.error_kind, done.lease_owner, done.lease_expires) == (
        JobState.FAILED,
        "C-MOVE refused: 0xA801",
        "permanent",
        None,
        None,
    )
    assert not await store.finish(job.id, "w1", JobState.SUCCEEDED)  # only once


async def test_reschedule_backs_off_then_fails(store: JobStore) -> None:
    job, _ = await store.submit(study("1"), max_attempts=2)
    await claim_one(store)
    assert await store.reschedule(job.id, "w1", delay=3600, error="association refused")
    waiting = await store.get(job.id)
    assert waiting is not None
    assert waiting.not_before is not None
    assert (waiting.state, waiting.error, waiting.error_kind) == (
        JobState.QUEUED,
        "association refused",
        "transient",
    )
    assert await store.claim("w1", lease=60) is None  # not due for an hour
    assert await store.reschedule(job.id, "w1", delay=0, error="x") is False  # not ours now
    # Due at once: claimable; the second failure uses up max_attempts=2.
    other, _ = await store.submit(study("2"), max_attempts=2)
    await claim_one(store)
    assert await store.reschedule(other.id, "w1", delay=0, error="timeout")
    again = await claim_one(store)
    assert (again.id, again.attempts) == (other.id, 2)
    assert await store.reschedule(other.id, "w1", delay=0, error="timeout")
    failed = await store.get(other.id)
    assert failed is not None
    assert failed.state is JobState.FAILED


async def test_reschedule_permanent_error_fails_at_once(store: JobStore) -> None:
    job, _ = await store.submit(study("1"), max_attempts=5)
    await claim_one(store)
    assert await store.reschedule(job.id, "w1", delay=0, error="unknown AE", error_kind="permanent")
    failed = await store.get(job.id)
    assert failed is not None
    assert (failed.state, failed.attempts) == (JobState.FAILED, 1)


async def poll(attempt: Callable[[], Awaitable[T | None]]) -> T:
    """Call `attempt` until it gives something (polling the database is the point here)."""
    with anyio.fail_after(30):
        while True:
            if (got := await attempt()) is not None:
                return got
            await anyio.sleep(0.05)


async def take_over(store: JobStore, owner: str) -> Job:
    """Claim until a job comes (an expired lease is recovered by claim())."""
    return await poll(lambda: store.claim(owner, lease=60))


async def test_expired_lease_is_taken_over_with_receipts(store: JobStore) -> None:
    job, _ = await store.submit(study("1"))
    await claim_one(store, "crashed", lease=60)
    await store.add_receipts([Receipt(job.id, "1.2.3.1", "1.2.840.10008.5.1.4.1.1.2", "/a", 10)])
    assert await store.claim("rescuer", lease=60) is None  # leased: not taken
    # The crashed worker's last heartbeat asked for a short lease.
    assert await store.heartbeat(job.id, "crashed", lease=0.05) is JobState.RUNNING
    last = await store.get(job.id)
    assert last is not None
    assert last.lease_expires is not None
    second = await take_over(store, "rescuer")
    assert (second.id, second.attempts, second.lease_owner) == (job.id, 2, "rescuer")
    assert second.updated_at >= last.lease_expires  # by the database's clock
    assert second.error == "lease expired (worker lost)"
    assert await store.received_uids(job.id) == {"1.2.3.1"}
    # The crashed worker, should it come back, no longer owns the job.
    assert await store.heartbeat(job.id, "crashed", lease=60) is None
    assert not await store.finish(job.id, "crashed", JobState.SUCCEEDED)
    assert await store.finish(job.id, "rescuer", JobState.SUCCEEDED)


async def test_expired_lease_without_attempts_left_fails(store: JobStore) -> None:
    job, _ = await store.submit(study("1"), max_attempts=1)
    await claim_one(store, "crashed", lease=0.1)
    await anyio.sleep(0.4)
    assert await store.claim("rescuer", lease=60) is None
    failed = await store.get(job.id)
    assert failed is not None
    assert (failed.state, failed.lease_owner, failed.error) == (
        JobState.FAILED,
        None,
        "lease expired (worker lost)",
    )


async def test_release_requeues_without_counting_the_attempt(store: JobStore) -> None:
    a, _ = await store.submit(study("1"))
    b, _ = await store.submit(study("2"))
    c, _ = await store.submit(study("3"))
    await claim_one(store, "daemon-1")
    await claim_one(store, "daemon-1")
    await claim_one(store, "daemon-2")
    token = await store.acquire_slot("pacs", 1, "daemon-1", lease=60)
    assert token is not None
    assert await store.release("daemon-1") == 2
    for job_id in (a.id, b.id):
        job = await store.get(job_id)
        assert job is not None
        assert (job.state, job.attempts, job.lease_owner) == (JobState.QUEUED, 0, None)
    other = await store.get(c.id)
    assert other is not None
    assert other.state is JobState.RUNNING
    assert await store.acquire_slot("pacs", 1, "daemon-2", lease=60) is not None
    assert not await store.renew_slot(token, lease=60)


# -- user actions --------------------------------------------------------------------------


async def test_cancel_pause_resume_retry(store: JobStore) -> None:
    job, _ = await store.submit(study("1"))
    paused = await store.pause(job.id)
    assert paused is not None
    assert paused.state is JobState.PAUSED
    resumed = await store.resume(job.id)
    assert resumed is not None
    assert resumed.state is JobState.QUEUED
    again = await store.resume(job.id)  # not paused: unchanged
    assert again is not None
    assert again.state is JobState.QUEUED
    cancelled = await store.cancel(job.id)
    assert cancelled is not None
    assert cancelled.state is JobState.CANCELLED
    unpaused = await store.pause(job.id)  # a cancelled job cannot be paused
    assert unpaused is not None
    assert unpaused.state is JobState.CANCELLED
    retried = await store.retry(job.id)
    assert retried is not None
    assert (retried.state, retried.attempts) == (JobState.QUEUED, 0)
    for action in (store.cancel, store.pause, store.resume, store.retry):
        assert await action(job.id + 1000) is None


async def test_retry_resets_a_failed_job(store: JobStore) -> None:
    job, _ = await store.submit(study("1"), max_attempts=1)
    await claim_one(store)
    await store.reschedule(job.id, "w1", delay=0, error="refused")
    retried = await store.retry(job.id)
    assert retried is not None
    assert (retried.state, retried.attempts, retried.error) == (JobState.QUEUED, 0, None)
    succeeded = await claim_one(store)
    await store.finish(succeeded.id, "w1", JobState.SUCCEEDED)
    kept = await store.retry(job.id)  # a succeeded job is not retried
    assert kept is not None
    assert kept.state is JobState.SUCCEEDED


async def test_retry_with_an_active_twin_returns_the_twin(store: JobStore) -> None:
    old, _ = await store.submit(study("1"))
    await store.cancel(old.id)
    twin, created = await store.submit(study("1"))
    assert created
    got = await store.retry(old.id)
    assert got is not None
    assert got.id == twin.id
    still = await store.get(old.id)
    assert still is not None
    assert still.state is JobState.CANCELLED


async def test_list_and_counts(store: JobStore) -> None:
    ids = [(await store.submit(study(str(i))))[0].id for i in range(5)]
    await store.cancel(ids[0])
    await claim_one(store)
    counts = await store.counts()
    assert counts[JobState.QUEUED] == 3
    assert counts[JobState.RUNNING] == 1
    assert counts[JobState.CANCELLED] == 1
    assert counts[JobState.SUCCEEDED] == 0
    assert set(counts) == set(JobState)
    assert [j.id for j in await store.list()] == ids[::-1]
    assert [j.id for j in await store.list(limit=2, offset=1)] == ids[3:1:-1]
    assert [j.id for j in await store.list(state=JobState.CANCELLED)] == [ids[0]]


# -- receipts ------------------------------------------------------------------------------


async def test_receipts_are_idempotent(store: JobStore) -> None:
    job, _ = await store.submit(study("1"))
    other, _ = await store.submit(study("2"))
    ct = "1.2.840.10008.5.1.4.1.1.2"
    first = [Receipt(job.id, f"1.2.3.{i}", ct, f"/d/{i}.dcm", 100 + i) for i in range(3)]
    assert await store.add_receipts(first) == 3
    again = [*first[1:], Receipt(job.id, "1.2.3.9", ct, "/d/9.dcm", 9), first[0]]
    assert await store.add_receipts(again) == 1
    assert await store.add_receipts([Receipt(other.id, "1.2.3.0", ct, "/o", 1)]) == 1
    assert await store.received_uids(job.id) == {"1.2.3.0", "1.2.3.1", "1.2.3.2", "1.2.3.9"}
    assert await store.receipt_count(job.id) == 4
    rows = {r.sop_instance_uid: r for r in await store.receipts(job.id)}
    assert rows["1.2.3.1"] == first[1]  # the first record of an instance stays
    assert await store.add_receipts([]) == 0


async def test_many_receipts_in_one_call(store: JobStore) -> None:
    job, _ = await store.submit(study("1"))
    n = RECEIPT_BATCH * 2 + 7
    batch = [Receipt(job.id, f"1.2.{i}", "1.2.3", f"/d/{i}", i) for i in range(n)]
    assert await store.add_receipts(batch) == n
    assert await store.add_receipts(batch) == 0
    assert await store.receipt_count(job.id) == n


async def test_receipt_for_unknown_job_is_refused(store: JobStore) -> None:
    with pytest.raises(Exception, match=r"(?i)foreign key"):
        await store.add_receipts([Receipt(12345, "1.2.3", "1.2", "/x", 1)])


# -- slots ---------------------------------------------------------------------------------


async def test_slots_limit_renew_release(store: JobStore) -> None:
    tokens = [await store.acquire_slot("pacs", 2, f"w{i}", lease=60) for i in range(3)]
    assert tokens[0] is not None
    assert tokens[1] is not None
    assert tokens[2] is None
    assert await store.acquire_slot("other-pacs", 2, "w9", lease=60) is not None
    assert await store.slots_in_use() == {"pacs": 2, "other-pacs": 1}
    assert await store.renew_slot(tokens[0], lease=60)
    await store.release_slot(tokens[0])
    assert not await store.renew_slot(tokens[0], lease=60)
    await store.release_slot(tokens[0])  # twice is harmless
    third = await store.acquire_slot("pacs", 2, "w2", lease=60)
    assert third is not None
    assert third not in tokens
    assert await store.acquire_slot("pacs", 2, "w3", lease=60) is None
    with pytest.raises(ValueError, match="limit"):
        await store.acquire_slot("pacs", 0, "w3", lease=60)


async def test_expired_slot_is_free_again(store: JobStore) -> None:
    crashed = await store.acquire_slot("pacs", 1, "crashed", lease=60)
    assert crashed is not None
    assert await store.acquire_slot("pacs", 1, "w2", lease=60) is None  # held: not taken
    assert await store.renew_slot(crashed, lease=0.05)  # the holder's last renewal, then a crash
    taken: str = await poll(lambda: store.acquire_slot("pacs", 1, "w2", lease=60))
    assert not await store.renew_slot(crashed, lease=60)
    await store.release_slot(crashed)  # the old holder cannot free the new holder's slot
    assert await store.slots_in_use() == {"pacs": 1}
    await store.release_slot(taken)
    assert await store.slots_in_use() == {}


async def test_naive_datetimes_are_refused() -> None:
    from aiomove.daemon.schema import UTCDateTime

    with pytest.raises(ValueError, match="naive"):
        UTCDateTime().process_bind_param(datetime(2026, 1, 1), None)  # type: ignore[arg-type]
