"""Association.move(): C-MOVE SCU against a pynetdicom Q/R source, third-party destination
DCMTK storescp (so this exercises the C-MOVE side alone, no aiomove Storage SCP)."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from pydicom import Dataset, dcmread
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from aiomove.association import UNCOMPRESSED, Peer, connect
from aiomove.proto import uids
from tests.peers import pynetdicom_qr, storescp

pytestmark = [pytest.mark.interop, pytest.mark.anyio]

MOVE_CONTEXTS = [(uids.STUDY_ROOT_QR_MOVE, UNCOMPRESSED), (uids.VERIFICATION, UNCOMPRESSED)]


def make_series(tmp_path: Path, count: int) -> tuple[str, list[str], list[Path]]:
    """`count` CT instances of one study (pydicom's CT_small with fresh UIDs)."""
    source = dcmread(str(get_testdata_file("CT_small.dcm")))
    study = generate_uid()
    series = generate_uid()
    paths, sops = [], []
    for n in range(count):
        ds = source.copy()
        ds.StudyInstanceUID = study
        ds.SeriesInstanceUID = series
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = n + 1
        path = tmp_path / f"src{n}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
        sops.append(ds.SOPInstanceUID)
    return study, sops, paths


def study_query(study: str) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    ds.StudyInstanceUID = study
    return ds


@pytest.fixture(params=["asyncio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_move_streams_pending_responses_and_succeeds(tmp_path: Path) -> None:
    study, sops, files = make_series(tmp_path, 4)
    out = tmp_path / "out"
    out.mkdir()
    with (
        storescp("-aet", "STORE", out_dir=out) as store_port,
        pynetdicom_qr(files, {"STORE": store_port}) as qr_port,
    ):
        async with connect(Peer("127.0.0.1", qr_port, "PYQRSCP"), contexts=MOVE_CONTEXTS) as assoc:
            responses = []
            async with assoc.move(study_query(study), "STORE") as operation:
                async for rsp in operation:
                    responses.append(rsp)
    assert [r.status.is_pending for r in responses] == [True] * 4 + [False]
    assert [r.remaining for r in responses[:-1]] == [3, 2, 1, 0]
    assert [r.completed for r in responses[:-1]] == [1, 2, 3, 4]
    final = responses[-1]
    assert final.status.is_success
    assert (final.completed, final.failed, final.warning) == (4, 0, 0)
    stored = {dcmread(p).SOPInstanceUID for p in out.iterdir()}
    assert stored == set(sops)


async def test_unknown_destination_is_a801(tmp_path: Path) -> None:
    study, _, files = make_series(tmp_path, 1)
    with pynetdicom_qr(files, {}) as qr_port:
        peer = Peer("127.0.0.1", qr_port, "PYQRSCP")
        async with (
            connect(peer, contexts=MOVE_CONTEXTS) as assoc,
            assoc.move(study_query(study), "NOWHERE") as operation,
        ):
            responses = [rsp async for rsp in operation]
    assert len(responses) == 1
    assert responses[0].status.code == 0xA801
    assert responses[0].status.is_failure


async def test_cancel_after_n_responses(tmp_path: Path) -> None:
    study, _, files = make_series(tmp_path, 2)
    out = tmp_path / "out"
    out.mkdir()
    with (
        storescp(out_dir=out) as store_port,
        pynetdicom_qr(files, {"STORE": store_port}, "--cycle") as qr_port,
    ):
        async with connect(Peer("127.0.0.1", qr_port, "PYQRSCP"), contexts=MOVE_CONTEXTS) as assoc:
            seen = []
            async with assoc.move(study_query(study), "STORE") as operation:
                async for rsp in operation:
                    seen.append(rsp)
                    if len(seen) == 3:
                        await operation.cancel()
            # the association is still usable after the cancelled move
            assert (await assoc.echo()).is_success
    assert seen[-1].status.code == 0xFE00
    assert seen[-1].status.is_cancel
    assert all(r.status.is_pending for r in seen[:-1])


async def test_leaving_the_block_early_sends_c_cancel(tmp_path: Path) -> None:
    study, _, files = make_series(tmp_path, 2)
    out = tmp_path / "out"
    out.mkdir()
    with (
        storescp(out_dir=out) as store_port,
        pynetdicom_qr(files, {"STORE": store_port}, "--cycle") as qr_port,
    ):
        async with connect(Peer("127.0.0.1", qr_port, "PYQRSCP"), contexts=MOVE_CONTEXTS) as assoc:
            async with assoc.move(study_query(study), "STORE") as operation:
                async for _ in operation:
                    break
            assert operation.cancelled
            assert operation.final is not None
            assert operation.final.status.is_cancel
            assert (await assoc.echo()).is_success


async def test_cancelled_scope_cancels_the_move(tmp_path: Path) -> None:
    study, _, files = make_series(tmp_path, 2)
    with (
        storescp() as store_port,
        pynetdicom_qr(files, {"STORE": store_port}, "--cycle") as qr_port,
    ):
        async with connect(Peer("127.0.0.1", qr_port, "PYQRSCP"), contexts=MOVE_CONTEXTS) as assoc:
            with anyio.CancelScope() as scope:
                async with assoc.move(study_query(study), "STORE") as operation:
                    async for _ in operation:
                        scope.cancel()
            assert operation.cancelled
            assert operation.final is not None
            assert operation.final.status.is_cancel
