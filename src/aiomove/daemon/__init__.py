"""The retrieval daemon (issue 6): a job store shared by workers, and the runtime that drives it.

asyncio only: SQLAlchemy's async engine (aiosqlite, asyncpg) needs an asyncio event loop.
"""
