"""SQLite job store: 50 study jobs, the daemon SIGKILLed mid-run and restarted.

Against DCMTK dcmqrscp and Orthanc: every job completes, every instance is present exactly
once in the output directory, and the receipts match the files (path, size, SOP Instance UID).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from typer.testing import CliRunner

from aiomove.cli_daemon import jobs_app
from aiomove.daemon.jobs import JobState
from aiomove.daemon.store import open_store
from aiomove.daemon.store_engine import sqlite_url
from tests.daemon.daemon_util import (
    HOST,
    DaemonProcess,
    output_files,
    ports,
    wait_for,
    write_config,
)
from tests.sampledata import StudyInfo, make_study
from tests.sources import dcmqrscp, orthanc

pytestmark = pytest.mark.interop

AE = "AIOMOVED"
STUDIES = 50


@pytest.fixture(scope="module")
def studies(tmp_path_factory: pytest.TempPathFactory) -> list[StudyInfo]:
    root = tmp_path_factory.mktemp("studies")
    return [
        make_study(root / f"s{i}", patient_id=f"P{i:02d}", n_series=2, n_instances=2, seed=i)
        for i in range(STUDIES)
    ]


async def job_states(url: str) -> dict[JobState, int]:
    store = await open_store(url)
    try:
        return await store.counts()
    finally:
        await store.close()


def jobs_by_state(daemon: DaemonProcess) -> dict[str, list[dict[str, Any]]]:
    jobs = daemon.request("GET", "/jobs?limit=1000").json()["jobs"]
    states: dict[str, list[dict[str, Any]]] = {}
    for job in jobs:
        states.setdefault(job["state"], []).append(job)
    return states


@pytest.mark.parametrize("kind", ["dcmqrscp", "orthanc"])
def test_sigkill_mid_run_and_restart_completes_every_job_once(
    kind: str, tmp_path: Path, studies: list[StudyInfo]
) -> None:
    storage_port, http_port = ports(2)
    files = [f for s in studies for f in s.files]
    factory: Any = {"dcmqrscp": dcmqrscp, "orthanc": orthanc}[kind]
    (tmp_path / "src").mkdir()
    out = tmp_path / "out"
    with factory(tmp_path / "src", files, peers={AE: (HOST, storage_port)}) as source:
        config = write_config(
            tmp_path / "aiomove.toml",
            {
                "store": sqlite_url(tmp_path / "jobs.db"),
                "output": str(out),
                "ae_title": AE,
                "host": HOST,
                "port": storage_port,
                "http_port": http_port,
                "workers": 3,
                "worker_id": "crash-test",
                "lease": 3.0,
                "poll_interval": 0.2,
                "linger": 2.0,
            },
            {
                "PACS": {
                    "host": HOST,
                    "port": source.port,
                    "ae_title": source.ae_title,
                    "max_associations": 3,
                }
            },
            base=0.2,
            max_delay=1.0,
        )
        keys = tmp_path / "studies.csv"
        keys.write_text("StudyInstanceUID\n" + "\n".join(s.study_uid for s in studies) + "\n")
        submitted = CliRunner().invoke(
            jobs_app, ["submit", "--config", str(config), "--peer", "PACS", "--input", str(keys)]
        )
        assert submitted.exit_code == 0, submitted.output
        daemon = DaemonProcess(config, http_port, tmp_path / "daemon.log")
        try:
            daemon.start()
            wait_for(lambda: len(jobs_by_state(daemon).get("succeeded", [])) >= 5, "5 jobs")
            daemon.kill()
            at_kill = anyio.run(job_states, sqlite_url(tmp_path / "jobs.db"))
            assert at_kill.get(JobState.RUNNING, 0) >= 1, at_kill  # killed mid-job
            assert at_kill.get(JobState.SUCCEEDED, 0) < STUDIES
            # Restarted: the same owner name takes its leased jobs back at once.
            daemon.start()
            wait_for(
                lambda: len(jobs_by_state(daemon).get("succeeded", [])) == STUDIES,
                "every job succeeded",
                within=120,
            )
            states = jobs_by_state(daemon)
            log = daemon.logs()
            receipts = {
                job["id"]: daemon.request("GET", f"/jobs/{job['id']}/receipts").json()["receipts"]
                for job in states["succeeded"]
            }
        except BaseException:
            print(daemon.logs()[-20000:])
            raise
        finally:
            daemon.close()
    on_disk = output_files(out)
    expected = {uid for s in studies for uid in s.instance_uids}
    assert set(on_disk) == expected
    assert all(len(paths) == 1 for paths in on_disk.values())
    recorded = [r for rows in receipts.values() for r in rows]
    assert sorted(r["sop_instance_uid"] for r in recorded) == sorted(expected)
    for row in recorded:
        path = Path(row["path"])
        assert on_disk[row["sop_instance_uid"]] == [path]
        assert path.stat().st_size == row["size"]
    # Each job's receipts are its own study's instances.
    by_study = {s.study_uid: set(s.instance_uids) for s in studies}
    for job in states["succeeded"]:
        uids = {r["sop_instance_uid"] for r in receipts[job["id"]]}
        assert uids == by_study[job["keys"]["StudyInstanceUID"]]
        assert job["progress"]["received"] == len(uids)
    assert not list(out.glob(".aiomove-staging-*"))  # the killed run's staging was removed
    assert '"daemon.recovered"' in log
