"""Alembic environment for the job store, run programmatically by `aiomove.daemon.store`.

The store passes an open (synchronous facade of an async) connection in
`config.attributes["connection"]`; there is no alembic.ini and no offline (SQL script) mode.
"""

from __future__ import annotations

from alembic import context

from aiomove.daemon.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata)
with context.begin_transaction():
    context.run_migrations()
