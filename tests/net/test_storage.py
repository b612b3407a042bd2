"""The Storage SCP on loopback: aiomove's own connect() pushes C-STOREs to serve(storage_config)."""

from __future__ import annotations

import errno
import os
import struct
import tracemalloc
from pathlib import Path
from typing import Any

import anyio
import pydicom
import pytest
from pydicom.dataelem import DataElement

from aiomove import spool
from aiomove.association import Peer, connect
from aiomove.errors import AssociationAborted
from aiomove.modality import modality_prefix
from aiomove.proto import uids
from aiomove.proto.dimse import CStoreRQ, encode_command
from aiomove.proto.pdata import fragment
from aiomove.storage import (
    CANNOT_UNDERSTAND,
    OUT_OF_RESOURCES,
    WRITE_BUFFER,
    FileSink,
    InstanceTooLarge,
    OutputOptions,
    StoreRequest,
    StoreResult,
    encode_file_meta,
)
from aiomove.transfer import (
    Prefer,
    Propose,
    accepted_transfer_syntaxes,
    proposed_transfer_syntaxes,
    storage_contexts,
)
from tests.store_util import (
    CT_IMAGE,
    MR_IMAGE,
    RecordingSink,
    c_store,
    encode,
    make_dataset,
    storage_scp,
    storage_scu,
)

pytestmark = pytest.mark.anyio

UNCOMPRESSED = (uids.EXPLICIT_VR_LE, uids.IMPLICIT_VR_LE, uids.EXPLICIT_VR_BE)


def files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def everything_under(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*"))


def data_set_part(path: Path) -> bytes:
    """The bytes after the file meta group, located from the group length (PS3.10 §7.1)."""
    raw = path.read_bytes()
    assert raw[:128] == bytes(128)
    assert raw[128:132] == b"DICM"
    (group_length,) = struct.unpack_from("<I", raw, 132 + 8)
    return raw[132 + 12 + group_length :]


# --- file meta ----------------------------------------------------------------------------


def test_file_meta_golden_bytes() -> None:
    """Hand-written from PS3.10 Table 7.1-1 / PS3.5 §7.1.2 (explicit VR little endian)."""
    got = encode_file_meta("1.2.3", "1.2.3.4", "1.2.840.10008.1.2.1", "SCU")
    impl = uids.IMPLEMENTATION_CLASS_UID.encode() + b"\x00" * (
        len(uids.IMPLEMENTATION_CLASS_UID) % 2
    )
    name = uids.IMPLEMENTATION_VERSION_NAME.encode()
    name += b" " * (len(name) % 2)
    body = (
        b"\x02\x00\x01\x00OB\x00\x00\x02\x00\x00\x00\x00\x01"
        + b"\x02\x00\x02\x00UI\x06\x001.2.3\x00"
        + b"\x02\x00\x03\x00UI\x08\x001.2.3.4\x00"
        + b"\x02\x00\x10\x00UI\x14\x001.2.840.10008.1.2.1\x00"
        + b"\x02\x00\x12\x00UI"
        + struct.pack("<H", len(impl))
        + impl
        + b"\x02\x00\x13\x00SH"
        + struct.pack("<H", len(name))
        + name
        + b"\x02\x00\x16\x00AE\x04\x00SCU "
    )
    header = b"\x02\x00\x00\x00UL\x04\x00" + struct.pack("<I", len(body))
    assert got == bytes(128) + b"DICM" + header + body


# --- the default (streaming) mode ---------------------------------------------------------


@pytest.mark.parametrize("transfer_syntax", UNCOMPRESSED)
async def test_stored_file_is_part10_with_the_received_bytes(
    tmp_path: Path, transfer_syntax: str
) -> None:
    ds = make_dataset("1.2.3.4.5")
    sent = encode(ds, transfer_syntax)
    seen: list[tuple[StoreRequest, StoreResult]] = []

    async def on_stored(request: StoreRequest, result: StoreResult) -> None:
        seen.append((request, result))

    async with (
        storage_scp(FileSink(tmp_path), on_stored=on_stored) as port,
        storage_scu(port, transfer_syntaxes=(transfer_syntax,)) as assoc,
    ):
        rsp = await c_store(assoc, sent, "1.2.3.4.5")
    assert rsp.status == 0x0000
    assert rsp.affected_sop_instance_uid == "1.2.3.4.5"
    path = tmp_path / "CT.1.2.3.4.5"
    assert files(tmp_path) == ["CT.1.2.3.4.5"]
    assert data_set_part(path) == sent
    back = pydicom.dcmread(path)
    meta = back.file_meta
    assert meta.TransferSyntaxUID == transfer_syntax
    assert meta.MediaStorageSOPClassUID == CT_IMAGE
    assert meta.MediaStorageSOPInstanceUID == "1.2.3.4.5"
    assert meta.SourceApplicationEntityTitle == "STORESCU"
    assert meta.ImplementationClassUID == uids.IMPLEMENTATION_CLASS_UID
    assert back.PatientName == "Doe^Jane"
    assert back.AnatomicRegionSequence[0].CodeValue == "T-D1100"
    [(request, result)] = seen
    assert (request.calling_ae_title, request.called_ae_title) == ("STORESCU", "STORESCP")
    assert request.transfer_syntax == transfer_syntax
    assert (result.status, result.path, result.size) == (0, path, len(sent))


async def test_write_dataset_mode_writes_only_the_data_set(tmp_path: Path) -> None:
    sent = encode(make_dataset("1.2.3.9"), uids.IMPLICIT_VR_LE)
    sink = FileSink(tmp_path, options=OutputOptions(write_file=False))
    async with storage_scp(sink) as port, storage_scu(port) as assoc:
        assert (await c_store(assoc, sent, "1.2.3.9")).status == 0
    assert (tmp_path / "CT.1.2.3.9").read_bytes() == sent


@pytest.mark.parametrize("fsync", [False, True])
async def test_fsync_runs_once_per_file_only_when_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fsync: bool
) -> None:
    synced: list[int] = []
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    sink = FileSink(tmp_path, fsync=fsync)
    async with storage_scp(sink) as port, storage_scu(port) as assoc:
        for uid in ("1.2.3.21", "1.2.3.22"):
            sent = encode(make_dataset(uid), uids.EXPLICIT_VR_LE)
            assert (await c_store(assoc, sent, uid)).status == 0
    assert files(tmp_path) == ["CT.1.2.3.21", "CT.1.2.3.22"]
    assert len(synced) == (2 if fsync else 0)


