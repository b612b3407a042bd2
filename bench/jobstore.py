"""Job store benchmark: claim latency and throughput with concurrent workers (issue 6).

    .venv/bin/python bench/jobstore.py [--jobs 100000] [--quick] [--workers 8] [--processes 1]
                                       [--backends sqlite,postgresql]

For each back end: a fresh database (a SQLite file in a temporary directory; a database in a
throwaway PostgreSQL cluster started here with initdb/pg_ctl, see tests/daemon/postgres.py) is
filled with N queued jobs (bulk INSERT, timed apart), then `--workers` workers claim and finish
jobs (claim + finish(SUCCEEDED), nothing else) until none is left. Workers are asyncio tasks
sharing one JobStore, or spread over `--processes` OS processes with a JobStore each (like that
many daemons). Prints claim latency percentiles and jobs/s; checks that every job was claimed
exactly once and ended SUCCEEDED.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # tests/ (the throwaway PostgreSQL cluster)

from tests.daemon.postgres import running_cluster  # noqa: E402

from aiomove.daemon.jobs import JobSpec, JobState  # noqa: E402
from aiomove.daemon.schema import jobs  # noqa: E402
from aiomove.daemon.store import JobStore, open_store  # noqa: E402
from aiomove.daemon.store_engine import sqlite_url  # noqa: E402

FILL_BATCH = 5000
LEASE = 600.0


async def fill(store: JobStore, n: int) -> float:
    """Insert n queued jobs (priorities 0-3) in bulk; seconds taken."""
    start = time.perf_counter()
    now = datetime.now(UTC)
    for first in range(0, n, FILL_BATCH):
        rows = []
        for i in range(first, min(n, first + FILL_BATCH)):
            spec = JobSpec("pacs", "STUDY", {"StudyInstanceUID": f"1.2.826.0.1.{i}"}, i % 4)
            rows.append(
                {
                    "peer": spec.peer,
                    "level": spec.level,
                    "keys": json.dumps(dict(spec.keys)),
                    "dedup_key": spec.dedup_key(),
                    "priority": spec.priority,
                    "state": JobState.QUEUED.value,
                    "attempts": 0,
                    "max_attempts": 5,
                    "created_at": now,
                    "updated_at": now,
                }
            )
        async with store.engine.begin() as conn:
            await conn.execute(jobs.insert(), rows)
    return time.perf_counter() - start


async def work(store: JobStore, workers: int, tag: str) -> dict[str, Any]:
    """Run `workers` claim+finish loops until the queue is empty."""
    claims: list[float] = []
    finishes: list[float] = []
    claimed: list[int] = []

    async def worker(owner: str) -> None:
        while True:
            t0 = time.perf_counter()
            job = await store.claim(owner, lease=LEASE)
            t1 = time.perf_counter()
            claims.append(t1 - t0)
            if job is None:
                return
            claimed.append(job.id)
            if not await store.finish(job.id, owner, JobState.SUCCEEDED):
                raise RuntimeError(f"finish failed for job {job.id}")
            finishes.append(time.perf_counter() - t1)

    await asyncio.gather(*(worker(f"{tag}-{i}") for i in range(workers)))
    return {"claims": claims, "finishes": finishes, "claimed": claimed}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def child(url: str, workers: int) -> None:
    """One process of `--processes`: wait for "go", work, print the observations."""
    store = await open_store(url, pool_size=workers + 2)
    try:
        print("ready", flush=True)
        sys.stdin.readline()
        result = await work(store, workers, f"p{os.getpid()}")
        print(json.dumps(result), flush=True)
    finally:
        await store.close()


def run_processes(url: str, workers: int, processes: int) -> tuple[dict[str, Any], float]:
    """The merged observations of the processes, and seconds from "go" to the last result."""
    share = [workers // processes + (1 if i < workers % processes else 0) for i in range(processes)]
    merged: dict[str, Any] = {"claims": [], "finishes": [], "claimed": []}
    with ExitStack() as stack:
        procs = []
        for n in share:
            proc = subprocess.Popen(
                [sys.executable, __file__, "--child", url, "--workers", str(n)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            stack.callback(proc.wait, 60)
            stack.callback(proc.kill)
            procs.append(proc)
        for proc in procs:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"
        start = time.perf_counter()
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        for proc in procs:
            assert proc.stdout is not None
            result = json.loads(proc.stdout.readline())
            for key in merged:
                merged[key] += result[key]
        wall = time.perf_counter() - start
    return merged, wall


async def bench_one(url: str, args: argparse.Namespace) -> dict[str, Any]:
    store = await open_store(url, pool_size=args.workers + 2)
    try:
        fill_s = await fill(store, args.jobs)
        if args.processes > 1:
            result, wall = await asyncio.to_thread(run_processes, url, args.workers, args.processes)
        else:
            start = time.perf_counter()
            result = await work(store, args.workers, "w")
            wall = time.perf_counter() - start
        counts = await store.counts()
    finally:
        await store.close()
    claimed = result["claimed"]
    if len(claimed) != args.jobs or Counter(claimed).most_common(1)[0][1] != 1:
        raise RuntimeError(f"{len(claimed)} claims for {args.jobs} jobs, or a job claimed twice")
    if counts[JobState.SUCCEEDED] != args.jobs:
        raise RuntimeError(f"not every job succeeded: {counts}")
    claims = result["claims"]
    return {
        "fill_s": fill_s,
        "wall_s": wall,
        "jobs_per_s": args.jobs / wall,
        "claim_p50_ms": pct(claims, 0.50),
        "claim_p95_ms": pct(claims, 0.95),
        "claim_p99_ms": pct(claims, 0.99),
        "claim_max_ms": max(claims) * 1000,
        "finish_p50_ms": statistics.median(result["finishes"]) * 1000,
    }


def render(rows: dict[str, dict[str, Any]], args: argparse.Namespace) -> str:
    where = f"{args.processes} processes" if args.processes > 1 else "1 process"
    lines = [
        f"Job store: {args.jobs} queued jobs, {args.workers} workers ({where}), claim + finish",
        "",
        "| back end | jobs/s | claim p50 | p95 | p99 | max | finish p50 | wall | fill |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        lines.append(
            f"| {name} | {r['jobs_per_s']:.0f} | {r['claim_p50_ms']:.2f} ms "
            f"| {r['claim_p95_ms']:.2f} ms | {r['claim_p99_ms']:.2f} ms "
            f"| {r['claim_max_ms']:.1f} ms | {r['finish_p50_ms']:.2f} ms "
            f"| {r['wall_s']:.1f} s | {r['fill_s']:.1f} s |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="5000 jobs")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--processes", type=int, default=1, help="spread workers over processes")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--child", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        asyncio.run(child(args.child, args.workers))
        return
    if args.quick:
        args.jobs = 5000
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    rows: dict[str, dict[str, Any]] = {}
    with ExitStack() as stack:
        for backend in backends:
            if backend == "sqlite":
                tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="aiomove-bench-"))
                url = sqlite_url(Path(tmp) / "jobs.db")
            elif backend == "postgresql":
                cluster = stack.enter_context(running_cluster())
                url = stack.enter_context(cluster.database())
            else:
                raise SystemExit(f"unknown back end {backend!r}")
            print(f"{backend}: {args.jobs} jobs ...", file=sys.stderr, flush=True)
            rows[backend] = asyncio.run(bench_one(url, args))
    print(render(rows, args))


if __name__ == "__main__":
    main()
