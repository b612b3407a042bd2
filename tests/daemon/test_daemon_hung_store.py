"""SIGTERM while the job store hangs: the drain gives up on the store after `store_timeout`.

A PostgreSQL session holds ACCESS EXCLUSIVE locks on the daemon's tables (a database that
accepts connections but never answers), while LOOP (tests/daemon/qr_peer.py --cycle) keeps
a job's C-MOVE running. On SIGTERM the job is stopped (C-CANCEL) and the daemon's store
writes (the job's outcome, the release of its leases, closing the store) each wait at most
`store_timeout` [job.store_timeout]: the daemon exits instead of waiting for the lock.
"""

from __future__ import annotations

from pathlib import Path

import anyio.from_thread
import asyncpg  # type: ignore[import-untyped]
import pytest

from tests.daemon.daemon_util import HOST, daemon_process, ports, qr_peer, wait_for, write_config
from tests.sampledata import make_study

pytestmark = pytest.mark.interop

AE = "AIOMOVET"
LOCK = "BEGIN; LOCK TABLE jobs, receipts, slots IN ACCESS EXCLUSIVE MODE"


def test_sigterm_drain_is_bounded_when_the_store_hangs(
    tmp_path: Path, fresh_postgres_url: str
) -> None:
    loop = make_study(tmp_path / "loop", patient_id="HUNG", n_series=1, n_instances=2, seed=5)
    storage_port, http_port = ports(2)
    with qr_peer(list(loop.files), {AE: storage_port}, tmp_path / "stats.json", "--cycle") as peer:
        config = write_config(
            tmp_path / "aiomove.toml",
            {
                "store": fresh_postgres_url,
                "output": str(tmp_path / "out"),
                "ae_title": AE,
                "host": HOST,
                "port": storage_port,
                "http_port": http_port,
                "workers": 1,
                "lease": 3.0,
                "poll_interval": 0.2,
                "grace": 0.5,
                "store_timeout": 2.0,
            },
            {"LOOP": {"host": HOST, "port": peer.port, "ae_title": peer.ae_title}},
        )
        with (
            daemon_process(config, http_port, tmp_path / "daemon.log") as daemon,
            anyio.from_thread.start_blocking_portal("asyncio") as portal,
        ):
            dsn = fresh_postgres_url.replace("+asyncpg", "")
            locker = portal.call(asyncpg.connect, dsn)
            try:
                job = {"peer": "LOOP", "keys": {"StudyInstanceUID": loop.study_uid}}
                assert daemon.request("POST", "/jobs", json=job).status_code == 201
                wait_for(lambda: sum(peer.stats()["sent"].values()) >= 4, "a running C-MOVE")
                portal.call(locker.execute, LOCK)
                assert daemon.terminate(within=120) == 0  # without the bound: never returns
                log = daemon.logs()
                assert '"job.store_timeout"' in log
                assert '"daemon.stopped"' in log
                assert peer.stats()["cancelled"] >= 1
            except BaseException:
                print(daemon.logs()[-20000:])
                raise
            finally:
                portal.call(locker.close)