async def test_ignore_mode_writes_nothing_and_succeeds(tmp_path: Path) -> None:
    sink = RecordingSink(tmp_path, ignore=True)
    async with storage_scp(sink) as port, storage_scu(port) as assoc:
        sent = encode(make_dataset("1.2.3.10"), uids.EXPLICIT_VR_LE)
        assert (await c_store(assoc, sent, "1.2.3.10")).status == 0
    assert files(tmp_path) == []
    assert sink.results == [StoreResult(0, None, len(sent))]


async def test_unknown_sop_class_is_named_unknown_and_existing_file_is_replaced(
    tmp_path: Path,
) -> None:
    sop_class = "1.2.840.10008.5.1.4.1.1.7"  # Secondary Capture: "SC"
    (tmp_path / "SC.1.2.3.11").write_bytes(b"old")
    async with storage_scp(FileSink(tmp_path)) as port, storage_scu(port, sop_class) as assoc:
        sent = encode(make_dataset("1.2.3.11", sop_class), uids.EXPLICIT_VR_LE)
        assert (await c_store(assoc, sent, "1.2.3.11", sop_class)).status == 0
    assert data_set_part(tmp_path / "SC.1.2.3.11") == sent
    sink = FileSink(tmp_path)
    request = _request("1.2.3.12", sop_class="1.2.3.999")
    result = await sink.store(request, _chunks(b"\x08\x00\x05\x00CS\x00\x00"))
    assert result.path == tmp_path / "UNKNOWN.1.2.3.12"


async def test_several_instances_on_one_association(tmp_path: Path) -> None:
    async with storage_scp(FileSink(tmp_path)) as port, storage_scu(port, MR_IMAGE) as assoc:
        for n in range(5):
            uid = f"1.2.3.20.{n}"
            sent = encode(make_dataset(uid, MR_IMAGE, pixel_bytes=4096 * n), uids.EXPLICIT_VR_LE)
            assert (await c_store(assoc, sent, uid, MR_IMAGE)).status == 0
    assert files(tmp_path) == [f"MR.1.2.3.20.{n}" for n in range(5)]


