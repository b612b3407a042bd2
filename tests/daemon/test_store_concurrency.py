"""The job store under contention: many tasks, several stores and several OS processes at once,
on SQLite and PostgreSQL. No job is claimed twice, the slot limit is never exceeded (observed
by the holders themselves), and a killed worker's job and slot are taken over after its lease."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from aiomove.daemon.jobs import JobSpec, JobState
from aiomove.daemon.store import JobStore, open_store
from tests.daemon import store_worker
from tests.peers import stop

pytestmark = pytest.mark.anyio

REPO = Path(__file__).resolve().parents[2]
SLOT_LIMIT = 3
#: Generous bound on any one step, so that a deadlock fails instead of hanging the run.
TIMEOUT = 120


async def submit_many(store: JobStore, n: int) -> set[int]:
    ids = set()
    for i in range(n):
        job, _ = await store.submit(JobSpec("pacs", "STUDY", {"StudyInstanceUID": f"1.{i}"}, i % 3))
        ids.add(job.id)
    return ids


class Worker:
    """One `tests.daemon.store_worker` process."""

    def __init__(self, *argv: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.daemon.store_worker", *argv],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    async def line(self) -> str:
        assert self.proc.stdout is not None
        with anyio.fail_after(TIMEOUT):  # a stuck worker fails the test (and is stopped)
            text: str = await anyio.to_thread.run_sync(
                self.proc.stdout.readline, abandon_on_cancel=True
            )
        if not text:
            assert self.proc.stderr is not None
            errors = await anyio.to_thread.run_sync(self.proc.stderr.read)
            raise RuntimeError(f"store worker ended early:\n{errors[-3000:]}")
        return text.strip()

    async def ready(self) -> None:
        assert await self.line() == "ready"

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    async def result(self) -> Any:
        return json.loads(await self.line())


@contextlib.contextmanager
def workers(*argvs: list[str]) -> Iterator[list[Worker]]:
    started: list[Worker] = []
    try:
        for argv in argvs:
            started.append(Worker(*argv))
        yield started
    finally:
        for w in started:
            stop(w.proc)


async def start_together(procs: list[Worker]) -> None:
    for w in procs:
        await w.ready()
    for w in procs:
        w.go()


def max_overlap(held: list[tuple[float, float, str]]) -> int:
    """The most holdings in progress at one instant (ends sort before starts at a tie)."""
    events = sorted([(start, 1) for start, _, _ in held] + [(end, -1) for _, end, _ in held])
    busiest = current = 0
    for _, step in events:
        current += step
        busiest = max(busiest, current)
    return busiest


async def test_claimers_in_many_tasks_and_stores_never_share_a_job(
    store: JobStore, store_url: str
) -> None:
    ids = await submit_many(store, 150)
    others = [await open_store(store_url) for _ in range(2)]
    claimed: list[int] = []

    async def claimer(s: JobStore, owner: str) -> None:
        while (job := await s.claim(owner, lease=300)) is not None:
            claimed.append(job.id)
            assert await s.finish(job.id, owner, JobState.SUCCEEDED)

    try:
        with anyio.fail_after(TIMEOUT):
            async with anyio.create_task_group() as tg:
                for n, s in enumerate([store, *others]):
                    for i in range(6):
                        tg.start_soon(claimer, s, f"store{n}-task{i}")
    finally:
        for s in others:
            await s.close()
    assert Counter(claimed).most_common(1)[0][1] == 1
    assert set(claimed) == ids
    assert (await store.counts())[JobState.SUCCEEDED] == len(ids)


async def test_claimers_in_many_processes_never_share_a_job(
    store: JobStore, store_url: str
) -> None:
    ids = await submit_many(store, 300)
    with workers(*[["claim", store_url, "3"] for _ in range(3)]) as procs:
        await start_together(procs)
        with anyio.fail_after(TIMEOUT):
            here = await store_worker.claim(store, 3)
        there = [await w.result() for w in procs]
    claimed = [*here, *(job_id for ids_ in there for job_id in ids_)]
    assert Counter(claimed).most_common(1)[0][1] == 1
    assert set(claimed) == ids
    # They really competed: more than one process got jobs.
    assert sum(1 for got in [here, *there] if got) >= 2
    assert (await store.counts())[JobState.SUCCEEDED] == len(ids)


async def test_slot_limit_holds_across_processes(store: JobStore, store_url: str) -> None:
    argv = ["slots", store_url, "4", "6", str(SLOT_LIMIT)]
    with workers(argv, argv) as procs:
        await start_together(procs)
        with anyio.fail_after(TIMEOUT):
            here = await store_worker.slots(store, 4, 6, SLOT_LIMIT)
        there = [await w.result() for w in procs]
    held = [*here, *(tuple(h) for got in there for h in got)]
    assert len(held) == 3 * 4 * 6
    assert len({token for _, _, token in held}) == len(held)
    # Never more than the limit at once, and the limit was reached (there was contention).
    assert max_overlap(held) == SLOT_LIMIT
    assert await store.slots_in_use() == {}


async def test_killed_worker_job_and_slot_are_taken_over(store: JobStore, store_url: str) -> None:
    job, _ = await store.submit(JobSpec("pacs", "STUDY", {"StudyInstanceUID": "1.2"}))
    uids = ["1.2.3.1", "1.2.3.2", "1.2.3.3"]
    with workers(["crash", store_url, "1.5", *uids]) as (doomed,):
        await start_together([doomed])
        beat = await doomed.result()
        assert beat["job"] == job.id
        doomed.proc.kill()
        doomed.proc.wait(30)
    orphan = await store.get(job.id)
    assert orphan is not None
    assert orphan.state is JobState.RUNNING
    assert orphan.lease_expires is not None
    taken = None
    token = None
    with anyio.fail_after(60):
        while taken is None or token is None:
            await anyio.sleep(0.1)
            taken = taken or await store.claim("rescuer", lease=60)
            token = token or await store.acquire_slot("pacs", 1, "rescuer", lease=60)
    assert (taken.id, taken.attempts, taken.lease_owner) == (job.id, 2, "rescuer")
    assert taken.updated_at >= orphan.lease_expires  # only after the lease expired
    # The new worker requests only what the dead one did not receive.
    assert await store.received_uids(job.id) == set(uids)
    assert await store.slots_in_use() == {"pacs": 1}
