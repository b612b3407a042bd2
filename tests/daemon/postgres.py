"""A throwaway PostgreSQL cluster for tests and benchmarks (initdb + pg_ctl, loopback, free port).

The server runs as the non-root `postgres` system user when we are root (PostgreSQL refuses to
run as root), in a temporary directory that holds the data, the log and the unix socket, with
trust authentication and fsync off (nothing here needs to survive a crash). Fixtures:

* `postgres_cluster` (session): the running `PostgresCluster`.
* `postgres_url` (session): `postgresql+asyncpg://postgres@127.0.0.1:PORT/postgres`, shared by
  every test of the run; use `fresh_postgres_url` (or `store_url` in conftest.py) for a database
  of your own.
* `fresh_postgres_url` (function): a new, empty database, dropped after the test.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.peers import free_port


def pg_bin() -> Path:
    """The newest installed PostgreSQL's bin directory (Debian layout)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: p.parts[-3])
    if not found:
        raise RuntimeError("PostgreSQL is not installed (`make peers` installs it)")
    return found[-1].parent


def _as_postgres() -> list[str]:
    """Command prefix running a program as the `postgres` user when we are root."""
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


class PostgresCluster:
    """One PostgreSQL server in its own temporary directory."""

    def __init__(self) -> None:
        self.bin = pg_bin()
        self.root = Path(tempfile.mkdtemp(prefix="aiomove-pg-"))
        self.data = self.root / "data"
        self.port = 0
        self.running = False
        if os.geteuid() == 0:
            shutil.chown(self.root, user="postgres", group="postgres")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *argv: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*_as_postgres(), *argv], capture_output=True, text=True, timeout=timeout, check=True
        )

    def start(self) -> None:
        self._run(
            str(self.bin / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
        )
        for _ in range(3):  # another process may take the free port before the server binds it
            self.port = free_port()
            options = (
                f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
            )
            try:
                self._run(
                    str(self.bin / "pg_ctl"),
                    "-D",
                    str(self.data),
                    "-l",
                    str(self.root / "server.log"),
                    "-o",
                    options,
                    "-w",
                    "-t",
                    "120",
                    "start",
                )
            except subprocess.CalledProcessError:
                continue
            self.running = True
            return
        log = (self.root / "server.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"PostgreSQL did not start:\n{log}")

    def stop(self) -> None:
        if self.running:
            with contextlib.suppress(subprocess.SubprocessError):
                self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
            self.running = False
        shutil.rmtree(self.root, ignore_errors=True)

    def psql(self, sql: str) -> str:
        """Run one SQL command in the `postgres` database; its output."""
        where = ["-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", "postgres"]
        quiet = ["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"]
        done = subprocess.run(
            [str(self.bin / "psql"), *where, *quiet, "-c", sql],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        return done.stdout

    @contextlib.contextmanager
    def database(self) -> Iterator[str]:
        """A new empty database for the duration of the block; its URL."""
        name = f"t_{uuid.uuid4().hex[:16]}"
        self.psql(f'CREATE DATABASE "{name}"')
        try:
            yield self.url(name)
        finally:
            self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def running_cluster() -> Iterator[PostgresCluster]:
    """Start a cluster for the duration of the block (always stopped and removed)."""
    cluster = PostgresCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    with running_cluster() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def postgres_url(postgres_cluster: PostgresCluster) -> str:
    return postgres_cluster.url()


@pytest.fixture
def fresh_postgres_url(postgres_cluster: PostgresCluster) -> Iterator[str]:
    with postgres_cluster.database() as url:
        yield url
