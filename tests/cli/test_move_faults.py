"""`aiomove move` against move sources that misbehave in ways real peers cannot be made to.

Each source is a test double built from aiomove's own library: `serve()` with a C-MOVE-RQ
handler for the C-MOVE side and `connect()` for the storage association it opens to our
`+P` port. It runs in the test's task group (no threads) while the real command runs in a
subprocess (`anyio.run_process`). `fail_after` bounds are hang detectors only.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import anyio.abc
import pytest
from pydicom.uid import generate_uid

from aiomove.association import UNCOMPRESSED, Association, Peer, connect
from aiomove.errors import AiomoveError
from aiomove.proto import uids
from aiomove.proto.dimse import CEchoRQ, CMoveRQ, CStoreRQ, DimseMessage, make_response
from aiomove.server import AcceptorConfig, handle_echo, serve
from tests.cli.move_util import CT_IMAGE, MOVE, names, report, study_keys
from tests.peers import free_port
from tests.store_util import c_store, encode, make_dataset

pytestmark = pytest.mark.anyio

LOOPBACK = "127.0.0.1"
#: Hang detector for one run of the command (a correct run takes a few seconds).
HANG = 60.0

MoveHandler = Callable[[Association, int, CMoveRQ], Awaitable[None]]


@pytest.fixture(params=["asyncio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def final_success(rq: CMoveRQ, completed: int) -> DimseMessage:
    """A final C-MOVE-RSP Success (PS3.4 C.4.2.1.4: counters, no remaining count)."""
    return make_response(
        rq,
        0x0000,
        number_of_completed_suboperations=completed,
        number_of_failed_suboperations=0,
        number_of_warning_suboperations=0,
    )


def ct_instance() -> tuple[bytes, str]:
    """A small CT data set in explicit VR little endian, and its SOP Instance UID."""
    uid = generate_uid()
    return encode(make_dataset(uid, pixel_bytes=8192), uids.EXPLICIT_VR_LE), uid


def storage_peer(port: int) -> Peer:
    """Our embedded Storage SCP as the source sees it (destination MOVESCU)."""
    return Peer(LOOPBACK, port, "MOVESCU")


STORAGE_CONTEXTS = [(CT_IMAGE, (uids.EXPLICIT_VR_LE,))]


async def move_source(handle: MoveHandler, *, task_status: anyio.abc.TaskStatus[int]) -> None:
    """A Study Root Q/R SCP whose C-MOVE-RQ handler is `handle`; reports its port."""

    async def dispatch(assoc: Association, context_id: int, message: DimseMessage) -> None:
        assert isinstance(message, CMoveRQ)
        await assoc.read_dataset()  # the identifier: these sources move whatever was asked
        await handle(assoc, context_id, message)

    config = AcceptorConfig(
        ae_title="FAULTY",
        contexts={uids.STUDY_ROOT_QR_MOVE: UNCOMPRESSED, uids.STUDY_ROOT_QR_FIND: UNCOMPRESSED},
        handlers={CMoveRQ: dispatch, CEchoRQ: handle_echo},
    )
    await serve(config, LOOPBACK, 0, task_status=task_status)


async def run_command(tmp_path: Path, *args: str) -> tuple[int, str]:
    """The real `aiomove move` in a subprocess: (exit code, stderr)."""
    with anyio.fail_after(HANG):
        result = await anyio.run_process([*MOVE, *args], check=False, cwd=tmp_path)
    return result.returncode, result.stderr.decode()


def to_self(port: int, out: Path, qr_port: int, *extra: str) -> list[str]:
    """Retrieve (any study: the doubles ignore the query) to our +P port, report in r.json."""
    opts = ["-S", "-aec", "FAULTY", "+P", str(port), "-od", str(out), "--report", "r.json"]
    return [*opts, *study_keys(generate_uid()), *extra, LOOPBACK, str(qr_port)]


async def test_storage_association_never_released_is_aborted_after_linger(
    tmp_path: Path,
) -> None:
    """The source stores one instance, answers Success, and keeps the storage association
    open forever (DCMTK movescu would wait for it): `--linger 1` aborts it and finishes."""
    port, out = free_port(), tmp_path / "out"
    out.mkdir()
    data, uid = ct_instance()
    peer_saw_abort = anyio.Event()

    async def hold_storage(*, task_status: anyio.abc.TaskStatus[int]) -> None:
        try:
            async with connect(
                storage_peer(port), ae_title="FAULTY", contexts=STORAGE_CONTEXTS
            ) as storage:
                rsp = await c_store(storage, data, uid)
                task_status.started(rsp.status)
                await storage.receive()  # never release; only their A-ABORT ends this
        except AiomoveError:
            peer_saw_abort.set()

    async with anyio.create_task_group() as tg:

        async def handle(assoc: Association, context_id: int, rq: CMoveRQ) -> None:
            store_status = await tg.start(hold_storage)
            assert store_status == 0x0000
            await assoc.send(final_success(rq, completed=1), context_id)

        qr_port = await tg.start(move_source, handle)
        code, stderr = await run_command(tmp_path, *to_self(port, out, qr_port, "--linger", "1"))
        with anyio.fail_after(HANG):
            await peer_saw_abort.wait()
        tg.cancel_scope.cancel()

    assert code == 0, stderr
    [request] = report(tmp_path / "r.json")["requests"]
    assert request["status"] == "0x0000"
    assert request["storage_associations_aborted"] == 1
    assert [r["sop_instance_uid"] for r in request["received"]] == [uid]
    assert names(out) == {f"CT.{uid}"}


async def test_stalled_data_set_times_out_and_leaves_no_file(tmp_path: Path) -> None:
    """C-STORE-RQ and half its data set, then silence on both associations. With `-td 1`
    the command ends with 69 (EXIT_CMOVE_ERROR: no final C-MOVE-RSP within the DIMSE
    timeout, a DimseTimeout), and -od holds neither a partial nor a temporary file."""
    port, out = free_port(), tmp_path / "out"
    out.mkdir()
    data, uid = ct_instance()
    storage_ended = anyio.Event()
    move_ended = anyio.Event()

    async def half_store(*, task_status: anyio.abc.TaskStatus[None]) -> None:
        try:
            async with connect(
                storage_peer(port), ae_title="FAULTY", contexts=STORAGE_CONTEXTS
            ) as storage:
                context_id = storage.contexts[0].context_id
                rq = CStoreRQ(
                    message_id=1, affected_sop_class_uid=CT_IMAGE, affected_sop_instance_uid=uid
                )
                await storage.send(rq, context_id)  # the command set alone
                half = data[: len(data) // 2]  # one data PDV, not the last (PS3.8 E.2)
                storage.link.conn.send_pdv(context_id, False, False, half, storage.link.now())
                await storage.link.flush()
                task_status.started()
                await storage.receive()  # stall until they give up on us
        except AiomoveError:
            storage_ended.set()

    async with anyio.create_task_group() as tg:

        async def handle(assoc: Association, context_id: int, rq: CMoveRQ) -> None:
            await tg.start(half_store)
            try:  # never answer; read (and ignore) their C-CANCEL until they go
                while await assoc.receive_command() is not None:
                    pass
            finally:
                move_ended.set()

        qr_port = await tg.start(move_source, handle)
        code, stderr = await run_command(tmp_path, *to_self(port, out, qr_port, "-td", "1"))
        with anyio.fail_after(HANG):
            await storage_ended.wait()
            await move_ended.wait()
        tg.cancel_scope.cancel()

    assert code == 69, stderr
    assert stderr.splitlines()[-1].startswith("aiomove move: error:")
    assert names(out) == set()  # no CT.<uid>, no .CT.<uid>.part-*


async def test_success_before_the_stores_waits_for_them(tmp_path: Path) -> None:
    """Orthanc's order: the final C-MOVE-RSP (Success, 2 completed) first, then a storage
    association with the two C-STOREs. The linger waits for both; exit 0."""
    port, out = free_port(), tmp_path / "out"
    out.mkdir()
    instances = [ct_instance(), ct_instance()]
    source_errors: list[str] = []  # e.g. nobody listening any more: they did not wait

    async def store_later(rq: CMoveRQ) -> None:
        try:
            async with connect(
                storage_peer(port), ae_title="FAULTY", contexts=STORAGE_CONTEXTS
            ) as storage:
                for data, uid in instances:
                    rsp = await c_store(storage, data, uid)
                    assert rsp.status == 0x0000
        except AiomoveError as exc:
            source_errors.append(str(exc))

    async with anyio.create_task_group() as tg:

        async def handle(assoc: Association, context_id: int, rq: CMoveRQ) -> None:
            await assoc.send(final_success(rq, completed=2), context_id)
            tg.start_soon(store_later, rq)

        qr_port = await tg.start(move_source, handle)
        code, stderr = await run_command(tmp_path, "-v", *to_self(port, out, qr_port))
        tg.cancel_scope.cancel()

    assert code == 0, stderr
    assert names(out) == {f"CT.{uid}" for _, uid in instances}
    assert source_errors == []
    # the scenario really happened: the final response was logged before any instance
    assert stderr.index("c_move.final") < stderr.index("c_store.received")
    [request] = report(tmp_path / "r.json")["requests"]
    assert request["completed"] == 2
    assert {r["sop_instance_uid"] for r in request["received"]} == {u for _, u in instances}
    assert request["expected_not_received"] == []
    assert request["storage_associations_aborted"] == 0
