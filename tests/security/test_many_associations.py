"""500 associations at once into one serve(), then peers vanishing mid data set.

aiomove's own connect() opens 500 storage associations from one event loop (three C-STOREs
each) while DCMTK storescu processes send too. Every file must be complete (its data set part
equal to what was sent) with no temporary file left; then raw peers drop their connection in
the middle of a data set large enough to have a temporary file on disk, and none may remain;
the server must still answer a C-ECHO afterwards.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
import structlog.testing

from aiomove.association import Peer, Timeouts, connect
from aiomove.server import ActiveAssociations, serve
from aiomove.storage import (
    WRITE_BUFFER,
    FileSink,
    StoreRequest,
    StoreResult,
    closing,
    storage_config,
)
from tests.net.hostile_util import RawPeer, p_data, pdv
from tests.peers import dcmtk
from tests.security.util import (
    CT_IMAGE,
    assert_serving,
    data_pdus,
    events,
    raw_storage_association,
    small_dataset,
    store_rq_command,
)
from tests.store_util import c_store, make_dataset

ASSOCIATIONS = 500
PER_ASSOCIATION = 3
STORESCU_PROCESSES = 3
STORESCU_FILES = 4
VANISHING = 20
PATIENT = Timeouts(connect=120.0, acse=120.0, dimse=120.0)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # one back end: the point is the load, not the event loop


def data_set_part(path: Path) -> bytes:
    """The bytes after the file meta group, located from its group length (PS3.10 §7.1)."""
    raw = path.read_bytes()
    assert raw[128:132] == b"DICM", f"{path.name} is not a Part 10 file"
    (group_length,) = struct.unpack_from("<I", raw, 132 + 8)
    return raw[132 + 12 + group_length :]


class Barrier:
    """All associations open at once: each waits here until the last one is established."""

    def __init__(self, parties: int) -> None:
        self.waiting = 0
        self.parties = parties
        self.all_in = anyio.Event()

    async def wait(self) -> None:
        self.waiting += 1
        if self.waiting == self.parties:
            self.all_in.set()
        await self.all_in.wait()


async def store_some(port: int, index: int, sent: dict[str, bytes], barrier: Barrier) -> None:
    peer = Peer("127.0.0.1", port, "STORESCP")
    async with connect(
        peer,
        ae_title=f"SCU{index}",
        contexts=[(CT_IMAGE, ("1.2.840.10008.1.2",))],
        timeouts=PATIENT,
    ) as assoc:
        await barrier.wait()
        for n in range(PER_ASSOCIATION):
            uid = f"1.2.826.0.1.3680043.9.7433.7.{index}.{n}"
            data = small_dataset(uid, pixel_bytes=256 + 2 * n)
            rsp = await c_store(assoc, data, uid)
            assert rsp.status == 0, f"{uid}: 0x{rsp.status:04X}"
            sent[uid] = data


async def storescu(port: int, files: list[Path]) -> None:
    done = await anyio.run_process(
        [dcmtk("storescu"), "-aec", "STORESCP", "-ta", "120", "127.0.0.1", str(port)]
        + [str(f) for f in files],
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")


class WatchingSink(FileSink):
    """A FileSink that says when an instance has a temporary file on disk: once more than
    WRITE_BUFFER bytes went through, the spool has written (it opens lazily)."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.spooling: dict[str, anyio.Event] = {}

    def event(self, uid: str) -> anyio.Event:
        return self.spooling.setdefault(uid, anyio.Event())

    async def store(
        self, request: StoreRequest, chunks: AsyncIterator[bytes | memoryview]
    ) -> StoreResult:
        return await super().store(request, self._watch(request.sop_instance_uid, chunks))

    async def _watch(
        self, uid: str, chunks: AsyncIterator[bytes | memoryview]
    ) -> AsyncIterator[bytes | memoryview]:
        taken = 0
        async with closing(chunks):
            async for chunk in chunks:
                yield chunk
                taken += len(chunk)
                if taken > WRITE_BUFFER:
                    self.event(uid).set()


