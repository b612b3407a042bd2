"""Association.find() / find_all(): C-FIND SCU against DCMTK dcmqrscp and Orthanc, and against
aiomove's own acceptor made to do what real sources will not (wrong message ID, ignored
C-CANCEL, Pending with warnings, a failure with an error comment).

The archive holds two studies: a small one (2 series x 3 CT instances) the queries look for,
and a 200-instance MR series, long enough that C-CANCEL arrives while matches are still being
sent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import pytest
from pydicom import Dataset

from aiomove.association import UNCOMPRESSED, Association, Peer, Timeouts, connect
from aiomove.errors import AssociationAborted, RemoteProtocolError, StatusError
from aiomove.find import FindOperation, FindResponse, find_all
from aiomove.proto import uids
from aiomove.proto.dimse import CCancelRQ, CEchoRQ, CFindRQ, DimseMessage, make_response
from aiomove.query import decode_identifier, encode_identifier
from aiomove.server import AcceptorConfig, handle_echo, serve
from tests.sampledata import StudyInfo, make_study, uid
from tests.sources import Source, dcmqrscp, orthanc

pytestmark = [pytest.mark.interop, pytest.mark.anyio]

SOURCES = {"dcmqrscp": dcmqrscp, "orthanc": orthanc}
#: Which source fills the "Number of Study/Series Related Instances" return keys (PS3.4
#: C.6.1.1.2, optional): Orthanc computes them, dcmqrscp leaves them out of its responses.
COUNTS_SUPPORTED = {"dcmqrscp": False, "orthanc": True}
LONG_SERIES = 200
CONTEXTS = [
    (uids.STUDY_ROOT_QR_FIND, UNCOMPRESSED),
    (uids.PATIENT_ROOT_QR_FIND, UNCOMPRESSED),
    (uids.VERIFICATION, UNCOMPRESSED),
]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Archive:
    source: Source
    study: StudyInfo
    long: StudyInfo


@pytest.fixture(scope="module", params=sorted(SOURCES))
def archive(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Archive]:
    data = tmp_path_factory.mktemp("find-data")
    study = make_study(data / "small", patient_id="FIND1", n_series=2, n_instances=3)
    long = make_study(
        data / "long",
        patient_id="FIND2",
        modality="MR",
        n_series=1,
        n_instances=LONG_SERIES,
        rows=8,
        cols=8,
    )
    kind = str(request.param)
    factory: Any = SOURCES[kind]
    with factory(tmp_path_factory.mktemp(kind), [*study.files, *long.files]) as source:
        yield Archive(source, study, long)


def query(level: str, **keys: str) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    return ds


async def collect(assoc: Association, identifier: Dataset, model: str) -> list[FindResponse]:
    async with assoc.find(identifier, model=model) as responses:
        return [rsp async for rsp in responses]


# --- real sources ----------------------------------------------------------------------------


async def test_study_level_returns_the_study_with_its_return_keys(archive: Archive) -> None:
    study = archive.study
    identifier = query(
        "STUDY",
        PatientID=study.patient_id,
        StudyInstanceUID="",
        PatientName="",
        NumberOfStudyRelatedInstances="",
    )
    async with connect(archive.source.peer, contexts=CONTEXTS) as assoc:
        responses = await collect(assoc, identifier, uids.STUDY_ROOT_QR_FIND)
    *pending, final = responses
    assert final.status.is_success
    assert final.identifier is None
    assert [r.status.code for r in pending] == [0xFF00]
    match = pending[0].identifier
    assert match is not None
    assert match.PatientID == study.patient_id
    assert match.StudyInstanceUID == study.study_uid
    assert str(match.PatientName) == study.patient_name
    assert match.QueryRetrieveLevel == "STUDY"
    count = match.get("NumberOfStudyRelatedInstances")
    if COUNTS_SUPPORTED[archive.source.kind]:
        assert count == 6
    else:
        assert count in (None, "")


async def test_series_level_under_the_study(archive: Archive) -> None:
    study = archive.study
    identifier = query("SERIES", StudyInstanceUID=study.study_uid, SeriesInstanceUID="")
    identifier.NumberOfSeriesRelatedInstances = ""
    async with connect(archive.source.peer, contexts=CONTEXTS) as assoc:
        responses = await collect(assoc, identifier, uids.STUDY_ROOT_QR_FIND)
    matches = [r.identifier for r in responses if r.is_match]
    assert responses[-1].status.is_success
    assert len(matches) == len(responses) - 1
    assert {m.SeriesInstanceUID for m in matches if m} == set(study.series_uids)
    assert all(m is not None and m.StudyInstanceUID == study.study_uid for m in matches)
    if COUNTS_SUPPORTED[archive.source.kind]:
        assert [m.NumberOfSeriesRelatedInstances for m in matches if m] == [3, 3]


async def test_patient_root_patient_level(archive: Archive) -> None:
    identifier = query("PATIENT", PatientID="FIND*", PatientName="")
    async with connect(archive.source.peer, contexts=CONTEXTS) as assoc:
        responses = await collect(assoc, identifier, uids.PATIENT_ROOT_QR_FIND)
    found = {r.identifier.PatientID for r in responses if r.identifier is not None}
    assert found == {"FIND1", "FIND2"}
    assert responses[-1].status.is_success


async def test_no_match_is_one_success_response(archive: Archive) -> None:
    identifier = query("STUDY", StudyInstanceUID=uid("no such study"), PatientID="")
    async with connect(archive.source.peer, contexts=CONTEXTS) as assoc:
        responses = await collect(assoc, identifier, uids.STUDY_ROOT_QR_FIND)
    assert len(responses) == 1
    assert responses[0].status.is_success
    assert not responses[0].is_match


async def test_find_all_and_its_limit(archive: Archive) -> None:
    long = archive.long
    identifier = query(
        "IMAGE",
        StudyInstanceUID=long.study_uid,
        SeriesInstanceUID=long.series_uids[0],
        SOPInstanceUID="",
    )
    everything = await find_all(archive.source.peer, identifier)
    assert sorted(m.SOPInstanceUID for m in everything) == sorted(long.instance_uids)
    first = await find_all(archive.source.peer, identifier, limit=3)
    assert len(first) == 3
    assert {m.SOPInstanceUID for m in first} <= set(long.instance_uids)


async def test_leaving_early_sends_c_cancel_and_the_association_stays_usable(
    archive: Archive,
) -> None:
    long = archive.long
    identifier = query(
        "IMAGE",
        StudyInstanceUID=long.study_uid,
        SeriesInstanceUID=long.series_uids[0],
        SOPInstanceUID="",
    )
    async with connect(archive.source.peer, contexts=CONTEXTS) as assoc:
        async with assoc.find(identifier) as operation:
            async for rsp in operation:
                assert rsp.is_match
                break
        assert operation.cancelled
        final = operation.final
        assert final is not None
        # Both sources stop matching on C-CANCEL (0xFE00); one that had already sent every
        # match may end with Success instead (PS3.7 §9.3.2.3).
        assert final.status.is_cancel or (final.status.is_success and operation.matches == 200)
        assert operation.responses <= LONG_SERIES + 1
        assert (await assoc.echo()).is_success
        # and the next query on the same association works
        responses = await collect(
            assoc, query("STUDY", StudyInstanceUID=archive.study.study_uid), uids.STUDY_ROOT_QR_FIND
        )
        assert [r.is_match for r in responses] == [True, False]


# --- aiomove's own C-FIND SCP, misbehaving on purpose --------------------------------------

Behaviour = Callable[["FakeScp", Association, int, CFindRQ, Dataset], Awaitable[None]]


@dataclass
class FakeScp:
    """A C-FIND SCP whose answer to each request is `behaviour`; records the C-CANCELs seen."""

    behaviour: Behaviour
    cancels: list[int] = field(default_factory=list)
    pending_sent: int = 0

    async def send(
        self,
        assoc: Association,
        ctx: int,
        rq: CFindRQ,
        status: int,
        ds: Dataset | None = None,
        **fields: Any,
    ) -> None:
        ts = assoc.context_for(rq.affected_sop_class_uid).transfer_syntax
        data = None if ds is None else encode_identifier(ds, ts)
        rsp = make_response(rq, status, has_dataset=data is not None, **fields)
        await assoc.send(rsp, ctx, data)
        if status in (0xFF00, 0xFF01):
            self.pending_sent += 1


def match(n: int) -> Dataset:
    return query("STUDY", StudyInstanceUID=uid("fake", n), PatientID=f"P{n}")


@asynccontextmanager
async def fake_scp(behaviour: Behaviour) -> AsyncIterator[tuple[FakeScp, Peer]]:
    scp = FakeScp(behaviour)

    async def handle(assoc: Association, ctx: int, rq: DimseMessage) -> None:
        assert isinstance(rq, CFindRQ)
        ts = assoc.context_for(rq.affected_sop_class_uid).transfer_syntax
        identifier = decode_identifier(await assoc.read_dataset(), ts)
        await scp.behaviour(scp, assoc, ctx, rq, identifier)

    config = AcceptorConfig(
        ae_title="FAKE",
        contexts={uids.STUDY_ROOT_QR_FIND: UNCOMPRESSED, uids.VERIFICATION: UNCOMPRESSED},
        handlers={CFindRQ: handle, CEchoRQ: handle_echo},
        timeouts=Timeouts(acse=5.0, dimse=10.0),
    )
    async with anyio.create_task_group() as tg:
        port = await tg.start(serve, config, "127.0.0.1", 0)
        yield scp, Peer("127.0.0.1", port, "FAKE")
        tg.cancel_scope.cancel()


async def wrong_message_id(scp: FakeScp, assoc: Association, ctx: int, rq: CFindRQ, _: Any) -> None:
    rsp = make_response(rq, 0x0000, message_id_being_responded_to=rq.message_id + 7)
    await assoc.send(rsp, ctx)


async def pending_with_warnings(
    scp: FakeScp, assoc: Association, ctx: int, rq: CFindRQ, _: Any
) -> None:
    await scp.send(assoc, ctx, rq, 0xFF01, match(1))
    await scp.send(assoc, ctx, rq, 0xFF00, match(2))
    await scp.send(assoc, ctx, rq, 0x0000, match(99))  # a final with a data set: read, kept aside


async def failure_with_comment(
    scp: FakeScp, assoc: Association, ctx: int, rq: CFindRQ, _: Any
) -> None:
    await scp.send(
        assoc, ctx, rq, 0xA900, error_comment="no such level", offending_element=(0x00080052,)
    )


async def ignore_cancel(scp: FakeScp, assoc: Association, ctx: int, rq: CFindRQ, _: Any) -> None:
    with anyio.move_on_after(5):
        for n in range(50):
            await scp.send(assoc, ctx, rq, 0xFF00, match(n))
            await anyio.sleep(0.1)
        await scp.send(assoc, ctx, rq, 0x0000)


async def honour_cancel(scp: FakeScp, assoc: Association, ctx: int, rq: CFindRQ, _: Any) -> None:
    """Matches every 10 ms until a C-CANCEL for this request arrives, then 0xFE00."""
    cancelled = anyio.Event()

    async def watch() -> None:
        got = await assoc.receive_command()
        if got is not None and isinstance(got.message, CCancelRQ):
            scp.cancels.append(got.message.message_id_being_responded_to)
            cancelled.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(watch)
        for n in range(500):
            if cancelled.is_set():
                break
            await scp.send(assoc, ctx, rq, 0xFF00, match(n))
            await anyio.sleep(0.01)
        await scp.send(assoc, ctx, rq, 0xFE00 if cancelled.is_set() else 0x0000)
        tg.cancel_scope.cancel()


async def wait_for_cancel(scp: FakeScp, assoc: Association, ctx: int, rq: CFindRQ, _: Any) -> None:
    """Up to 4 matches, each followed by up to 0.5 s for a C-CANCEL (then 0xFE00 at once):
    a requestor's `--cancel n` shows as exactly n matches."""
    for n in range(4):
        await scp.send(assoc, ctx, rq, 0xFF00, match(n))
        with anyio.move_on_after(0.5):
            got = await assoc.receive_command()
            if got is not None and isinstance(got.message, CCancelRQ):
                scp.cancels.append(got.message.message_id_being_responded_to)
                await scp.send(assoc, ctx, rq, 0xFE00)
                return
    await scp.send(assoc, ctx, rq, 0x0000)


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_wrong_message_id_aborts(anyio_backend: str) -> None:
    established: list[bool] = []

    async def run(peer: Peer) -> None:
        async with connect(peer, contexts=CONTEXTS[:1]) as assoc:
            try:
                await collect(assoc, match(0), uids.STUDY_ROOT_QR_FIND)
            finally:
                established.append(assoc.is_established)

    async with fake_scp(wrong_message_id) as (_, peer):
        with pytest.raises(RemoteProtocolError, match="C-FIND-RSP to message 1"):
            await run(peer)
    assert established == [False]  # aborted by find itself, not left waiting


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_pending_with_warnings_carry_matches(anyio_backend: str) -> None:
    async with (
        fake_scp(pending_with_warnings) as (_, peer),
        connect(peer, contexts=[CONTEXTS[0], CONTEXTS[2]]) as assoc,
    ):
        responses = await collect(assoc, match(0), uids.STUDY_ROOT_QR_FIND)
        # the final's unexpected data set was consumed: the next exchange is in step
        assert (await assoc.echo()).is_success
    assert [r.status.code for r in responses] == [0xFF01, 0xFF00, 0x0000]
    assert [r.is_match for r in responses] == [True, True, False]
    assert [r.identifier.PatientID for r in responses if r.identifier] == ["P1", "P2", "P99"]
    assert responses[0].raw is not None
    assert decode_identifier(responses[0].raw, responses[0].transfer_syntax) == match(1)


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_failure_status_with_comment(anyio_backend: str) -> None:
    async with fake_scp(failure_with_comment) as (_, peer):
        async with connect(peer, contexts=CONTEXTS[:1]) as assoc:
            [final] = await collect(assoc, match(0), uids.STUDY_ROOT_QR_FIND)
        with pytest.raises(StatusError) as caught:
            await find_all(peer, match(0))
    assert final.status.code == 0xA900
    assert final.status.is_failure
    assert final.error_comment == "no such level"
    assert final.offending_element == (0x00080052,)
    assert caught.value.status == 0xA900


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_c_cancel_names_the_request_and_ends_in_cancel(anyio_backend: str) -> None:
    async with (
        fake_scp(honour_cancel) as (scp, peer),
        connect(peer, contexts=[CONTEXTS[0], CONTEXTS[2]]) as assoc,
    ):
        async with assoc.find(match(0)) as operation:
            async for _ in operation:
                if operation.responses == 3:
                    await operation.cancel()
        assert (await assoc.echo()).is_success
    assert scp.cancels == [operation.message_id]
    assert operation.final is not None
    assert operation.final.status.code == 0xFE00
    # matches sent before the SCP saw the C-CANCEL are still delivered, in order
    assert operation.matches == scp.pending_sent >= 3


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_ignored_c_cancel_is_bounded_then_aborted(anyio_backend: str) -> None:
    seen: list[tuple[Association, FindOperation]] = []

    async def run(peer: Peer) -> None:
        async with (
            connect(peer, contexts=CONTEXTS[:1], timeouts=Timeouts(acse=0.5)) as assoc,
            assoc.find(match(0)) as operation,
        ):
            seen.append((assoc, operation))
            async for _ in operation:
                break

    async with fake_scp(ignore_cancel) as (_, peer):
        started = anyio.current_time()
        with pytest.raises(AssociationAborted, match="C-CANCEL"):
            await run(peer)
        elapsed = anyio.current_time() - started
    [(assoc, operation)] = seen
    assert operation.cancelled
    assert operation.final is None
    assert not assoc.is_established
    assert elapsed < 3  # -ta (0.5 s), not the 5 s the SCP would take
