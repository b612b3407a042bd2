"""Retry classification against real sources.

- BUSY (pynetdicom, at most one association): while the test holds one open, the daemon's
  association is rejected-transient (PS3.8: result 2, local limit exceeded); the job goes back
  to the queue with backoff and succeeds once the test lets go.
- STRANGER (DCMTK dcmqrscp that does not know our AE title): C-MOVE answers 0xA801, a
  permanent failure: the job fails after one attempt.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio.from_thread
import pytest
from prometheus_client.parser import text_string_to_metric_families

from aiomove.association import Peer, connect
from aiomove.daemon.schedule import DAYS
from aiomove.daemon.store_engine import sqlite_url
from tests.daemon.daemon_util import (
    HOST,
    DaemonProcess,
    ports,
    qr_peer,
    wait_for,
    write_config,
)
from tests.sampledata import make_study
from tests.sources import dcmqrscp

pytestmark = pytest.mark.interop

AE = "AIOMOVER"


def samples(daemon: DaemonProcess, name: str) -> list[Any]:
    text = daemon.request("GET", "/metrics").text
    return [s for f in text_string_to_metric_families(text) for s in f.samples if s.name == name]


def test_transient_rejection_is_retried_and_0xa801_fails_permanently(tmp_path: Path) -> None:
    busy_study = make_study(tmp_path / "busy", patient_id="BUSY", n_series=1, n_instances=2)
    other = make_study(tmp_path / "other", patient_id="OTHER", n_series=1, n_instances=2, seed=1)
    storage_port, http_port = ports(2)
    (tmp_path / "src").mkdir()
    with (
        qr_peer(
            list(busy_study.files),
            {AE: storage_port},
            tmp_path / "stats.json",
            # One: the daemon's C-FIND association may still be closing at the peer when its
            # C-MOVE association arrives; the worker retries that rejection within the attempt.
            "--max-associations",
            "1",
        ) as busy,
        dcmqrscp(tmp_path / "src", other.files, peers={}) as stranger,
    ):
        config = write_config(
            tmp_path / "aiomove.toml",
            {
                "store": sqlite_url(tmp_path / "jobs.db"),
                "output": str(tmp_path / "out"),
                "ae_title": AE,
                "host": HOST,
                "port": storage_port,
                "http_port": http_port,
                "workers": 2,
                "lease": 5.0,
                "poll_interval": 0.2,
                "max_attempts": 20,
            },
            {
                "BUSY": {"host": HOST, "port": busy.port, "ae_title": busy.ae_title},
                "STRANGER": {"host": HOST, "port": stranger.port, "ae_title": "DCMQRSCP"},
                # a window on the day after tomorrow: closed now, so never claimed here
                "LATER": {
                    "host": HOST,
                    "port": stranger.port,
                    "ae_title": "DCMQRSCP",
                    "schedule": [DAYS[(datetime.now(UTC).weekday() + 2) % 7]],
                },
            },
            base=0.3,
            factor=1.5,
            max_delay=1.0,
        )
        daemon = DaemonProcess(config, http_port, tmp_path / "daemon.log")
        try:
            with anyio.from_thread.start_blocking_portal() as portal:
                holder = connect(Peer(HOST, busy.port, busy.ae_title), ae_title="HOLDER")
                with portal.wrap_async_context_manager(holder):
                    daemon.start()
                    jobs = [
                        {"peer": "BUSY", "keys": {"StudyInstanceUID": busy_study.study_uid}},
                        {"peer": "STRANGER", "keys": {"StudyInstanceUID": other.study_uid}},
                        {"peer": "LATER", "keys": {"StudyInstanceUID": other.study_uid}},
                    ]
                    answer = daemon.request("POST", "/jobs", json={"jobs": jobs})
                    busy_id, stranger_id, later_id = (r["job"]["id"] for r in answer.json()["jobs"])

                    def rejected() -> Any:
                        job = daemon.request("GET", f"/jobs/{busy_id}").json()
                        return job if job["attempts"] >= 2 and job["error"] else None

                    job = wait_for(rejected, "a transient rejection and a retry")
                    assert job["error_kind"] == "transient"
                    assert "rejected (transient" in job["error"]
                    assert job["state"] in ("queued", "running")
                # released: the next attempt gets through
            wait_for(
                lambda: daemon.request("GET", f"/jobs/{busy_id}").json()["state"] == "succeeded",
                "the busy job to succeed",
            )

            def stranger_failed() -> Any:
                job = daemon.request("GET", f"/jobs/{stranger_id}").json()
                return job if job["state"] == "failed" else None

            failed = wait_for(stranger_failed, "the 0xA801 job to fail")
            errors = {
                (s.labels["peer"], s.labels["status"], s.labels["kind"]): s.value
                for s in samples(daemon, "aiomove_errors_total")
            }
            retries = {s.labels["peer"]: s.value for s in samples(daemon, "aiomove_retries_total")}
            later = daemon.request("GET", f"/jobs/{later_id}").json()
        except BaseException:
            print(daemon.logs()[-20000:])
            raise
        finally:
            daemon.close()
    assert failed["attempts"] == 1  # permanent: not retried
    assert failed["error_kind"] == "permanent"
    assert "0xA801" in failed["error"]
    assert errors[("STRANGER", "0xA801", "permanent")] == 1
    assert errors[("BUSY", "rejected_transient", "transient")] >= 1
    assert retries["BUSY"] >= 1
    assert "STRANGER" not in retries
    assert busy.stats()["sent"] == dict.fromkeys(busy_study.instance_uids, 1)
    assert (later["state"], later["attempts"]) == ("queued", 0)  # outside its window
