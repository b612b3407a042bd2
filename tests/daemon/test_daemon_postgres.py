"""PostgreSQL job store: three daemon processes share the database and a per-PACS limit of 2.

The source (tests/daemon/qr_peer.py, pynetdicom) counts the associations open at once and
every instance it sends. One daemon is SIGKILLed while it holds jobs: the others take them
over once the lease expires. Observed: the limit is never exceeded (and is reached), every
job completes, and only the killed daemon's in-flight instances are ever sent twice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from aiomove.daemon.jobs import Job, JobState
from aiomove.daemon.store import open_store
from tests.daemon.daemon_util import (
    HOST,
    DaemonProcess,
    output_files,
    ports,
    qr_peer,
    wait_for,
    write_config,
)
from tests.sampledata import StudyInfo, make_study

pytestmark = pytest.mark.interop

STUDIES = 16
LIMIT = 2
LEASE = 3.0


@pytest.fixture(scope="module")
def studies(tmp_path_factory: pytest.TempPathFactory) -> list[StudyInfo]:
    root = tmp_path_factory.mktemp("pgstudies")
    return [
        make_study(root / f"s{i}", patient_id=f"Q{i:02d}", n_series=2, n_instances=3, seed=i)
        for i in range(STUDIES)
    ]


async def running_jobs(url: str) -> list[Job]:
    store = await open_store(url)
    try:
        return await store.list(state=JobState.RUNNING, limit=1000)
    finally:
        await store.close()


def test_three_daemons_share_the_limit_and_take_over_a_killed_one(
    tmp_path: Path, fresh_postgres_url: str, studies: list[StudyInfo]
) -> None:
    chosen = ports(6)
    storage, http = chosen[:3], chosen[3:]
    titles = [f"AIOMOVE{i}" for i in range(3)]
    files = [f for s in studies for f in s.files]
    out = tmp_path / "out"  # one output directory, as on a shared file system
    with qr_peer(files, dict(zip(titles, storage, strict=True)), tmp_path / "stats.json") as src:
        daemons = []
        for i, title in enumerate(titles):
            config = write_config(
                tmp_path / f"d{i}.toml",
                {
                    "store": fresh_postgres_url,
                    "output": str(out),
                    "ae_title": title,
                    "host": HOST,
                    "port": storage[i],
                    "http_port": http[i],
                    "workers": 2,
                    "lease": LEASE,
                    "poll_interval": 0.2,
                    "linger": 2.0,
                },
                {
                    "PACS": {
                        "host": HOST,
                        "port": src.port,
                        "ae_title": src.ae_title,
                        "max_associations": LIMIT,
                    }
                },
                base=0.2,
                max_delay=1.0,
            )
            daemons.append(DaemonProcess(config, http[i], tmp_path / f"d{i}.log"))
        try:
            for daemon in daemons:
                daemon.start()
            batch = [{"peer": "PACS", "keys": {"StudyInstanceUID": s.study_uid}} for s in studies]
            answer = daemons[1].request("POST", "/jobs", json={"jobs": batch})
            assert answer.status_code == 201, answer.text

            def succeeded() -> list[dict[str, Any]]:
                jobs = daemons[1].request("GET", "/jobs?limit=1000").json()["jobs"]
                return [j for j in jobs if j["state"] == "succeeded"]

            wait_for(lambda: len(succeeded()) >= 3, "3 jobs done")
            victim = daemons[0]
            owner = f"{titles[0]}@"
            victim.kill()
            held = [
                j.id
                for j in anyio.run(running_jobs, fresh_postgres_url)
                if (j.lease_owner or "").startswith(owner)
            ]
            assert held, "the killed daemon held no job"
            wait_for(lambda: len(succeeded()) == STUDIES, "every job", within=150)
            final = {j["id"]: j for j in succeeded()}
        except BaseException:
            for daemon in daemons:
                print(f"--- {daemon.log}\n{daemon.logs()[-8000:]}")
            raise
        finally:
            for daemon in daemons:
                daemon.close()
        stats = src.stats()
    assert stats["peak"] == LIMIT, stats["peak"]  # reached, never exceeded
    by_study = {s.study_uid: set(s.instance_uids) for s in studies}
    taken_over: set[str] = set()
    for job_id in held:
        assert final[job_id]["attempts"] >= 2  # claimed again after the lease expired
        taken_over |= by_study[final[job_id]["keys"]["StudyInstanceUID"]]
    expected = {uid for uids in by_study.values() for uid in uids}
    assert set(stats["sent"]) == expected
    twice = {uid for uid, n in stats["sent"].items() if n > 1}
    assert twice <= taken_over  # nothing else was retrieved twice
    on_disk = output_files(out)
    assert set(on_disk) == expected
    assert all(len(paths) == 1 for paths in on_disk.values())
