"""Daemon test fixtures: asyncio only, PostgreSQL clusters, and the job store on both back ends.

* `store_url`: parametrised over "sqlite" (a file in tmp_path) and "postgresql" (a fresh
  database in the session's throwaway cluster, started only when a PostgreSQL test runs).
* `store`: an open JobStore at `store_url` (closed after the test).
* from tests/daemon/postgres.py: `postgres_cluster`, `postgres_url` (session-wide, shared
  database), `fresh_postgres_url` (an empty database per test).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from aiomove.daemon.store import JobStore, open_store
from aiomove.daemon.store_engine import sqlite_url
from tests.daemon.postgres import (  # noqa: F401 (fixtures, registered by import)
    PostgresCluster,
    fresh_postgres_url,
    postgres_cluster,
    postgres_url,
)


@pytest.fixture
def anyio_backend() -> str:
    """The daemon is asyncio-only (SQLAlchemy's async engine)."""
    return "asyncio"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    if request.param == "sqlite":
        yield sqlite_url(tmp_path / "jobs.db")
        return
    cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
    with cluster.database() as url:
        yield url


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[JobStore]:
    opened = await open_store(store_url)
    try:
        yield opened
    finally:
        await opened.close()