# --- failures -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad_uid", ["../../etc/passwd", "1.2/3", "..", "1.2.3.", "1.02.3", "a" * 30, "1..2"]
)
async def test_hostile_sop_instance_uid_is_refused_and_never_a_path(
    tmp_path: Path, bad_uid: str
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    sink = RecordingSink(out)
    async with storage_scp(sink) as port, storage_scu(port) as assoc:
        sent = encode(make_dataset("1.2.3.30"), uids.EXPLICIT_VR_LE)
        rsp = await c_store(assoc, sent, bad_uid)
        assert rsp.status == CANNOT_UNDERSTAND
        assert rsp.offending_element == (0x00001000,)
        assert rsp.error_comment == "invalid Affected SOP Instance UID"
        # the data set was drained: the association is still in step
        assert (await c_store(assoc, sent, "1.2.3.30")).status == 0
    assert files(out) == ["CT.1.2.3.30"]
    assert everything_under(tmp_path) == ["out", "out/CT.1.2.3.30"]
    assert sink.results[0].size == len(sent)


async def test_hostile_sop_class_uid_is_refused(tmp_path: Path) -> None:
    sink = FileSink(tmp_path)
    result = await sink.store(_request("1.2.3", sop_class="../x"), _chunks(b"abcd", b"ef"))
    assert (result.status, result.path, result.size) == (CANNOT_UNDERSTAND, None, 6)
    assert files(tmp_path) == []


async def test_unsafe_custom_file_name_is_refused(tmp_path: Path) -> None:
    sink = FileSink(tmp_path, filename=lambda request: "../escape")
    result = await sink.store(_request("1.2.3"), _chunks(b"abcd"))
    assert result.status == CANNOT_UNDERSTAND
    assert files(tmp_path) == []
    assert not (tmp_path.parent / "escape").exists()


async def test_disk_write_failure_answers_out_of_resources_and_association_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = {"n": 0}
    real = spool._write_all

    def failing_once(fh: Any, data: bytes | bytearray) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fh, data)

    monkeypatch.setattr(spool, "_write_all", failing_once)
    async with storage_scp(FileSink(tmp_path)) as port, storage_scu(port) as assoc:
        # larger than the write buffer, so that the failure happens mid data set
        big = encode(make_dataset("1.2.3.40", pixel_bytes=3 << 20), uids.EXPLICIT_VR_LE)
        rsp = await c_store(assoc, big, "1.2.3.40")
        assert rsp.status == OUT_OF_RESOURCES
        assert rsp.error_comment == "No space left on device"
        assert files(tmp_path) == []
        small = encode(make_dataset("1.2.3.41"), uids.EXPLICIT_VR_LE)
        assert (await c_store(assoc, small, "1.2.3.41")).status == 0
    assert files(tmp_path) == ["CT.1.2.3.41"]


async def test_missing_output_directory_answers_out_of_resources(tmp_path: Path) -> None:
    gone = tmp_path / "gone"
    gone.mkdir()
    async with storage_scp(FileSink(gone)) as port, storage_scu(port) as assoc:
        gone.rmdir()
        sent = encode(make_dataset("1.2.3.42"), uids.EXPLICIT_VR_LE)
        assert (await c_store(assoc, sent, "1.2.3.42")).status == OUT_OF_RESOURCES
        assert (await c_store(assoc, sent, "1.2.3.42")).status == OUT_OF_RESOURCES
    assert files(tmp_path) == []


