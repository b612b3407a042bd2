"""A 2 GiB instance streamed from sender to disk with bounded memory (issue: "a 2 GiB instance
arrives with well under 100 MiB of memory growth").

Both ends run in this process: `Association.send_stream` feeds the data set from a generator
(one 1 MiB buffer reused), the Storage SCP writes it to disk as it arrives. tracemalloc's peak
over the transfer bounds what Python allocated for it on both sides together.
"""

from __future__ import annotations

import struct
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from pydicom import Dataset
from pydicom.uid import generate_uid

from aiomove.association import Peer, Timeouts, connect
from aiomove.modality import modality_prefix
from aiomove.proto import uids
from aiomove.proto.dimse import CStoreRQ, CStoreRSP
from aiomove.server import serve
from aiomove.storage import FileSink, storage_config
from tests.store_util import encode

pytestmark = pytest.mark.anyio

MF_GRAYSCALE_WORD_SC = "1.2.840.10008.5.1.4.1.1.7.3"
ROWS = COLS = 1024
FRAMES = 1024  # 1024 x 1024 x 2 bytes x 1024 frames = 2 GiB of pixel data
PIXEL_BYTES = ROWS * COLS * 2 * FRAMES
CHUNK = 1 << 20
BOUND = 100 << 20


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def header(sop_uid: str) -> bytes:
    """Everything before Pixel Data, explicit VR little endian, then Pixel Data's own header."""
    ds = Dataset()
    ds.SOPClassUID = MF_GRAYSCALE_WORD_SC
    ds.SOPInstanceUID = sop_uid
    ds.Modality = "OT"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.NumberOfFrames = FRAMES
    ds.Rows = ROWS
    ds.Columns = COLS
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    # (7FE0,0010) OW, explicit VR: tag, VR, 2 reserved bytes, 32-bit length (PS3.5 7.1.2)
    pixel_header = struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OW", 0, PIXEL_BYTES)
    return encode(ds, uids.EXPLICIT_VR_LE) + pixel_header


async def stream(sop_uid: str) -> AsyncIterator[bytes]:
    yield header(sop_uid)
    zeros = bytes(CHUNK)
    for _ in range(PIXEL_BYTES // CHUNK):
        yield zeros


async def test_2_gib_instance_with_bounded_memory(tmp_path: Path) -> None:
    sop_uid = generate_uid()
    sink = FileSink(tmp_path)
    config = storage_config("STORESCP", sink, max_pdu_length=131072)
    tracemalloc.start()
    try:
        async with anyio.create_task_group() as tg:
            port = await tg.start(serve, config, "127.0.0.1")
            tracemalloc.reset_peak()
            async with connect(
                Peer("127.0.0.1", port, "STORESCP"),
                contexts=[(MF_GRAYSCALE_WORD_SC, (uids.EXPLICIT_VR_LE,))],
                max_pdu_length=131072,
                timeouts=Timeouts(dimse=300),
            ) as assoc:
                rq = CStoreRQ(
                    message_id=1,
                    affected_sop_class_uid=MF_GRAYSCALE_WORD_SC,
                    affected_sop_instance_uid=sop_uid,
                )
                with anyio.fail_after(600):  # hang detector
                    await assoc.send_stream(rq, assoc.contexts[0].context_id, stream(sop_uid))
                    got = await assoc.receive_command()
            _, peak = tracemalloc.get_traced_memory()
            tg.cancel_scope.cancel()
    finally:
        tracemalloc.stop()
    assert got is not None
    assert isinstance(got.message, CStoreRSP)
    assert got.message.status == 0x0000
    check_and_remove(tmp_path, sop_uid)
    assert peak < BOUND, f"peak traced memory {peak / 2**20:.1f} MiB for a 2 GiB instance"


def check_and_remove(directory: Path, sop_uid: str) -> None:
    """The file is whole (meta, header, every pixel byte) and alone; then it is deleted."""
    stored = directory / f"{modality_prefix(MF_GRAYSCALE_WORD_SC)}.{sop_uid}"
    try:
        size = stored.stat().st_size
        assert size > PIXEL_BYTES
        with stored.open("rb") as fh:
            fh.seek(128)
            assert fh.read(4) == b"DICM"
            fh.seek(size - PIXEL_BYTES - 4)
            (length,) = struct.unpack("<I", fh.read(4))
            assert length == PIXEL_BYTES  # Pixel Data's length field sits right before it
    finally:
        stored.unlink(missing_ok=True)
    assert [p.name for p in directory.iterdir()] == []  # no temporary file left either
