"""Spooling received data sets to disk: a temporary file written off the event loop, in
bounded memory, with a free-disk floor; and the small async-iterator helpers around it.

Every file is written under a temporary name and either completed (flushed, optionally
fsynced, renamed into place) or removed: never left half written, even on cancellation.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any, Final

import anyio
import anyio.to_thread

from aiomove.errors import DataSetTooLarge

#: Received bytes gathered before one write to disk.
WRITE_BUFFER: Final = 1 << 20


class DiskFloorReached(OSError):
    """Writing would leave less free space than the sink's `min_free_bytes` (an ENOSPC)."""

    def __init__(self, free: int, floor: int) -> None:
        super().__init__(errno.ENOSPC, f"free disk space {free} bytes is below the floor {floor}")
        self.free = free
        self.floor = floor


def free_bytes(directory: Path) -> int:
    """Bytes an unprivileged writer may still use on `directory`'s file system."""
    stats = os.statvfs(directory)
    return stats.f_bavail * stats.f_frsize


def check_floor(directory: Path, needed: int, floor: int) -> None:
    """Raise DiskFloorReached if writing `needed` bytes would go below `floor` free bytes."""
    if floor <= 0:
        return
    free = free_bytes(directory)
    if free - needed < floor:
        raise DiskFloorReached(free, floor)


def _write_all(fh: Any, data: bytes | bytearray) -> None:
    """The one place received bytes reach the disk (tests replace it to simulate ENOSPC)."""
    fh.write(data)


def _append(fh: Any, path: Path, data: bytes | bytearray, floor: int = 0) -> Any:
    """Create the temporary file on first use (exclusively: never someone else's), append.

    The free-disk floor is checked before every write (one statvfs per buffer)."""
    try:
        check_floor(path.parent, len(data), floor)
        if fh is None:
            fh = open(path, "xb")  # noqa: SIM115 - closed by _complete or _discard
        _write_all(fh, data)
    except BaseException:
        _discard(fh, path)
        raise
    return fh


def _complete(
    fh: Any,
    path: Path,
    data: bytes | bytearray,
    fsync: bool,
    floor: int = 0,
    final: Path | None = None,
) -> bool:
    """The last bytes, then flush (and fsync when asked) and close; then, with `final`,
    the rename into place, in the same worker-thread call (one hop per small instance).
    Whether `final` already existed."""
    fh = _append(fh, path, data, floor)
    try:
        fh.flush()
        if fsync:
            os.fsync(fh.fileno())
    finally:
        fh.close()
    return False if final is None else replace_file(path, final)


def _discard(fh: Any, path: Path) -> None:
    if fh is not None:
        with contextlib.suppress(OSError):
            fh.close()
    with contextlib.suppress(OSError):  # already gone, or its directory is
        path.unlink()


def replace_file(temporary: Path, final: Path) -> bool:
    """Rename into place (atomic, overwriting); whether a file was there. Cleans up on error."""
    existed = final.exists()
    try:
        os.replace(temporary, final)
    except OSError:
        _discard(None, temporary)
        raise
    return existed


class Spool:
    """A temporary file filled from the event loop, written by worker threads.

    Opened lazily: an instance smaller than WRITE_BUFFER costs one thread hop in all (open,
    write, fsync, close in `close()`), a large one one more per buffer. Memory stays bounded
    by WRITE_BUFFER whatever the instance size.
    """

    def __init__(self, path: Path, fsync: bool = False, floor: int = 0) -> None:
        self.path = path
        self.fsync = fsync
        self.floor = floor
        self._fh: Any = None
        self._buffer = bytearray()

    async def open(self, header: bytes) -> None:
        self._buffer += header

    async def write(self, chunk: bytes | memoryview) -> None:
        self._buffer += chunk  # copies: the chunk may be a view of a reused PDU buffer
        if len(self._buffer) >= WRITE_BUFFER:
            data, self._buffer = self._buffer, bytearray()
            self._fh = await anyio.to_thread.run_sync(
                _append, self._fh, self.path, data, self.floor
            )

    async def close(self, final: Path | None = None) -> bool:
        """Write what is left (durably with fsync); with `final`, rename it there too.

        Whether `final` already existed. On error the caller discards the spool."""
        data, self._buffer = self._buffer, bytearray()
        fh, self._fh = self._fh, None
        return await anyio.to_thread.run_sync(
            _complete, fh, self.path, data, self.fsync, self.floor, final
        )

    async def discard(self) -> None:
        """Remove the file; shielded so that a cancelled store still cleans up."""
        with anyio.CancelScope(shield=True):
            self._buffer = bytearray()
            fh, self._fh = self._fh, None
            await anyio.to_thread.run_sync(_discard, fh, self.path)


def write_parts(path: Path, parts: Iterable[bytes], fsync: bool, floor: int = 0) -> None:
    """Write a new file from `parts` at once (worker thread), after checking the floor."""
    parts = list(parts)
    check_floor(path.parent, sum(map(len, parts)), floor)
    with open(path, "xb") as fh:
        for part in parts:
            _write_all(fh, part)
        fh.flush()
        if fsync:
            os.fsync(fh.fileno())


async def drain(chunks: AsyncIterator[bytes | memoryview], limit: int | None = None) -> int:
    """Read a data set to its end without keeping it; the number of bytes read.
    Raises DataSetTooLarge beyond `limit` bytes."""
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if limit is not None and size > limit:
            raise too_large(limit)
    return size


def too_large(limit: int) -> DataSetTooLarge:
    return DataSetTooLarge(f"data set larger than {limit} bytes", limit)


@contextlib.asynccontextmanager
async def closing(chunks: AsyncIterator[Any]) -> AsyncIterator[None]:
    """Close an async generator we stop reading early (a raise, a cancel): it must not be
    left to the garbage collector, which trio reports."""
    try:
        yield
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            with anyio.CancelScope(shield=True):
                await aclose()