async def test_abort_mid_data_set_leaves_no_file(tmp_path: Path) -> None:
    sink = RecordingSink(tmp_path)
    sent = encode(make_dataset("1.2.3.50", pixel_bytes=3 << 20), uids.EXPLICIT_VR_LE)
    async with storage_scp(sink) as port, storage_scu(port) as assoc:
        context = assoc.contexts[0].context_id
        rq = CStoreRQ(
            message_id=1, affected_sop_class_uid=CT_IMAGE, affected_sop_instance_uid="1.2.3.50"
        )
        conn = assoc.link.conn
        for pdv in fragment(context, encode_command(rq), is_command=True, max_pdu_length=16384):
            conn.send_pdv(pdv.context_id, True, pdv.is_last, pdv.data, assoc.link.now())
        half = sent[: len(sent) // 2]
        for pdv in fragment(context, half, is_command=False, max_pdu_length=16384):
            conn.send_pdv(pdv.context_id, False, False, pdv.data, assoc.link.now())
            await assoc.link.flush()
        with anyio.fail_after(10):
            await sink.receiving.wait()
        assert len(files(tmp_path)) == 1  # the temporary file exists...
        await assoc.abort()
        with anyio.fail_after(10):
            await sink.ended.wait()
    assert files(tmp_path) == []  # ...and is gone
    assert sink.results == []
    assert isinstance(sink.failures[0], AssociationAborted)


async def test_cancelled_store_removes_its_temporary_file(tmp_path: Path) -> None:
    sink = FileSink(tmp_path)
    started = anyio.Event()

    async def endless() -> Any:
        yield b"\x08\x00\x05\x00CS\x00\x00"
        yield bytes(WRITE_BUFFER)  # enough to be written: the spool creates its file lazily
        started.set()
        await anyio.sleep_forever()
        yield b""  # pragma: no cover

    async with anyio.create_task_group() as tg:
        tg.start_soon(sink.store, _request("1.2.3.60"), endless())
        await started.wait()
        assert len(files(tmp_path)) == 1
        tg.cancel_scope.cancel()
    assert files(tmp_path) == []


@pytest.mark.parametrize("ignore", [False, True])
async def test_sink_alone_bounds_the_instance_size(tmp_path: Path, ignore: bool) -> None:
    """Without an association in front (which bounds it first), the sink still counts: a data
    set beyond `max_instance_size` raises and leaves nothing, whether written or drained."""
    sink = FileSink(tmp_path, max_instance_size=WRITE_BUFFER + 10, ignore=ignore)
    with pytest.raises(InstanceTooLarge) as raised:
        await sink.store(_request("1.2.3.61"), _chunks(bytes(WRITE_BUFFER), bytes(20)))
    assert raised.value.limit == WRITE_BUFFER + 10
    assert files(tmp_path) == []
    result = await sink.store(_request("1.2.3.62"), _chunks(bytes(WRITE_BUFFER), bytes(10)))
    assert result.size == WRITE_BUFFER + 10  # exactly the limit is allowed


async def test_missing_data_set_is_a_failure(tmp_path: Path) -> None:
    async with storage_scp(FileSink(tmp_path)) as port, storage_scu(port) as assoc:
        rq = CStoreRQ(
            message_id=7,
            affected_sop_class_uid=CT_IMAGE,
            affected_sop_instance_uid="1.2.3.70",
            has_dataset=False,
        )
        await assoc.send(rq, assoc.contexts[0].context_id)
        got = await assoc.receive_command(timeout=30)
        assert got is not None
        assert getattr(got.message, "status", None) == CANNOT_UNDERSTAND
        sent = encode(make_dataset("1.2.3.71"), uids.EXPLICIT_VR_LE)
        assert (await c_store(assoc, sent, "1.2.3.71")).status == 0
    assert files(tmp_path) == ["CT.1.2.3.71"]


# --- memory -------------------------------------------------------------------------------


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_50_mb_instance_is_streamed_with_bounded_memory(tmp_path: Path) -> None:
    size = 50 << 20
    sent = encode(make_dataset("1.2.3.80", pixel_bytes=size), uids.EXPLICIT_VR_LE)
    tracemalloc.start()
    try:
        async with (
            storage_scp(FileSink(tmp_path)) as port,
            connect(
                Peer("127.0.0.1", port, "STORESCP"),
                contexts=[(CT_IMAGE, (uids.EXPLICIT_VR_LE,))],
            ) as assoc,
        ):
            tracemalloc.reset_peak()
            rsp = await c_store(assoc, sent, "1.2.3.80")
            _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert rsp.status == 0
    assert peak < 8 << 20, f"peak {peak} bytes for a {size} byte instance"
    assert data_set_part(tmp_path / "CT.1.2.3.80") == sent


# --- re-encoding ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("received", "wanted"),
    [
        (uids.IMPLICIT_VR_LE, uids.EXPLICIT_VR_LE),
        (uids.EXPLICIT_VR_LE, uids.EXPLICIT_VR_BE),
        (uids.EXPLICIT_VR_BE, uids.IMPLICIT_VR_LE),
        (uids.EXPLICIT_VR_LE, uids.DEFLATED_EXPLICIT_VR_LE),
    ],
)
async def test_write_transfer_syntax_reencodes(tmp_path: Path, received: str, wanted: str) -> None:
    ds = make_dataset("1.2.3.90")
    sink = FileSink(tmp_path, options=OutputOptions(transfer_syntax=wanted))
    async with storage_scp(sink) as port, storage_scu(port, transfer_syntaxes=(received,)) as assoc:
        assert (await c_store(assoc, encode(ds, received), "1.2.3.90")).status == 0
    back = pydicom.dcmread(tmp_path / "CT.1.2.3.90")
    assert back.file_meta.TransferSyntaxUID == wanted
    assert back.PatientName == ds.PatientName
    assert back.AnatomicRegionSequence[0].CodeValue == "T-D1100"
    assert back.PixelData == ds.PixelData  # OW words swapped back and forth correctly
    assert back.Columns == ds.Columns


