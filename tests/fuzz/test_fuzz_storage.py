"""Fuzzing the data-set stream writer: `FileSink.store` fed arbitrary chunks leaves either
the complete file (meta header + the chunks' bytes) or nothing at all, not even a temporary."""

from __future__ import annotations

import errno
import tempfile
from collections.abc import AsyncGenerator
from contextlib import aclosing
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiomove import spool, storage
from aiomove.proto import uids
from aiomove.storage import FileSink, StoreRequest, encode_file_meta

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
REQUEST = StoreRequest(
    message_id=1,
    sop_class_uid=CT_IMAGE,
    sop_instance_uid="1.2.3.4.5",
    transfer_syntax=uids.EXPLICIT_VR_LE,
    calling_ae_title="SCU",
    called_ae_title="SCP",
    move_originator_ae_title=None,
    move_originator_message_id=None,
    assoc_id=0,
    peer="test",
    priority=0,
)
HEADER = encode_file_meta(CT_IMAGE, "1.2.3.4.5", uids.EXPLICIT_VR_LE, "SCU")

# Mostly small chunks; now and then big ones, so that the 1 MiB write buffer spills.
CHUNKS = st.lists(
    st.binary(max_size=64) | st.integers(0, 700_000).map(lambda n: bytes([n % 251]) * n),
    max_size=6,
)
FAILURES = st.sampled_from(["none", "raise", "cancel", "disk"])


class SourceBroke(Exception):
    """The chunk source failed (e.g. the association was aborted mid data set)."""


async def chunk_source(
    chunks: list[bytes], fail_at: int | None
) -> AsyncGenerator[memoryview, None]:
    """The chunks as views of one reused buffer, as the receiver hands out PDV data."""
    scratch = bytearray(max((len(c) for c in chunks), default=0))
    for i, chunk in enumerate(chunks):
        if i == fail_at:
            raise SourceBroke
        scratch[: len(chunk)] = chunk
        with memoryview(scratch) as view, view[: len(chunk)] as piece:
            yield piece
        scratch[: len(chunk)] = bytes(len(chunk))  # reused: the sink must have copied
    if fail_at is not None and fail_at >= len(chunks):
        raise SourceBroke


def _disk_full_after(writes: int) -> Any:
    count = 0

    def write_all(fh: Any, data: bytes | bytearray) -> None:
        nonlocal count
        count += 1
        if count > writes:
            raise OSError(errno.ENOSPC, "No space left on device")
        fh.write(data)

    return write_all


@pytest.mark.anyio
@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(chunks=CHUNKS, failure=FAILURES, where=st.integers(0, 6))
async def test_store_leaves_a_complete_file_or_nothing(
    tmp_path: Path, chunks: list[bytes], failure: str, where: int
) -> None:
    await check_store(Path(tempfile.mkdtemp(dir=tmp_path)), chunks, failure, where)


async def check_store(directory: Path, chunks: list[bytes], failure: str, where: int) -> None:
    """Store `chunks`, failing as told at chunk `where`; check what is left in `directory`."""
    sink = FileSink(directory)
    total = sum(map(len, chunks))
    if failure == "none":
        result = await sink.store(REQUEST, chunk_source(chunks, None))
        assert result.status == storage.SUCCESS
        assert result.size == total
        assert result.path == directory / "CT.1.2.3.4.5"
        _assert_complete(directory, chunks)
        return
    if failure == "raise":
        with pytest.raises(SourceBroke):
            await sink.store(REQUEST, chunk_source(chunks, where))
    elif failure == "cancel":
        with anyio.CancelScope() as scope:
            async with (
                aclosing(chunk_source(chunks, None)) as source,
                aclosing(_cancel_at(source, where, scope)) as cancelling,
            ):
                await sink.store(REQUEST, cancelling)
        if not scope.cancelled_caught:  # the data set ended before the cancel point
            assert where >= len(chunks)
            _assert_complete(directory, chunks)
            return
    else:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(spool, "_write_all", _disk_full_after(where % 2))
            result = await sink.store(REQUEST, chunk_source(chunks, None))
        if result.status == storage.SUCCESS:  # everything fitted in the writes allowed
            _assert_complete(directory, chunks)
            return
        assert (result.status, result.path, result.size) == (storage.OUT_OF_RESOURCES, None, total)
    _assert_empty(directory)


def _assert_empty(directory: Path) -> None:
    assert list(directory.iterdir()) == []  # no file, and no temporary either


def _assert_complete(directory: Path, chunks: list[bytes]) -> None:
    [path] = directory.iterdir()  # the file, and no temporary left beside it
    assert path.name == "CT.1.2.3.4.5"
    assert path.read_bytes() == HEADER + b"".join(chunks)


async def _cancel_at(
    chunks: AsyncGenerator[memoryview, None], where: int, scope: anyio.CancelScope
) -> AsyncGenerator[memoryview, None]:
    i = 0
    async for chunk in chunks:
        if i == where:
            scope.cancel()
            await anyio.lowlevel.checkpoint()  # a checkpoint: the cancellation lands here
        yield chunk
        i += 1


BIG = [bytes([i]) * 700_000 for i in range(1, 4)] + [b"tail"]  # spills the write buffer twice


@pytest.mark.anyio
@pytest.mark.parametrize("failure", ["none", "raise", "cancel", "disk"])
@pytest.mark.parametrize("where", [0, 2, 4])
async def test_large_data_sets(tmp_path: Path, failure: str, where: int) -> None:
    await check_store(tmp_path, BIG, failure, where)
