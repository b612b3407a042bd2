"""A job-store client in its own OS process, for the concurrency tests.

    python -m tests.daemon.store_worker MODE URL ARG...

It opens the store, prints "ready", waits for a line on stdin (so that every process starts
at once), runs MODE and prints one JSON line with its observations:

* claim TASKS: TASKS concurrent claim+finish loops until no job is left; the claimed job ids.
* slots TASKS ROUNDS LIMIT: each task ROUNDS times acquires a slot of peer "pacs", holds it
  briefly and releases it; the (start, end, token) of every holding, by wall clock.
* crash LEASE UID...: claims one job, records receipts for the UIDs and takes the only slot of
  "pacs", then heartbeats forever, printing each new lease expiry (the test kills it).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import time
from typing import Any

from aiomove.daemon.jobs import JobState, Receipt
from aiomove.daemon.store import JobStore, open_store


async def claim(store: JobStore, tasks: int) -> list[int]:
    claimed: list[int] = []

    async def loop(owner: str) -> None:
        while (job := await store.claim(owner, lease=300)) is not None:
            claimed.append(job.id)
            assert await store.finish(job.id, owner, JobState.SUCCEEDED)

    await asyncio.gather(*(loop(f"{os.getpid()}-{i}") for i in range(tasks)))
    return claimed


async def slots(store: JobStore, tasks: int, rounds: int, limit: int) -> list[Any]:
    held: list[tuple[float, float, str]] = []

    async def loop(owner: str) -> None:
        for _ in range(rounds):
            # Polling the database is the point here: there is no event to wait for.
            while (token := await store.acquire_slot("pacs", limit, owner, lease=300)) is None:  # noqa: ASYNC110
                await asyncio.sleep(random.uniform(0.001, 0.005))
            start = time.time()  # after the acquire committed: inside the real holding
            await asyncio.sleep(random.uniform(0.005, 0.02))
            held.append((start, time.time(), token))
            await store.release_slot(token)

    await asyncio.gather(*(loop(f"{os.getpid()}-{i}") for i in range(tasks)))
    return held


async def crash(store: JobStore, lease: float, uids: list[str]) -> None:
    owner = f"doomed-{os.getpid()}"
    job = await store.claim(owner, lease=lease)
    assert job is not None
    await store.add_receipts([Receipt(job.id, uid, "1.2.3", f"/d/{uid}", 1) for uid in uids])
    token = await store.acquire_slot("pacs", 1, owner, lease=lease)
    assert token is not None
    while True:
        assert await store.heartbeat(job.id, owner, lease=lease) is JobState.RUNNING
        assert await store.renew_slot(token, lease=lease)
        now = await store.get(job.id)
        assert now is not None
        assert now.lease_expires is not None
        print(json.dumps({"job": job.id, "lease_expires": now.lease_expires.isoformat()}))
        sys.stdout.flush()
        await asyncio.sleep(lease / 4)


async def main(mode: str, url: str, args: list[str]) -> None:
    store = await open_store(url)
    try:
        print("ready", flush=True)
        sys.stdin.readline()  # the go signal (nothing else runs yet, blocking is fine)
        if mode == "claim":
            result: Any = await claim(store, int(args[0]))
        elif mode == "slots":
            result = await slots(store, int(args[0]), int(args[1]), int(args[2]))
        elif mode == "crash":
            await crash(store, float(args[0]), args[1:])
        else:
            raise SystemExit(f"unknown mode {mode}")
        print(json.dumps(result), flush=True)
    finally:
        await store.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3:]))
