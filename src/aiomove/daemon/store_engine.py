"""Engines for the job store: SQLite (WAL, serialised writers) or PostgreSQL, and migrations.

The store's operations are sequences of single statements, each atomic on its own (see
store.py), so they run in autocommit mode (`autocommit()`): no BEGIN/COMMIT round trips.
SQLite: every connection runs in WAL mode with a busy timeout, and SQLAlchemy, not the sqlite3
driver, decides about BEGIN: none in autocommit mode (an INSERT/UPDATE statement takes the write
lock when it starts, waiting up to the busy timeout), `BEGIN IMMEDIATE` for the migration
transaction (`writer()`), so it never has to upgrade a read lock to a write lock, the cause of
immediate "database is locked" errors between processes. PostgreSQL: asyncpg; migrations take
an advisory lock so daemons started together migrate one after the other.
"""

from __future__ import annotations

import asyncio
import os
import weakref
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, event, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

#: Execution option marking a write transaction (SQLite: BEGIN IMMEDIATE).
WRITE_OPTION = "aiomove_write"
#: Execution option for SQLite autocommit (no BEGIN at all).
AUTOCOMMIT_OPTION = "aiomove_autocommit"
#: How long a SQLite writer waits for another process's write transaction (milliseconds).
SQLITE_BUSY_TIMEOUT_MS = 60_000
#: pg_advisory_xact_lock key serialising migrations ("aiomove" in ASCII, as a bigint).
MIGRATION_LOCK = 0x61696F6D6F7665
SCRIPT_LOCATION = "aiomove.daemon:migrations"


def sqlite_url(path: str | os.PathLike[str]) -> str:
    """The store URL of a SQLite database file."""
    return f"sqlite+aiosqlite:///{os.fspath(path)}"


def make_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    """An async engine for `url` (sqlite+aiosqlite or postgresql+asyncpg)."""
    if url.startswith("sqlite"):
        if ":memory:" in url or url.rstrip("/").endswith("sqlite+aiosqlite:"):
            raise ValueError("the job store needs a SQLite file, not an in-memory database")
        # Our connections are always in driver autocommit mode (isolation_level None), so the
        # ROLLBACK on every return to the pool would be a wasted trip to aiosqlite's thread. (A
        # failed migration transaction is rolled back by closing the engine: open_store.)
        engine = create_async_engine(
            url, pool_size=pool_size, max_overflow=pool_size, skip_autocommit_rollback=True
        )
        _sqlite_events(engine)
        return engine
    if url.startswith("postgresql+asyncpg"):
        return create_async_engine(url, pool_size=pool_size, max_overflow=pool_size)
    raise ValueError(f"unsupported job store URL {url!r} (sqlite+aiosqlite or postgresql+asyncpg)")


def _sqlite_events(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        # SQLAlchemy emits BEGIN itself (below); the driver must not.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        # In WAL mode NORMAL never corrupts; a power loss may forget the last commits (a lost
        # receipt only means that instance is requested again).
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn: Connection) -> None:
        options = conn.get_execution_options()
        if options.get(AUTOCOMMIT_OPTION, False):
            return  # with isolation_level None the driver autocommits each statement
        conn.exec_driver_sql("BEGIN IMMEDIATE" if options.get(WRITE_OPTION, False) else "BEGIN")


def writer(engine: AsyncEngine) -> AsyncEngine:
    """The same engine (same pool), marking its transactions as writes."""
    return engine.execution_options(**{WRITE_OPTION: True})


def autocommit(engine: AsyncEngine) -> AsyncEngine:
    """The same engine (same pool), each statement committed on its own."""
    if engine.dialect.name == "sqlite":
        return engine.execution_options(**{AUTOCOMMIT_OPTION: True})
    return engine.execution_options(isolation_level="AUTOCOMMIT")


#: Alembic's `context` is one global proxy per process: migrations in one process (one event
#: loop each) must not interleave, whichever database they touch.
_migrating: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


async def migrate(engine: AsyncEngine) -> None:
    """Upgrade the database to the newest schema revision (Alembic), under a lock: in the
    database (PostgreSQL advisory lock; SQLite BEGIN IMMEDIATE) and in this process."""
    lock = _migrating.setdefault(asyncio.get_running_loop(), asyncio.Lock())
    async with lock, writer(engine).begin() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        await conn.run_sync(_upgrade)


def _upgrade(connection: Connection) -> None:
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