async def test_group_lengths_undefined_lengths_and_padding(tmp_path: Path) -> None:
    options = OutputOptions(group_length="create", explicit_length=False, padding=(256, 16))
    sink = FileSink(tmp_path, options=options)
    async with storage_scp(sink) as port, storage_scu(port) as assoc:
        sent = encode(make_dataset("1.2.3.91"), uids.EXPLICIT_VR_LE)
        assert (await c_store(assoc, sent, "1.2.3.91")).status == 0
    path = tmp_path / "CT.1.2.3.91"
    assert path.stat().st_size % 256 == 0
    back = pydicom.dcmread(path)
    # (0008,0000) UL counts the bytes from after itself up to (0010,0000), the next group
    data = data_set_part(path)
    assert data[:8] == b"\x08\x00\x00\x00UL\x04\x00"
    assert back[0x00080000].value == data.index(b"\x10\x00\x00\x00UL\x04\x00") - 12
    assert back[0x00100000].value > 0
    sequence = back["AnatomicRegionSequence"]
    assert sequence.is_undefined_length
    assert back.AnatomicRegionSequence[0].is_undefined_length_sequence_item
    assert 0xFFFCFFFC in back


async def test_group_length_removed_and_new_vrs_relabelled(tmp_path: Path) -> None:
    ds = make_dataset("1.2.3.92")
    ds.add_new(0x00080000, "UL", 0)  # a stale group length, to be removed by -g
    ds.add_new(0x00400280, "ST", "short text")
    ds.add_new(0x00081030, "LO", "study")
    ds.add_new(0x00090010, "LO", "AIOMOVE TEST")  # private creator
    ds.add(DataElement(0x00091010, "UN", b"\x01\x02"))
    ds.add_new(0x00082111, "ST", "x")
    ds.add_new(0x0040A160, "UT", "unlimited")
    options = OutputOptions(group_length="remove", new_vr=False)
    sink = FileSink(tmp_path, options=options)
    async with storage_scp(sink) as port, storage_scu(port) as assoc:
        assert (await c_store(assoc, encode(ds, uids.EXPLICIT_VR_LE), "1.2.3.92")).status == 0
    back = pydicom.dcmread(tmp_path / "CT.1.2.3.92")
    assert 0x00080000 not in back
    assert back[0x0040A160].VR == "OB"
    assert back[0x0040A160].value == b"unlimited "
    assert back[0x00091010].VR == "OB"
    assert back[0x00091010].value == b"\x01\x02"


async def test_undecodable_data_set_with_reencoding_is_cannot_understand(tmp_path: Path) -> None:
    sink = FileSink(tmp_path, options=OutputOptions(transfer_syntax=uids.IMPLICIT_VR_LE))
    # a sequence of undefined length whose item header is cut short
    garbage = b"\x08\x00\x18\x00SQ\x00\x00\xff\xff\xff\xff\x08\x00\x05\x00"
    result = await sink.store(_request("1.2.3.93"), _chunks(garbage))
    assert result.status == CANNOT_UNDERSTAND
    assert files(tmp_path) == []


