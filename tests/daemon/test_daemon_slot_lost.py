"""A job whose slot of the per-PACS limit is taken over stops (C-CANCEL) and is rescheduled.

LOOP (tests/daemon/qr_peer.py --cycle) sends its instances until the C-MOVE is cancelled, so
the job holds its slot (max_associations = 1) for as long as the test wants. The test then
gives that slot to another owner in the shared store, as a daemon would after the job's slot
lease expired: the job's next heartbeat cannot renew it, logs `slot.lost`, cancels the C-MOVE
and reschedules the job (a transient failure) instead of exceeding the limit.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from aiomove.daemon.store_engine import sqlite_url
from tests.daemon.daemon_util import HOST, daemon_process, ports, qr_peer, wait_for, write_config
from tests.sampledata import make_study

pytestmark = pytest.mark.interop

AE = "AIOMOVES"


def steal_slot(db: Path, peer: str) -> int:
    """Hand `peer`'s held slots to another owner (a new token: the old one cannot renew)."""
    with sqlite3.connect(db, timeout=30) as conn:
        cursor = conn.execute(
            "UPDATE slots SET token = 'thief' || slot_index, owner = 'thief'"
            " WHERE peer = ? AND token IS NOT NULL",
            (peer,),
        )
        return cursor.rowcount


def test_a_lost_slot_stops_and_reschedules_the_job(tmp_path: Path) -> None:
    loop = make_study(tmp_path / "loop", patient_id="LOST", n_series=1, n_instances=2, seed=3)
    storage_port, http_port = ports(2)
    db = tmp_path / "jobs.db"
    with qr_peer(list(loop.files), {AE: storage_port}, tmp_path / "stats.json", "--cycle") as peer:
        config = write_config(
            tmp_path / "aiomove.toml",
            {
                "store": sqlite_url(db),
                "output": str(tmp_path / "out"),
                "ae_title": AE,
                "host": HOST,
                "port": storage_port,
                "http_port": http_port,
                "workers": 1,
                "lease": 3.0,
                "poll_interval": 0.2,
                "grace": 1.0,
            },
            {
                "LOOP": {
                    "host": HOST,
                    "port": peer.port,
                    "ae_title": peer.ae_title,
                    "max_associations": 1,
                }
            },
            base=600.0,  # the rescheduled job stays queued while the test looks
        )
        with daemon_process(config, http_port, tmp_path / "daemon.log") as daemon:
            try:
                job = {"peer": "LOOP", "keys": {"StudyInstanceUID": loop.study_uid}}
                answer = daemon.request("POST", "/jobs", json=job)
                assert answer.status_code == 201
                job_id = answer.json()["job"]["id"]
                wait_for(lambda: sum(peer.stats()["sent"].values()) >= 4, "a running C-MOVE")
                assert steal_slot(db, "LOOP") == 1
                final = wait_for(
                    lambda: (
                        (j := daemon.request("GET", f"/jobs/{job_id}").json())["state"] == "queued"
                        and j
                    ),
                    "the job back in the queue",
                )
                assert "slot" in final["error"]
                assert final["attempts"] == 1
                wait_for(lambda: peer.stats()["cancelled"] >= 1, "the C-MOVE cancelled")
                assert '"slot.lost"' in daemon.logs()
                assert peer.stats()["peak"] == 1
            except BaseException:
                print(daemon.logs()[-20000:])
                raise
