"""The HTTP API and /metrics scraped during a run; cancel over HTTP; SIGTERM drains cleanly.

PACS (DCMTK dcmqrscp) serves five studies that complete. LOOP (tests/daemon/qr_peer.py
--cycle) sends its instances over and over until the C-MOVE is cancelled: a job that is
always running, so that cancel and shutdown meet a live C-MOVE.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest
from prometheus_client.parser import text_string_to_metric_families

from aiomove.daemon.jobs import JobState
from aiomove.daemon.store import open_store
from aiomove.daemon.store_engine import sqlite_url
from tests.daemon.daemon_util import (
    HOST,
    DaemonProcess,
    ports,
    qr_peer,
    wait_for,
    write_config,
)
from tests.sampledata import StudyInfo, make_study
from tests.sources import dcmqrscp

pytestmark = pytest.mark.interop

AE = "AIOMOVEH"


def metrics(daemon: DaemonProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = daemon.request("GET", "/metrics").text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def stored_job(url: str, job_id: int) -> Any:
    store = await open_store(url)
    try:
        return await store.get(job_id)
    finally:
        await store.close()


def test_http_metrics_cancel_and_sigterm_drain(tmp_path: Path) -> None:
    studies: list[StudyInfo] = [
        make_study(tmp_path / f"s{i}", patient_id=f"H{i}", n_series=1, n_instances=3, seed=i)
        for i in range(5)
    ]
    loops = [
        make_study(tmp_path / f"loop{i}", patient_id=f"L{i}", n_series=1, n_instances=2, seed=9 + i)
        for i in range(2)
    ]
    storage_port, http_port = ports(2)
    store = sqlite_url(tmp_path / "jobs.db")
    (tmp_path / "src").mkdir()
    with (
        dcmqrscp(
            tmp_path / "src",
            [f for s in studies for f in s.files],
            peers={AE: (HOST, storage_port)},
        ) as pacs,
        qr_peer(
            [f for s in loops for f in s.files],
            {AE: storage_port},
            tmp_path / "stats.json",
            "--cycle",
        ) as loop,
    ):
        config = write_config(
            tmp_path / "aiomove.toml",
            {
                "store": store,
                "output": str(tmp_path / "out"),
                "ae_title": AE,
                "host": HOST,
                "port": storage_port,
                "http_port": http_port,
                "workers": 3,
                "lease": 3.0,
                "poll_interval": 0.2,
                "grace": 1.0,
            },
            {
                "PACS": {"host": HOST, "port": pacs.port, "ae_title": pacs.ae_title},
                "LOOP": {"host": HOST, "port": loop.port, "ae_title": loop.ae_title},
            },
        )
        daemon = DaemonProcess(config, http_port, tmp_path / "daemon.log")
        try:
            daemon.start()
            batch: list[dict[str, Any]] = [
                {"peer": "PACS", "keys": {"StudyInstanceUID": s.study_uid}} for s in studies
            ]
            batch += [
                {"peer": "LOOP", "keys": {"StudyInstanceUID": s.study_uid}, "priority": 9}
                for s in loops
            ]
            answer = daemon.request("POST", "/jobs", json={"jobs": batch})
            assert answer.status_code == 201
            ids = [r["job"]["id"] for r in answer.json()["jobs"]]
            pacs_ids, (endless, cancelled) = ids[:5], ids[5:]

            def state(job_id: int) -> str:
                return str(daemon.request("GET", f"/jobs/{job_id}").json()["state"])

            wait_for(lambda: all(state(i) == "succeeded" for i in pacs_ids), "PACS jobs")

            def streaming(job_id: int) -> Any:
                job = daemon.request("GET", f"/jobs/{job_id}").json()
                return job if job["state"] == "running" and job["progress"]["received"] else None

            job = wait_for(lambda: streaming(endless), "LOOP job progress")
            wait_for(lambda: streaming(cancelled), "second LOOP job progress")
            assert job["lease_owner"].startswith(AE + "@")
            during = metrics(daemon)
            assert during[("aiomove_jobs", (("state", "running"),))] == 2
            assert during[("aiomove_jobs", (("state", "succeeded"),))] == 5
            assert during[("aiomove_instances_received_total", (("peer", "PACS"),))] == 15
            assert during[("aiomove_associations_open", (("peer", "LOOP"),))] == 2
            assert during[("aiomove_workers_busy", ())] == 2
            assert during[("aiomove_jobs_finished_total", (("state", "succeeded"),))] == 5
            listed = daemon.request("GET", "/jobs", params={"state": "running"}).json()["jobs"]
            assert sorted(j["id"] for j in listed) == [endless, cancelled]

            stopped = daemon.request("POST", f"/jobs/{cancelled}/cancel")
            assert stopped.json()["state"] == "cancelled"
            wait_for(lambda: loop.stats()["cancelled"] >= 1, "C-CANCEL at the source")
            wait_for(
                lambda: daemon.request("GET", f"/jobs/{cancelled}").json()["lease_owner"] is None,
                "the cancelled job's lease dropped",
            )
            health = daemon.request("GET", "/health").json()
            assert health["status"] == "ok"
            assert health["running"] == [endless]

            code = daemon.terminate()
            log = daemon.logs()
        except BaseException:
            print(daemon.logs()[-20000:])
            raise
        finally:
            daemon.close()
        stats = loop.stats()
    assert code == 0, log[-5000:]
    assert stats["cancelled"] == 2  # the shutdown left the endless C-MOVE with C-CANCEL too
    assert stats["open"] == 0  # every association released or aborted
    after = anyio.run(stored_job, store, endless)
    assert after.state is JobState.QUEUED  # released, for the next daemon
    assert after.lease_owner is None
    assert after.attempts == 0  # the interrupted attempt does not count
    cancelled_job = anyio.run(stored_job, store, cancelled)
    assert cancelled_job.state is JobState.CANCELLED
    assert '"daemon.stopped"' in log
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    moves = [r for r in lines if r["event"] == "c_move.final"]
    assert moves
    assert all("job_id" in r and "assoc_id" in r for r in moves)  # structured, correlated
    assert '"released": 1' in log