def test_contradictory_options_are_refused() -> None:
    with pytest.raises(ValueError, match="bit-preserving"):
        OutputOptions(bit_preserving=True, transfer_syntax=uids.IMPLICIT_VR_LE)
    with pytest.raises(ValueError, match="write-dataset"):
        OutputOptions(write_file=False, padding=(8, 2))
    with pytest.raises(ValueError, match="even"):
        OutputOptions(padding=(7, 2))
    with pytest.raises(ValueError, match="cannot write"):
        OutputOptions(transfer_syntax="1.2.840.10008.1.2.4.50")
    assert not OutputOptions(bit_preserving=True).reencodes(uids.EXPLICIT_VR_LE)
    assert OutputOptions(compression_level=9).reencodes(uids.DEFLATED_EXPLICIT_VR_LE)
    assert not OutputOptions(compression_level=9).reencodes(uids.EXPLICIT_VR_LE)
    assert OutputOptions(transfer_syntax=uids.EXPLICIT_VR_LE).reencodes(uids.EXPLICIT_VR_LE)
    assert not OutputOptions().reencodes(uids.DEFLATED_EXPLICIT_VR_LE)


# --- helpers -------------------------------------------------------------------------------------


def _request(sop_instance_uid: str, sop_class: str = CT_IMAGE) -> StoreRequest:
    return StoreRequest(
        message_id=1,
        sop_class_uid=sop_class,
        sop_instance_uid=sop_instance_uid,
        transfer_syntax=uids.EXPLICIT_VR_LE,
        calling_ae_title="SCU",
        called_ae_title="SCP",
        move_originator_ae_title=None,
        move_originator_message_id=None,
        assoc_id=0,
        peer="test",
        priority=0,
    )


async def _chunks(*parts: bytes) -> Any:
    for part in parts:
        yield part


# --- transfer syntax tables and modality prefixes (hand-written from movescu.cc) ----------------

LE, BE, IMPLICIT = "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2"


def test_proposed_transfer_syntaxes_are_movescus() -> None:
    assert proposed_transfer_syntaxes(Propose.UNCOMPRESSED) == (LE, BE, IMPLICIT)  # x86
    assert proposed_transfer_syntaxes(Propose.LITTLE) == (LE, BE, IMPLICIT)
    assert proposed_transfer_syntaxes(Propose.BIG) == (BE, LE, IMPLICIT)
    assert proposed_transfer_syntaxes(Propose.DEFLATED) == (
        "1.2.840.10008.1.2.1.99",
        LE,
        BE,
        IMPLICIT,
    )
    assert proposed_transfer_syntaxes(Propose.IMPLICIT) == (IMPLICIT,)


def test_accepted_transfer_syntaxes_for_some_preferences() -> None:
    assert accepted_transfer_syntaxes(Prefer.UNCOMPRESSED) == (LE, BE, IMPLICIT)
    assert accepted_transfer_syntaxes(Prefer.IMPLICIT) == (IMPLICIT,)
    assert accepted_transfer_syntaxes(Prefer.RLE) == ("1.2.840.10008.1.2.5", LE, BE, IMPLICIT)
    every = accepted_transfer_syntaxes(Prefer.ACCEPT_ALL)
    assert every[:2] == ("1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.90")
    assert every[-4:] == ("1.2.840.10008.1.2.1.99", LE, BE, IMPLICIT)
    assert len(every) == len(set(every)) == 21


def test_storage_contexts_cover_verification_current_and_retired_classes() -> None:
    contexts = storage_contexts(Prefer.LOSSLESS)
    wanted = ("1.2.840.10008.1.2.4.70", LE, BE, IMPLICIT)
    for uid in (
        uids.VERIFICATION,
        CT_IMAGE,
        "1.2.840.10008.5.1.4.1.1.6",
        "1.2.840.10008.5.1.4.1.1.6.3",
    ):
        assert contexts[uid] == wanted, uid
    assert "1.2.840.10008.1.3.10" not in contexts  # the DICOMDIR is no network object


def test_modality_prefixes() -> None:
    assert modality_prefix(CT_IMAGE) == "CT"
    assert modality_prefix(MR_IMAGE) == "MR"
    assert modality_prefix("1.2.840.10008.5.1.4.1.1.88.33") == "SRc"
    assert modality_prefix("1.2.840.10008.5.1.4.1.1.7") == "SC"
    assert modality_prefix("1.2.3") == "UNKNOWN"