async def vanish_mid_data_set(port: int, index: int, sink: WatchingSink) -> None:
    """Associate, send half of a 3 MiB data set, wait until the SCP has a temporary file for
    it, then reset the connection (SO_LINGER 0: an RST, not a FIN)."""
    uid = f"1.2.826.0.1.3680043.9.7433.8.{index}"
    data = small_dataset(uid, pixel_bytes=3 << 20)
    peer: RawPeer = await raw_storage_association(port, calling=f"GONE{index}")
    try:
        await peer.send(p_data(pdv(1, store_rq_command(uid), command=True)))
        pdus = data_pdus(data, 16000)
        for pdu in pdus[: len(pdus) // 2]:
            await peer.send(pdu)
        await sink.event(uid).wait()
        raw = peer.stream.extra(anyio.abc.SocketAttribute.raw_socket)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    finally:
        await peer.aclose()


@pytest.mark.anyio
async def test_500_concurrent_associations_then_abrupt_disconnects(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    registry = ActiveAssociations()
    sink = WatchingSink(out)
    config = storage_config(
        "STORESCP",
        sink,
        max_associations=ASSOCIATIONS + 2 * STORESCU_PROCESSES + VANISHING,
        timeouts=PATIENT,
        registry=registry,
    )
    dcmtk_files: dict[str, Path] = {}
    for p in range(STORESCU_PROCESSES):
        for n in range(STORESCU_FILES):
            uid = f"1.2.826.0.1.3680043.9.7433.9.{p}.{n}"
            path = tmp_path / f"in-{p}-{n}.dcm"
            make_dataset(uid, pixel_bytes=1024).save_as(path, implicit_vr=True)
            dcmtk_files[uid] = path
    sent: dict[str, bytes] = {}
    with structlog.testing.capture_logs() as logs:
        async with anyio.create_task_group() as server:
            port = await server.start(serve, config, "127.0.0.1")
            with anyio.fail_after(300):
                async with anyio.create_task_group() as clients:
                    for p in range(STORESCU_PROCESSES):
                        files = [dcmtk_files[u] for u in dcmtk_files if f".9.{p}." in u]
                        clients.start_soon(storescu, port, files)
                    barrier = Barrier(ASSOCIATIONS)
                    for index in range(ASSOCIATIONS):
                        clients.start_soon(store_some, port, index, sent, barrier)
                    await barrier.all_in.wait()
                    # all open at once, on the server's side too
                    await registry.wait_for(lambda: len(registry) >= ASSOCIATIONS)
            assert registry.total >= ASSOCIATIONS + STORESCU_PROCESSES
            # every file complete, nothing temporary
            names = sorted(p.name for p in out.iterdir())
            assert len(sent) == ASSOCIATIONS * PER_ASSOCIATION
            assert names == sorted(f"CT.{u}" for u in [*sent, *dcmtk_files])
            for uid, data in sent.items():
                assert data_set_part(out / f"CT.{uid}") == data, uid
            for uid in dcmtk_files:
                assert (out / f"CT.{uid}").stat().st_size > 1024

            # peers vanishing mid data set
            before = registry.total
            with anyio.fail_after(120):
                async with anyio.create_task_group() as vanishing:
                    for index in range(VANISHING):
                        vanishing.start_soon(vanish_mid_data_set, port, index, sink)
                await registry.wait_for(
                    lambda: registry.total == before + VANISHING and not registry
                )
            leftovers = [p.name for p in out.iterdir() if p.name.startswith(".")]
            assert leftovers == []
            assert len(list(out.iterdir())) == len(names)
            await assert_serving(port)
            server.cancel_scope.cancel()
    assert not events(logs, "association.crashed")
    assert not events(logs, "association.limit_exceeded")
