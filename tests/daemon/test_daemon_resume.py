"""A job taken over part-way asks only for what is missing (receipts whose files exist).

The job's earlier attempt (a worker "ghost" that went away) left three receipts: two with their
files in place, one whose file is gone. The daemon must request exactly the four other
instances (IMAGE-level C-MOVE), which the source (tests/daemon/qr_peer.py) counts.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import anyio
import pytest

from aiomove.daemon.jobs import Receipt
from aiomove.daemon.specs import make_spec
from aiomove.daemon.store import open_store
from aiomove.daemon.store_engine import sqlite_url
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

AE = "AIOMOVEP"


def layout_path(out: Path, study: StudyInfo, series: str, sop: str) -> Path:
    return out / "PART" / study.study_uid / series / f"{sop}.dcm"


async def interrupted_attempt(url: str, study: StudyInfo, out: Path) -> int:
    """Submit the job, claim it as "ghost", record three receipts, release it."""
    store = await open_store(url)
    try:
        spec = make_spec("PACS", "STUDY", {"StudyInstanceUID": study.study_uid})
        job, _ = await store.submit(spec)
        claimed = await store.claim("ghost", lease=60)
        assert claimed is not None
        assert claimed.id == job.id
        receipts = []
        for n, series in enumerate(study.series_uids[:1]):
            for i, sop in enumerate(study.sop_instance_uids[series]):
                path = layout_path(out, study, series, sop)
                if n == 0 and i < 2:  # two complete files; the third receipt's file is gone
                    path.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(study.paths[sop], path)
                receipts.append(Receipt(job.id, sop, "1.2.840.10008.5.1.4.1.1.2", str(path), 1))
        await store.add_receipts(receipts)
        assert await store.release("ghost") == 1
        return job.id
    finally:
        await store.close()


def test_a_resumed_job_requests_only_missing_instances(tmp_path: Path) -> None:
    study = make_study(tmp_path / "study", patient_id="PART", n_series=2, n_instances=3)
    out = tmp_path / "out"
    url = sqlite_url(tmp_path / "jobs.db")
    job_id = anyio.run(interrupted_attempt, url, study, out)
    storage_port, http_port = ports(2)
    with qr_peer(list(study.files), {AE: storage_port}, tmp_path / "stats.json") as src:
        config = write_config(
            tmp_path / "aiomove.toml",
            {
                "store": url,
                "output": str(out),
                "ae_title": AE,
                "host": HOST,
                "port": storage_port,
                "http_port": http_port,
                "workers": 1,
                "poll_interval": 0.2,
            },
            {"PACS": {"host": HOST, "port": src.port, "ae_title": src.ae_title}},
        )
        daemon = DaemonProcess(config, http_port, tmp_path / "daemon.log")
        try:
            daemon.start()
            job = wait_for(
                lambda: (
                    (j := daemon.request("GET", f"/jobs/{job_id}").json())["state"] == "succeeded"
                    and j
                ),
                "the job to succeed",
            )
        except BaseException:
            print(daemon.logs()[-20000:])
            raise
        finally:
            daemon.close()
        stats = src.stats()
    kept = set(study.sop_instance_uids[study.series_uids[0]][:2])
    missing = set(study.instance_uids) - kept
    assert stats["sent"] == dict.fromkeys(missing, 1)
    assert stats["moves"] == 2  # one IMAGE-level C-MOVE per series with missing instances
    assert job["progress"]["received"] == 6
    on_disk = output_files(out)
    assert set(on_disk) == set(study.instance_uids)
