"""Helpers for the Storage SCP tests: small data sets, their encodings, a running SCP."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.sequence import Sequence

from aiomove.association import Association, Peer, connect
from aiomove.proto import uids
from aiomove.proto.dimse import CStoreRQ, CStoreRSP
from aiomove.server import serve
from aiomove.storage import WRITE_BUFFER, FileSink, StoreRequest, StoreResult, storage_config
from aiomove.transfer import Prefer

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4"


def make_dataset(
    sop_instance_uid: str = "1.2.3.4.5",
    sop_class_uid: str = CT_IMAGE,
    *,
    pixel_bytes: int = 64,
) -> Dataset:
    """A small CT-like data set with a nested sequence and native pixel data."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class_uid
    ds.SOPInstanceUID = sop_instance_uid
    ds.Modality = "CT"
    ds.PatientName = "Doe^Jane"
    ds.PatientID = "ID42"
    item = Dataset()
    item.CodeValue = "T-D1100"
    item.CodingSchemeDesignator = "SRT"
    ds.AnatomicRegionSequence = Sequence([item])
    ds.Columns = 1024 if pixel_bytes >= 2048 else max(pixel_bytes // 2, 1)
    ds.Rows = max(pixel_bytes // (2 * ds.Columns), 1)
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelData = bytes(range(256)) * (pixel_bytes // 256) + bytes(pixel_bytes % 256)
    ds["PixelData"].VR = "OW"
    return ds


def encode(ds: Dataset, transfer_syntax: str) -> bytes:
    """`ds` encoded in one of the three uncompressed transfer syntaxes (PS3.5 §10)."""
    buffer = DicomBytesIO()
    buffer.is_implicit_VR = transfer_syntax == uids.IMPLICIT_VR_LE
    buffer.is_little_endian = transfer_syntax != uids.EXPLICIT_VR_BE
    write_dataset(buffer, ds)
    return bytes(buffer.getvalue())


class RecordingSink(FileSink):
    """A FileSink that remembers every result and signals when a store ended, however."""

    def __init__(self, directory: Path, **kw: object) -> None:
        super().__init__(directory, **kw)  # type: ignore[arg-type]
        self.results: list[StoreResult] = []
        self.receiving = anyio.Event()
        self.ended = anyio.Event()
        self.failures: list[BaseException] = []

    async def store(
        self, request: StoreRequest, chunks: AsyncIterator[bytes | memoryview]
    ) -> StoreResult:
        try:
            result = await super().store(request, self._watch(chunks))
        except BaseException as exc:
            self.failures.append(exc)
            raise
        finally:
            self.ended.set()
        self.results.append(result)
        return result

    async def _watch(
        self, chunks: AsyncIterator[bytes | memoryview]
    ) -> AsyncIterator[bytes | memoryview]:
        # `receiving` is set once the sink has taken more than WRITE_BUFFER bytes: it has then
        # written at least once, so its temporary file exists (the spool opens lazily).
        taken = 0
        async for chunk in chunks:
            yield chunk
            taken += len(chunk)
            if taken > WRITE_BUFFER:
                self.receiving.set()


@contextlib.asynccontextmanager
async def storage_scp(
    sink: FileSink, prefer: Prefer = Prefer.UNCOMPRESSED, **kw: Any
) -> AsyncIterator[int]:
    """serve(storage_config(...)) on loopback; yields the port."""
    async with anyio.create_task_group() as tg:
        port = await tg.start(serve, storage_config("STORESCP", sink, prefer, **kw), "127.0.0.1")
        yield port
        tg.cancel_scope.cancel()


@contextlib.asynccontextmanager
async def storage_scu(
    port: int,
    sop_class_uid: str = CT_IMAGE,
    transfer_syntaxes: tuple[str, ...] = (uids.EXPLICIT_VR_LE,),
) -> AsyncIterator[Association]:
    async with connect(
        Peer("127.0.0.1", port, "STORESCP"),
        ae_title="STORESCU",
        contexts=[(sop_class_uid, transfer_syntaxes)],
    ) as assoc:
        yield assoc


async def c_store(
    assoc: Association, dataset: bytes, sop_instance_uid: str, sop_class_uid: str = CT_IMAGE
) -> CStoreRSP:
    """One C-STORE on the association's first context; the response."""
    context = assoc.contexts[0]
    message_id = assoc.next_message_id()
    rq = CStoreRQ(
        message_id=message_id,
        affected_sop_class_uid=sop_class_uid,
        affected_sop_instance_uid=sop_instance_uid,
    )
    await assoc.send(rq, context.context_id, dataset)
    got = await assoc.receive_command(timeout=30)
    assert got is not None
    assert isinstance(got.message, CStoreRSP)
    assert got.message.message_id_being_responded_to == message_id
    return got.message
