"""RetrieveSession: many concurrent C-MOVEs into one shared Storage SCP port.

Real sources (DCMTK dcmqrscp, Orthanc) for concurrency and attribution; a double built on
aiomove's own server for the source that omits the Move Originator fields (no real peer can be
configured to leave them out).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pydicom
import pytest
from pydicom import Dataset

from aiomove.association import Association, Peer, Timeouts, connect
from aiomove.proto import uids
from aiomove.proto.dimse import CEchoRQ, CMoveRQ, CStoreRQ, DimseMessage, make_response
from aiomove.query import decode_identifier
from aiomove.retrieve import RetrieveResult, open_session, retrieve
from aiomove.server import AcceptorConfig, handle_echo, serve
from aiomove.storage import FileSink
from tests.peers import free_port
from tests.sampledata import StudyInfo, make_study
from tests.sources import HOST, dcmqrscp, orthanc

pytestmark = [pytest.mark.interop, pytest.mark.anyio]

AE = "AIOMOVE"
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
SERIES = 16


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> StudyInfo:
    return make_study(tmp_path_factory.mktemp("study"), n_series=SERIES, n_instances=2)


def series_query(study: StudyInfo, series: str) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = "SERIES"
    ds.StudyInstanceUID = study.study_uid
    ds.SeriesInstanceUID = series
    return ds


@pytest.fixture(params=["dcmqrscp", "orthanc"])
def source(
    request: pytest.FixtureRequest, tmp_path: Path, study: StudyInfo
) -> Iterator[tuple[Any, int]]:
    port = free_port()
    factory: Any = {"dcmqrscp": dcmqrscp, "orthanc": orthanc}[str(request.param)]
    (tmp_path / "src").mkdir()
    with factory(tmp_path / "src", study.files, peers={AE: (HOST, port)}) as src:
        yield src, port


def check_attribution(results: list[RetrieveResult], study: StudyInfo) -> None:
    for result in results:
        series = str(result.query.SeriesInstanceUID)
        assert result.error is None, result.error
        assert result.final is not None
        assert result.final.status.is_success
        assert result.complete
        assert result.duplicates == []
        # every instance of its series, attributed to this retrieve and to no other
        assert sorted(r.sop_instance_uid for r in result.received) == sorted(
            study.sop_instance_uids[series]
        )


async def test_16_concurrent_series_share_one_port(
    source: tuple[Any, int], study: StudyInfo, tmp_path: Path
) -> None:
    src, port = source
    out = tmp_path / "out"
    out.mkdir()
    queries = [series_query(study, s) for s in study.series_uids]
    async with open_session(FileSink(out), port=port, ae_title=AE, per_peer_limit=4) as session:
        results: list[RetrieveResult] = []

        async def one(query: Dataset) -> None:
            results.append(await session.retrieve(src.peer, query))

        with anyio.fail_after(120):  # hang detector
            async with anyio.create_task_group() as tg:
                for query in queries:
                    tg.start_soon(one, query)
        assert session.unattributed == []
        # the per-peer limit held, and it was reached (the retrieves did overlap)
        assert max(session.peak_associations.values()) == 4
    assert len(results) == SERIES
    check_attribution(results, study)
    assert {p.name.split(".", 1)[1] for p in out.iterdir()} == set(study.instance_uids)


async def test_retrieve_helper_reports_partial_failure(tmp_path: Path) -> None:
    """A sub-operation that fails for real shows in the result: warning status, the failed
    UID, not complete. dcmqrscp cannot transcode, and our default preference refuses JPEG
    (Orthanc would decompress it and succeed)."""
    from tests.sampledata import corpus_files, corpus_study

    corpus = corpus_study(
        tmp_path / "corpus", corpus_files(["CT_small.dcm", "SC_rgb_jpeg_dcmtk.dcm"])
    )
    port = free_port()
    (tmp_path / "src").mkdir()
    out = tmp_path / "out"
    out.mkdir()
    with dcmqrscp(tmp_path / "src", corpus.files, peers={AE: (HOST, port)}) as src:
        query = Dataset()
        query.QueryRetrieveLevel = "STUDY"
        query.StudyInstanceUID = corpus.study_uid
        [result] = await retrieve(src.peer, query, sink=FileSink(out), port=port, ae_title=AE)
    jpeg = next(u for u, ts in corpus.transfer_syntaxes.items() if ts != uids.EXPLICIT_VR_LE)
    assert result.final is not None
    assert not result.final.status.is_success
    assert not result.complete
    assert jpeg not in result.stored_uids
    assert len(result.stored_uids) == 1
    assert result.final.status.is_warning
    assert jpeg in result.failed_sop_instance_uids


# --- a source that omits the Move Originator fields ---------------------------------------


def silent_source(files_by_series: dict[str, list[Path]], destination_port: int) -> AcceptorConfig:
    """A C-MOVE SCP that sends C-STOREs without Move Originator AE title / Message ID."""

    async def handle_move(assoc: Association, context_id: int, rq: DimseMessage) -> None:
        assert isinstance(rq, CMoveRQ)
        identifier = decode_identifier(await assoc.read_dataset(), uids.IMPLICIT_VR_LE)
        files = files_by_series[str(identifier.SeriesInstanceUID)]
        async with connect(
            Peer("127.0.0.1", destination_port, rq.move_destination),
            ae_title="SILENT",
            contexts=[(CT_IMAGE, (uids.EXPLICIT_VR_LE,))],
            timeouts=Timeouts(acse=10, dimse=30),
        ) as storage:
            ctx = storage.context_for(CT_IMAGE)
            for path in files:
                ds = pydicom.dcmread(path)
                data = path.read_bytes()
                offset = data.index(b"DICM") + 4
                group_length = int.from_bytes(data[offset + 8 : offset + 12], "little")
                body = data[offset + 12 + group_length :]
                store = CStoreRQ(
                    message_id=storage.next_message_id(),
                    affected_sop_class_uid=str(ds.SOPClassUID),
                    affected_sop_instance_uid=str(ds.SOPInstanceUID),
                )
                await storage.send(store, ctx.context_id, body)
                await storage.receive_command()
        final = make_response(
            rq,
            0x0000,
            number_of_completed_suboperations=len(files),
            number_of_failed_suboperations=0,
            number_of_warning_suboperations=0,
            number_of_remaining_suboperations=0,
        )
        await assoc.send(final, context_id)

    return AcceptorConfig(
        ae_title="SILENT",
        contexts={
            uids.STUDY_ROOT_QR_MOVE: (uids.IMPLICIT_VR_LE,),
            uids.VERIFICATION: (uids.IMPLICIT_VR_LE,),
        },
        handlers={CMoveRQ: handle_move, CEchoRQ: handle_echo},
    )


async def test_source_without_move_originator_is_matched_by_content(tmp_path: Path) -> None:
    study = make_study(tmp_path / "study", n_series=3, n_instances=2, seed=7)
    by_series = {s: [study.paths[u] for u in study.sop_instance_uids[s]] for s in study.series_uids}
    out = tmp_path / "out"
    out.mkdir()
    async with open_session(FileSink(out), ae_title=AE, per_peer_limit=3) as session:
        async with anyio.create_task_group() as tg:
            source_port = await tg.start(serve, silent_source(by_series, session.port), "127.0.0.1")
            peer = Peer("127.0.0.1", source_port, "SILENT")
            results: list[RetrieveResult] = []

            async def one(series: str) -> None:
                query = Dataset()
                query.QueryRetrieveLevel = "SERIES"
                query.StudyInstanceUID = study.study_uid
                query.SeriesInstanceUID = series
                results.append(await session.retrieve(peer, query))

            with anyio.fail_after(60):
                async with anyio.create_task_group() as moves:
                    for series in study.series_uids:
                        moves.start_soon(one, series)
            tg.cancel_scope.cancel()
        assert session.unattributed == []
    for result in results:
        series = str(result.query.SeriesInstanceUID)
        assert sorted(r.sop_instance_uid for r in result.received) == sorted(
            study.sop_instance_uids[series]
        ), "a store without Move Originator was attributed to the wrong retrieve"
        assert result.complete
